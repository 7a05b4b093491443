// Lists what goes into a layer: the files of some store paths, as tar
// entries in a deterministic order with canonical metadata.
//
// Canonical, because a layer must be a function of the store paths'
// contents only (what Nix's NAR serialisation captures: type, the executable
// bit, bytes and symlink targets), so the same image has byte-identical
// layers on every machine. Timestamps, owners and the permissions a
// particular store happens to have are therefore not copied.
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';

export type TarEntry =
  | { type: 'directory'; name: string; mode: number }
  | { type: 'file'; name: string; mode: number; size: number; source: string }
  | { type: 'symlink'; name: string; linkname: string }
  | { type: 'link'; name: string; linkname: string };

/** Directories leading to the store, present in every layer so extraction never invents them. */
export const STORE_PARENTS: TarEntry[] = [
  { type: 'directory', name: 'nix/', mode: 0o755 },
  { type: 'directory', name: 'nix/store/', mode: 0o755 },
];

/** Byte order, not locale order: the same on every machine. */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function walk(absolute: string, name: string, out: TarEntry[]): Promise<void> {
  const info = await lstat(absolute);
  if (info.isSymbolicLink()) {
    out.push({ type: 'symlink', name, linkname: await readlink(absolute) });
  } else if (info.isDirectory()) {
    out.push({ type: 'directory', name: name + '/', mode: 0o555 });
    const children = (await readdir(absolute)).sort(compareNames);
    for (const child of children) await walk(`${absolute}/${child}`, `${name}/${child}`, out);
  } else if (info.isFile()) {
    const executable = (info.mode & 0o111) !== 0;
    out.push({ type: 'file', name, mode: executable ? 0o555 : 0o444, size: info.size, source: absolute });
  } else {
    throw new Error(`unsupported file type in the Nix store: ${absolute}`);
  }
}

/** Entries for whole store paths, sorted, preceded by the store's parent directories. */
export async function storePathEntries(storePaths: readonly string[]): Promise<TarEntry[]> {
  const out: TarEntry[] = [...STORE_PARENTS];
  for (const path of [...storePaths].sort(compareNames)) {
    await walk(path, path.replace(/^\/+/, ''), out);
  }
  return linkIdenticalFiles(out);
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * Stores identical files of one layer once, the later ones as hard links to
 * the first. Decided by content (not by inode), so the result is the same
 * whether or not a store was optimised with hard links; only files whose
 * size and mode collide with another's are hashed, which is rare and cheap.
 */
export async function linkIdenticalFiles(entries: TarEntry[]): Promise<TarEntry[]> {
  const bySize = new Map<string, number[]>();
  entries.forEach((entry, index) => {
    if (entry.type !== 'file' || entry.size === 0) return;
    const key = `${entry.size}:${entry.mode}`;
    const list = bySize.get(key);
    if (list) list.push(index);
    else bySize.set(key, [index]);
  });
  const result = [...entries];
  for (const indexes of bySize.values()) {
    if (indexes.length < 2) continue;
    const firstByHash = new Map<string, string>();
    for (const index of indexes) {
      const entry = entries[index] as Extract<TarEntry, { type: 'file' }>;
      const hash = await fileHash(entry.source);
      const first = firstByHash.get(hash);
      if (first === undefined) firstByHash.set(hash, entry.name);
      else result[index] = { type: 'link', name: entry.name, linkname: first };
    }
  }
  return result;
}

// The image's top layer: a tree of symlinks into the packages' store paths,
// so that /bin/hello, /etc/ssl/certs/... and /lib/... exist where programs
// and people look for them. Like nixpkgs' symlinkJoin (lndir), directories
// are real and everything else is a symlink into the store; where two
// packages provide the same file, the first package (in the image's sorted
// order) wins, as the image name's order must not matter.
import { lstat, readdir } from 'node:fs/promises';
import { compareNames, type TarEntry } from './entries.ts';

interface Node {
  kind: 'directory' | 'symlink';
  target?: string;
}

async function merge(tree: Map<string, Node>, storeDir: string, relative: string): Promise<void> {
  const children = (await readdir(relative ? `${storeDir}/${relative}` : storeDir)).sort(compareNames);
  for (const child of children) {
    const rel = relative ? `${relative}/${child}` : child;
    const absolute = `${storeDir}/${rel}`;
    const existing = tree.get(rel);
    const info = await lstat(absolute);
    if (info.isDirectory()) {
      if (existing === undefined) tree.set(rel, { kind: 'directory' });
      else if (existing.kind !== 'directory') continue;
      await merge(tree, storeDir, rel);
    } else if (existing === undefined) {
      tree.set(rel, { kind: 'symlink', target: absolute });
    }
  }
}

/** Entries of the symlink layer for the packages' top-level outputs, in image order. */
export async function symlinkTreeEntries(outputs: readonly string[]): Promise<TarEntry[]> {
  const tree = new Map<string, Node>();
  for (const output of outputs) {
    // A store path that is a single file (not a directory) has nothing to link from.
    if (!(await lstat(output)).isDirectory()) continue;
    await merge(tree, output, '');
  }
  return [...tree.keys()].sort(compareNames).map((name): TarEntry => {
    const node = tree.get(name)!;
    return node.kind === 'directory'
      ? { type: 'directory', name: name + '/', mode: 0o755 }
      : { type: 'symlink', name, linkname: node.target! };
  });
}

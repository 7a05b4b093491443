// The image's top layer: a tree of symlinks into the packages' store paths,
// so that /bin/hello, /etc/ssl/certs/... and /lib/... exist where programs
// and people look for them. Like nixpkgs' symlinkJoin (lndir), directories
// are real and everything else is a symlink into the store; where two
// packages provide the same file, the first package (in the image's sorted
// order) wins, as the image name's order must not matter.
//
// On top of the packages, the few things programs expect of any Linux root
// that no package provides (base files, see `addBaseFiles`). They live here,
// never in a layer of store paths, so those layers stay a function of their
// store paths alone and are shared between images.
import { lstat, readdir, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { compareNames, type TarEntry } from './entries.ts';

export type TreeNode =
  | { kind: 'directory'; mode: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'file'; source: string; mode: number };

/** Paths relative to the image root, without a leading or trailing slash. */
export type Tree = Map<string, TreeNode>;

/**
 * Bumped whenever the layer's contents change for the same packages (such as
 * the base files), so a symlink layer cached by an older origin is not reused.
 */
const SYMLINK_TREE_FORMAT = 2;

/** The layer cache identity of the symlink tree of these outputs. */
export function symlinkTreeId(outputs: readonly string[]): string {
  // Prefixed so a symlink tree can never share an identity with a group of store paths (identity.ts hashes paths joined by "\n").
  return createHash('sha256').update([`symlink-tree/${SYMLINK_TREE_FORMAT}`, ...outputs].join('\n')).digest('hex');
}

const baseFile = (name: string) => fileURLToPath(new URL(`./base-files/${name}`, import.meta.url));

/** The /etc files every image gets unless a package brings its own (root and nobody; files-only name service). */
export const BASE_ETC_FILES: Readonly<Record<string, string>> = {
  'etc/group': baseFile('group'),
  'etc/nsswitch.conf': baseFile('nsswitch.conf'),
  'etc/passwd': baseFile('passwd'),
};

export interface BaseFiles {
  /** Where the image's `env` program is (a store path), or null when no package has one. */
  env: string | null;
  /** Image path → file on this machine holding its contents. */
  etc: Readonly<Record<string, string>>;
}

function parents(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * Puts `node` at `path` when nothing is there yet, creating missing parent
 * directories; does nothing when a package put something there, or made a
 * parent a symlink or file (the package owns that part of the tree).
 */
function fill(tree: Tree, path: string, node: TreeNode): boolean {
  if (tree.has(path)) return false;
  if (parents(path).some((p) => tree.has(p) && tree.get(p)!.kind !== 'directory')) return false;
  for (const p of parents(path)) if (!tree.has(p)) tree.set(p, { kind: 'directory', mode: 0o755 });
  tree.set(path, node);
  return true;
}

/**
 * Adds what programs expect of a root file system to a tree of packages.
 * Precedence, per file:
 *  - /tmp is always a directory with mode 1777 (sticky, writable by all):
 *    programs need a writable /tmp, and no package can mean to take it away.
 *  - /usr/bin/env links to the image's own env (the one /bin/env is), only
 *    when some package has bin/env: a link to nothing would only move the
 *    "not found" from the shebang to its target. A package's own
 *    usr/bin/env wins.
 *  - /etc/passwd, /etc/group, /etc/nsswitch.conf: a package that ships one
 *    means it (its users, its name services), so the package's file wins
 *    and ours only fills the gap. A package that makes /etc itself a
 *    symlink owns all of /etc, and gets none of ours.
 *  - /root, root's home in our passwd, is a directory (mode 700) unless a
 *    package put something there.
 */
export function addBaseFiles(tree: Tree, base: BaseFiles): void {
  // A package's tmp file or link is replaced; what a package has under a tmp/ directory stays.
  tree.set('tmp', { kind: 'directory', mode: 0o1777 });
  if (base.env !== null) fill(tree, 'usr/bin/env', { kind: 'symlink', target: base.env });
  for (const [path, source] of Object.entries(base.etc)) fill(tree, path, { kind: 'file', source, mode: 0o644 });
  fill(tree, 'root', { kind: 'directory', mode: 0o700 });
}

async function merge(tree: Tree, storeDir: string, relative: string): Promise<void> {
  const children = (await readdir(relative ? `${storeDir}/${relative}` : storeDir)).sort(compareNames);
  for (const child of children) {
    const rel = relative ? `${relative}/${child}` : child;
    const absolute = `${storeDir}/${rel}`;
    const existing = tree.get(rel);
    const info = await lstat(absolute);
    if (info.isDirectory()) {
      if (existing === undefined) tree.set(rel, { kind: 'directory', mode: 0o755 });
      else if (existing.kind !== 'directory') continue;
      await merge(tree, storeDir, rel);
    } else if (existing === undefined) {
      tree.set(rel, { kind: 'symlink', target: absolute });
    }
  }
}

/** The store path the image's /bin/env resolves to, or null when it has none that resolves. */
async function findEnv(tree: Tree): Promise<string | null> {
  const direct = tree.get('bin/env');
  // A package whose whole bin/ is one symlink provides bin/env through it.
  const bin = tree.get('bin');
  const candidate = direct?.kind === 'symlink' ? direct.target : bin?.kind === 'symlink' ? `${bin.target}/env` : null;
  if (candidate === null) return null;
  try {
    // stat follows the links: a dangling env is no env.
    return (await stat(candidate)).isFile() ? candidate : null;
  } catch {
    return null;
  }
}

/** The packages' top-level outputs merged into one tree, in image order. */
export async function packageTree(outputs: readonly string[]): Promise<Tree> {
  const tree: Tree = new Map();
  for (const output of outputs) {
    // A store path that is a single file (not a directory) has nothing to link from.
    if (!(await lstat(output)).isDirectory()) continue;
    await merge(tree, output, '');
  }
  return tree;
}

/** A tree as tar entries, sorted. */
export async function treeEntries(tree: Tree): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  for (const name of [...tree.keys()].sort(compareNames)) {
    const node = tree.get(name)!;
    if (node.kind === 'directory') entries.push({ type: 'directory', name: name + '/', mode: node.mode });
    else if (node.kind === 'symlink') entries.push({ type: 'symlink', name, linkname: node.target });
    else entries.push({ type: 'file', name, mode: node.mode, size: (await stat(node.source)).size, source: node.source });
  }
  return entries;
}

/** Entries of the symlink layer for the packages' top-level outputs, in image order, with the base files. */
export async function symlinkTreeEntries(outputs: readonly string[]): Promise<TarEntry[]> {
  const tree = await packageTree(outputs);
  addBaseFiles(tree, { env: await findEnv(tree), etc: BASE_ETC_FILES });
  return treeEntries(tree);
}

// GC roots for what a build is using. Nix keeps a path (and its closure)
// while a symlink to it sits anywhere under its gcroots directory; a Nix
// command's own temporary roots last only while that command runs. So each
// build (and each blob rebuild) holds a set of roots from the end of its
// evaluation until its layers are stored: the .drv files, which
// nix-instantiate wrote but which nothing keeps once it exits, and the
// outputs, rooted before nix-build makes them (Nix skips a root whose path is
// not valid yet, and keeps it from the moment it is). The set is removed when
// the build ends, however it ends. Evaluations run, and roots are made, only
// while no collection runs (gc-lock.ts).
//
// Layout: <dir>/<pid>-<process start>/<set number>/<store path base name>.
// The directory is this process's alone, so several origins may share a store
// (tests do) and a crashed origin's roots are recognised as stale and removed
// at the next start-up (its pid is gone or names a later process).
import { lstat, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { startOf } from './process-tree.ts';
import type { GcLock } from './gc-lock.ts';

/** Whether a store path is there: lstat, since a store path may itself be a symlink, even a dangling one. */
async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The store paths of `paths` that are not in the store (nothing rooted: see RootSet.protect for that). */
export async function missingStorePaths(paths: readonly string[]): Promise<string[]> {
  const present = await Promise.all(paths.map(exists));
  return paths.filter((_path, i) => !present[i]);
}

export class GcRoots {
  /** This process's directory of root sets. */
  readonly dir: string;
  private readonly lock: GcLock;
  private sets = 0;
  private open = 0;

  private constructor(dir: string, lock: GcLock) {
    this.dir = dir;
    this.lock = lock;
  }

  /**
   * This process's roots under `base` (inside Nix's gcroots directory), after
   * removing the directories of origins that no longer run.
   */
  static async open(base: string, lock: GcLock): Promise<{ roots: GcRoots; staleRemoved: number }> {
    await mkdir(base, { recursive: true });
    let staleRemoved = 0;
    for (const name of await readdir(base)) {
      const match = /^(\d+)-(\d+)$/.exec(name);
      if (!match) continue;
      if (startOf(Number(match[1])) === match[2]) continue;
      await rm(join(base, name), { recursive: true, force: true });
      staleRemoved++;
    }
    // Without /proc a directory cannot be told stale later; the time keeps the name unique.
    const dir = join(base, `${process.pid}-${startOf(process.pid) ?? Date.now()}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return { roots: new GcRoots(dir, lock), staleRemoved };
  }

  /** A new, empty set of roots; release it when its work is done. */
  hold(): RootSet {
    this.open++;
    let released = false;
    return new RootSet(join(this.dir, String(++this.sets)), this.lock, () => {
      if (!released) this.open--;
      released = true;
    });
  }

  /** Root sets held now: builds and blob rebuilds in flight. */
  get held(): number {
    return this.open;
  }

  /** Removes every root of this process (at exit, once no build runs). */
  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export class RootSet {
  readonly dir: string;
  private readonly lock: GcLock;
  private readonly done: () => void;

  constructor(dir: string, lock: GcLock, done: () => void) {
    this.dir = dir;
    this.lock = lock;
    this.done = done;
  }

  /**
   * Roots `paths` and returns those that are not in the store. Done while no
   * collection runs, so a path found here stays until the set is released; a
   * path missing now is kept from the moment something makes it.
   */
  protect(paths: readonly string[]): Promise<string[]> {
    return this.lock.makingRoots(() => this.link(paths));
  }

  /**
   * Runs a Nix evaluation while no collection runs, and roots what it wrote
   * before a collection may start. Nix 2.8's evaluator is not safe against a
   * concurrent `nix-store --gc`: a .drv it found valid a moment earlier may be
   * deleted under it ("path '…drv' is not valid"); and the .drv files it
   * wrote are kept by nothing once it exits.
   */
  evaluate<T>(work: () => Promise<T>, paths: (result: T) => readonly string[]): Promise<{ result: T; missing: string[] }> {
    return this.lock.makingRoots(async () => {
      const result = await work();
      return { result, missing: await this.link(paths(result)) };
    });
  }

  private async link(paths: readonly string[]): Promise<string[]> {
    await mkdir(this.dir, { recursive: true });
    const unique = [...new Set(paths)];
    // All at once: this runs under the GC lock, which a collection may be waiting for.
    const present = await Promise.all(
      unique.map(async (path) => {
        try {
          await symlink(path, join(this.dir, basename(path)));
        } catch (err) {
          // The same base name is the same store path: rooted already.
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        return exists(path);
      }),
    );
    return unique.filter((_path, i) => !present[i]);
  }

  /** Removes the roots: the next collection may take what only they kept. */
  async release(): Promise<void> {
    try {
      await rm(this.dir, { recursive: true, force: true });
    } finally {
      this.done();
    }
  }
}

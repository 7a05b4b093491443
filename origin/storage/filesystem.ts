// The embedded storage backend: objects are files under one directory.
// Every write goes to a temporary file in the same directory tree and is
// renamed into place, so a crash never leaves a partial object under its
// key (rename is atomic within a filesystem).
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, opendir, readdir, readFile, rename, rm, stat, writeFile, link, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { isStaleStaging, type SweepResult } from '../gc/staging.ts';
import { checkListPrefix, checkStorageKey, type ByteRange, type ListedObject, type ObjectInfo, type StagedWrite, type Storage } from './storage.ts';

const TMP_DIR = '.tmp';

export class FilesystemStorage implements Storage {
  readonly name = 'filesystem';
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** Creates the directories; called once at start-up so a bad STORAGE_PATH fails there. */
  async init(): Promise<void> {
    await mkdir(join(this.root, TMP_DIR), { recursive: true });
    // Leftovers of a crashed process are never visible under a key; clear them.
    await rm(join(this.root, TMP_DIR), { recursive: true, force: true });
    await mkdir(join(this.root, TMP_DIR), { recursive: true });
  }

  private pathOf(key: string): string {
    checkStorageKey(key, TMP_DIR);
    const path = join(this.root, ...key.split('/'));
    if (!path.startsWith(this.root + sep)) throw new Error(`storage key escapes the root: ${key}`);
    return path;
  }

  private tempPath(): string {
    return join(this.root, TMP_DIR, `${Date.now()}-${randomBytes(8).toString('hex')}`);
  }

  async stage(): Promise<StagedWrite> {
    const temp = this.tempPath();
    const stream = createWriteStream(temp, { flags: 'wx' });
    let settled = false;
    // A write error (ENOSPC, say) ends the stream; its partial file must not outlive it.
    stream.once('error', () => void rm(temp, { force: true }).catch(() => undefined));
    return {
      stream,
      commit: async (key: string) => {
        if (settled) throw new Error('staged write already settled');
        settled = true;
        try {
          if (!stream.writableFinished) await finished(stream);
        } catch (err) {
          await rm(temp, { force: true });
          throw err;
        }
        await this.publish(temp, this.pathOf(key), true);
      },
      abort: async () => {
        settled = true;
        // The file is created when the stream opens, which may be after destroy(): remove it once closed.
        if (!stream.closed) await new Promise<void>((resolvePromise) => stream.once('close', () => resolvePromise()).destroy());
        await rm(temp, { force: true });
      },
    };
  }

  /**
   * Moves a complete temp file to its key. Create-only uses link(2), which
   * fails if the target exists, so a concurrent writer of the same content
   * never replaces a file a reader may be streaming.
   */
  private async publish(temp: string, target: string, createOnly: boolean): Promise<void> {
    await mkdir(dirname(target), { recursive: true });
    try {
      if (createOnly) {
        try {
          await link(temp, target);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
      } else {
        await rename(temp, target);
      }
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  async put(key: string, data: Uint8Array, _contentType: string, options: { createOnly?: boolean } = {}): Promise<void> {
    const target = this.pathOf(key);
    const temp = this.tempPath();
    try {
      await writeFile(temp, data, { flag: 'wx' });
    } catch (err) {
      // A failed write (ENOSPC, say) leaves a partial temp file; never keep it.
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    await this.publish(temp, target, options.createOnly ?? false);
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      return await readFile(this.pathOf(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const info = await stat(this.pathOf(key));
      return { size: info.size, written: info.mtimeMs };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable | null> {
    const path = this.pathOf(key);
    const stream = createReadStream(path, range ? { start: range.start, end: range.end } : {});
    // Surface ENOENT as null rather than as a stream error mid-response.
    return await new Promise<Readable | null>((resolvePromise, reject) => {
      stream.once('open', () => resolvePromise(stream));
      stream.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolvePromise(null) : reject(err)));
    });
  }

  async publicUrl(): Promise<string | null> {
    return null;
  }

  async sweepStaging(now: number, maxAgeMs: number): Promise<SweepResult> {
    const result: SweepResult = { removed: 0, bytes: 0 };
    for (const name of await readdir(join(this.root, TMP_DIR))) {
      if (!isStaleStaging(name, now, maxAgeMs)) continue;
      const path = join(this.root, TMP_DIR, name);
      const size = await stat(path).then((s) => s.size, () => 0);
      await rm(path, { force: true });
      result.removed++;
      result.bytes += size;
    }
    return result;
  }

  /**
   * Walks the directories under the prefix one entry at a time (opendir
   * streams a directory rather than reading it whole), so a directory of a
   * million blobs is never one array in memory. The time written is the
   * file's mtime: every write creates a new file (temp file, then link or
   * rename), so it is when the object under this key was written.
   */
  async *list(prefix: string): AsyncIterable<ListedObject> {
    checkListPrefix(prefix, TMP_DIR);
    yield* this.walk(prefix === '' ? this.root : join(this.root, ...prefix.slice(0, -1).split('/')), prefix);
  }

  private async *walk(dir: string, keyPrefix: string): AsyncIterable<ListedObject> {
    let handle;
    try {
      handle = await opendir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    for await (const entry of handle) {
      if (keyPrefix === '' && entry.name === TMP_DIR) continue;
      const key = keyPrefix + entry.name;
      if (entry.isDirectory()) {
        yield* this.walk(join(dir, entry.name), `${key}/`);
      } else if (entry.isFile()) {
        // Deleted between the listing and the stat: not there any more, so not listed.
        const info = await stat(join(dir, entry.name)).catch(() => null);
        if (info) yield { key, size: info.size, written: info.mtimeMs };
      }
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }
}

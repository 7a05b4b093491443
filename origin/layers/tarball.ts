// Writes a layer: tar entries → gzip → a sink, in one streaming pass that
// computes both digests a registry needs: the diff_id (sha256 of the
// uncompressed tar, listed in the image config) and the digest (sha256 of
// the compressed bytes, the blob's address), plus the compressed size.
//
// Deterministic by construction: entries arrive sorted and canonical
// (entries.ts), every header has mtime 1 (as in the Nix store), uid/gid 0 and
// no user or group names, long names go into PAX headers (tar-stream does
// that when a name does not fit ustar), and the gzip stream is a function of
// the tar bytes alone (parallel-gzip.ts: fixed-size pieces, a fixed level, a
// header without a timestamp), however many cores compress it.
import { createReadStream } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as createPack, type Header } from 'tar-stream';
import type { Digest } from '../../shared/digest.ts';
import type { TarEntry } from './entries.ts';
import { ParallelGzip, type ParallelGzipStats } from './parallel-gzip.ts';
import type { DeflatePool } from './deflate-pool.ts';

export interface LayerDigests {
  /** sha256 of the compressed tarball: the blob's address. */
  digest: Digest;
  /** sha256 of the uncompressed tarball: the config's rootfs.diff_ids entry. */
  diffId: Digest;
  /** Bytes of the compressed tarball. */
  size: number;
  /** Bytes of the uncompressed tarball. */
  tarSize: number;
  /** How the gzip stream was made: pieces deflated, pieces stored as incompressible. */
  gzip: ParallelGzipStats;
}

const MTIME = new Date(1000);
const READ_CHUNK = 1024 * 1024;

/**
 * Reads of up to 1 MiB, so a large file takes a few hops to the thread pool
 * rather than one per 64 KiB; but never larger than the file: a read stream
 * allocates its whole highWaterMark for every read, so 1 MiB for each small
 * file of a closure (most are) churned external memory into garbage
 * collections on the event loop (6,000 small files: 371 scavenges, 43 when
 * sized). `end` spares the read that would only find the end of the file.
 * Store paths never change, so the size the entry was listed with is the
 * file's.
 */
function readOptions(size: number): { highWaterMark: number; end?: number } {
  return size > 0 ? { highWaterMark: Math.min(READ_CHUNK, size), end: size - 1 } : { highWaterMark: 1 };
}

/** Passes bytes through while hashing and counting them. */
class HashingCounter extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function header(entry: TarEntry): Header {
  const base = { name: entry.name, mtime: MTIME, uid: 0, gid: 0, uname: '', gname: '', devmajor: 0, devminor: 0, linkname: '' };
  switch (entry.type) {
    case 'directory':
      return { ...base, type: 'directory', mode: entry.mode, size: 0 };
    case 'file':
      return { ...base, type: 'file', mode: entry.mode, size: entry.size };
    case 'symlink':
      return { ...base, type: 'symlink', mode: 0o777, size: 0, linkname: entry.linkname };
    case 'link':
      return { ...base, type: 'link', mode: 0o444, size: 0, linkname: entry.linkname };
  }
}

export interface TarballOptions {
  /** gzip level 1-9; the default is zlib's own default (6). */
  gzipLevel?: number;
  signal?: AbortSignal;
  /** The worker threads that compress; the process's shared pool unless told. */
  pool?: DeflatePool;
}

export async function writeLayerTarball(entries: readonly TarEntry[], sink: Writable, options: TarballOptions = {}): Promise<LayerDigests> {
  const pack = createPack();
  const uncompressed = new HashingCounter();
  const compressed = new HashingCounter();
  const gzip = new ParallelGzip({ level: options.gzipLevel ?? 6, ...(options.pool ? { pool: options.pool } : {}) });
  const flowing = pipeline(pack, uncompressed, gzip, compressed, sink, options.signal ? { signal: options.signal } : {});

  const feed = async (): Promise<void> => {
    for (const entry of entries) {
      if (entry.type === 'file' && entry.size === 0) {
        // Nothing to read: no file opened, no stream (store paths hold many empty files). Same bytes.
        await new Promise<void>((resolve, reject) => {
          pack.entry(header(entry), Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
        });
      } else if (entry.type === 'file') {
        await new Promise<void>((resolve, reject) => {
          const target = pack.entry(header(entry), (err) => (err ? reject(err) : resolve()));
          // Without a listener, the entry's 'error' when the pack is destroyed (an aborted write) would crash the process.
          target.on('error', reject);
          createReadStream(entry.source, readOptions(entry.size)).on('error', reject).pipe(target);
        });
      } else {
        await new Promise<void>((resolve, reject) => {
          pack.entry(header(entry), (err) => (err ? reject(err) : resolve()));
        });
      }
    }
    pack.finalize();
  };

  try {
    await Promise.all([feed(), flowing]);
  } catch (err) {
    pack.destroy(err as Error);
    throw err;
  }
  return {
    digest: `sha256:${compressed.hash.digest('hex')}`,
    diffId: `sha256:${uncompressed.hash.digest('hex')}`,
    size: compressed.bytes,
    tarSize: uncompressed.bytes,
    gzip: { ...gzip.stats },
  };
}

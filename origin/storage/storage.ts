// The storage interface every backend implements (filesystem, GCS). Keys are
// slash-separated object names; which ones exist is the storage layout
// (shared/storage-keys.ts), e.g. `blobs/sha256/<hex>`, `manifests/sha256/<hex>`.
//
// Two guarantees every backend gives, because the registry relies on them:
// - an object is visible under its key only when it is complete (no reader
//   ever sees a partial blob, even after a crash);
// - content-addressed writes are create-only: if the key already exists the
//   write is a success and the existing object is kept.
import type { SweepResult } from '../gc/staging.ts';
import type { Readable, Writable } from 'node:stream';

export interface ObjectInfo {
  size: number;
  contentType?: string;
  /** When the object under this key was written (ms), as the listing says (ListedObject.written); absent when unknown. */
  written?: number;
}

/** One object as a listing names it. */
export interface ListedObject {
  key: string;
  size: number;
  /** When the object under this key was last written (ms since epoch). */
  written: number;
}

export interface ByteRange {
  /** Inclusive start offset. */
  start: number;
  /** Inclusive end offset. */
  end: number;
}

/** A write in progress: bytes go to `stream`, then `commit` publishes them under a key only known at the end. */
export interface StagedWrite {
  readonly stream: Writable;
  /** Publishes the staged bytes under `key` (create-only). The stream must have finished. */
  commit(key: string, contentType: string): Promise<void>;
  /** Discards the staged bytes; safe to call after a failure or twice. */
  abort(): Promise<void>;
}

export interface Storage {
  readonly name: string;
  /** Starts a streaming write whose key is decided after the bytes are written (a content address). */
  stage(): Promise<StagedWrite>;
  /**
   * Writes a small object in one piece. `createOnly` keeps an existing
   * object (content-addressed data); without it the object is replaced
   * atomically (cache entries of moving tags).
   */
  put(key: string, data: Uint8Array, contentType: string, options?: { createOnly?: boolean }): Promise<void>;
  /** Reads a small object whole; null when absent. */
  get(key: string): Promise<Uint8Array | null>;
  stat(key: string): Promise<ObjectInfo | null>;
  /** Streams an object, or part of it; null when absent. */
  read(key: string, range?: ByteRange): Promise<Readable | null>;
  /**
   * A URL a client may fetch the object from directly (a signed GCS URL), or
   * null when this backend serves bytes itself.
   */
  publicUrl(key: string): Promise<string | null>;
  delete(key: string): Promise<void>;
  /**
   * Every object whose key starts with `prefix` (empty, or ending in `/`), a
   * page at a time, in no particular order; staged writes are never listed.
   * A caller that keeps only what it needs holds one page in memory, however
   * large the bucket.
   */
  list(prefix: string): AsyncIterable<ListedObject>;
  /** Deletes staged writes older than `maxAgeMs` (origin/gc/staging.ts): leftovers of a crashed process. */
  sweepStaging(now: number, maxAgeMs: number): Promise<SweepResult>;
}

const KEY = /^[a-zA-Z0-9._-]+(?:\/[a-zA-Z0-9._-]+)*$/;

/**
 * Refuses keys every backend must refuse: outside the key grammar, with `.`
 * or `..` segments (a path or object name that escapes its place), or using
 * the name the backend keeps for its own staged writes.
 */
export function checkStorageKey(key: string, reserved: string): string {
  if (!KEY.test(key) || key.split('/').some((part) => part === '.' || part === '..' || part === reserved)) {
    throw new Error(`invalid storage key ${JSON.stringify(key)}`);
  }
  return key;
}

/** A listing prefix: empty (everything) or whole key segments ending in `/`. */
export function checkListPrefix(prefix: string, reserved: string): string {
  if (prefix === '') return prefix;
  if (!prefix.endsWith('/')) throw new Error(`invalid listing prefix ${JSON.stringify(prefix)}: empty or key segments ending in "/"`);
  checkStorageKey(prefix.slice(0, -1), reserved);
  return prefix;
}

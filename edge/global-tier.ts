// The global manifest tier: a store every data centre reads (Workers KV), so
// a data centre that has never seen an image answers from it instead of
// crossing to the origin. It sits behind memory and the Cache API, which are
// local to a data centre, and in front of the origin.
//
// KV is eventually consistent: a write is visible at once where it was made
// and within about 60 s elsewhere, and a read may be served from the reading
// data centre's KV cache for `cacheTtl` seconds. That suits digests (the same
// bytes forever). For tags it bounds staleness: a tag's record carries the
// time the origin answered, and its freshness is judged from that time, as
// in the Cache API, so a copy that arrives late is fresh for less long, never
// longer. The worst case is a digest the origin moved away from being served
// for MANIFEST_TAG_TTL plus KV's propagation and cache time.
//
// One KV read answers a tag: its record holds the whole manifest (a few KB;
// a KV value may be 25 MiB), its digest and media type and the time in the
// metadata, so a cold data centre pays one read, not two.
//
// Failures of the store cost a miss, never an error: the origin stands behind.
//
// No Workers-only API here (KV comes in as `GlobalStore`): the Node unit
// tests import it.
import { sha256Digest, type Digest } from '../shared/digest.ts';
import type { ManifestEntry } from './manifest-cache.ts';
import { keyString, type ManifestKey } from './manifest-key.ts';

/** The part of a Workers KV namespace this module uses (KVNamespace satisfies it). */
export interface GlobalStore {
  getWithMetadata<M>(key: string, options: { type: 'arrayBuffer'; cacheTtl?: number }): Promise<{ value: ArrayBuffer | null; metadata: M | null }>;
  put(key: string, value: ArrayBuffer | ArrayBufferView | string, options?: { expirationTtl?: number; metadata?: unknown }): Promise<void>;
  delete(key: string): Promise<void>;
}

/** What the tier holds for a key, with when the origin answered (null for a digest). */
export interface GlobalRecord {
  readonly entry: ManifestEntry;
  readonly storedAt: number | null;
}

interface Metadata {
  /** The format version of the record; records of another version are ignored. */
  v: 1;
  digest: string;
  mediaType: string;
  storedAt: number | null;
}

/** KV refuses an expiration under 60 s. */
export const KV_MIN_TTL_SECONDS = 60;
/**
 * How long a data centre may serve a KV read from its own KV cache. For
 * digests, long (they never change). For tags, KV's minimum (30 s): every
 * second of it is a second a moved tag can be seen late.
 */
export const DIGEST_READ_CACHE_SECONDS = 24 * 60 * 60;
export const TAG_READ_CACHE_SECONDS = 30;

/** The KV key: one namespace, versioned so a change of layout never reads old records as new. */
export function globalKey(key: ManifestKey): string {
  return `m1/${keyString(key)}`;
}

export class GlobalTier {
  private readonly store: GlobalStore;

  constructor(store: GlobalStore) {
    this.store = store;
  }

  /** The record for a key, or null when there is none, it is unreadable, or the store failed. */
  async read(key: ManifestKey): Promise<GlobalRecord | null> {
    let result: { value: ArrayBuffer | null; metadata: Metadata | null };
    try {
      result = await this.store.getWithMetadata<Metadata>(globalKey(key), {
        type: 'arrayBuffer',
        cacheTtl: key.kind === 'digest' ? DIGEST_READ_CACHE_SECONDS : TAG_READ_CACHE_SECONDS,
      });
    } catch (err) {
      console.error('nixery-edge: global tier read failed', String(err));
      return null;
    }
    const record = decodeRecord(key, result.value, result.metadata);
    // A few KB to hash: cheap next to a read, and a record is never served unchecked.
    if (record !== null && (await sha256Digest(record.entry.bytes)) !== record.entry.digest) {
      console.error(`nixery-edge: global tier record ${globalKey(key)} does not match its digest; ignored`);
      return null;
    }
    return record;
  }

  /**
   * Writes a record (for ctx.waitUntil; never awaited by a response). KV
   * allows one write a second per key: data centres revalidating one tag at
   * the same moment may see a write refused, which costs nothing but a log
   * line, since one of them landed.
   */
  async write(key: ManifestKey, entry: ManifestEntry, storedAt: number | null, lifetimeSeconds: number): Promise<void> {
    if (lifetimeSeconds <= 0) return;
    const metadata: Metadata = { v: 1, digest: entry.digest, mediaType: entry.mediaType, storedAt };
    try {
      await this.store.put(globalKey(key), entry.bytes, { expirationTtl: Math.max(KV_MIN_TTL_SECONDS, lifetimeSeconds), metadata });
    } catch (err) {
      console.error('nixery-edge: global tier write failed', String(err));
    }
  }

  /**
   * Deletes a record (a digest the origin can no longer serve). Visible at
   * once here and within KV's propagation elsewhere; a data centre that
   * cached the read keeps its copy up to `cacheTtl` (a day for a digest),
   * which is why the deleting isolate also remembers the digest as gone
   * (manifest-cache.ts).
   */
  async delete(key: ManifestKey): Promise<void> {
    try {
      await this.store.delete(globalKey(key));
    } catch (err) {
      console.error('nixery-edge: global tier delete failed', String(err));
    }
  }
}

/** Reads a record's layout; a digest key must hold that digest (the bytes are hashed by the caller). */
export function decodeRecord(key: ManifestKey, value: ArrayBuffer | null, metadata: Metadata | null): GlobalRecord | null {
  if (value === null || metadata === null || metadata.v !== 1) return null;
  if (typeof metadata.digest !== 'string' || typeof metadata.mediaType !== 'string') return null;
  if (key.kind === 'digest' && metadata.digest !== key.digest) return null;
  const entry: ManifestEntry = { digest: metadata.digest as Digest, mediaType: metadata.mediaType, bytes: new Uint8Array(value) };
  if (key.kind === 'digest') return { entry, storedAt: null };
  // A tag's record without a readable time cannot be judged fresh: stored at the epoch, so stale.
  return { entry, storedAt: typeof metadata.storedAt === 'number' && Number.isFinite(metadata.storedAt) ? metadata.storedAt : 0 };
}

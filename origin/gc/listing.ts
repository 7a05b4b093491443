// What retention (retention-run.ts) and the scrub (scrub.ts) share to walk
// storage: a listing worked through a batch at a time, so a bucket of any
// size is never one array in memory, and the names and small JSON records
// they find read without throwing.
import type { Digest } from '../../shared/digest.ts';
import type { KeyFamily } from '../../shared/storage-keys.ts';
import { mapLimit } from '../image/map-limit.ts';
import type { ListedObject } from '../storage/storage.ts';

/** Work of one batch runs together; a batch is at most this many objects. */
const BATCH = 64;
const SHA256_HEX = /^[a-f0-9]{64}$/;
const decoder = new TextDecoder();

/** The digest a content-addressed key (or its index entry) names; null for anything else found under the prefix. */
export function digestOfKey(family: KeyFamily, key: string): Digest | null {
  const hex = family.parse(key);
  return hex !== null && SHA256_HEX.test(hex) ? `sha256:${hex}` : null;
}

/** A stored JSON record, or null when it does not parse (a damaged record says nothing). */
export function parseJson<T>(bytes: Uint8Array): T | null {
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch {
    return null;
  }
}

/** A whole listing, for the few that must be held (the image records a run decides over). */
export async function collect(objects: AsyncIterable<ListedObject>): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  for await (const object of objects) out.push(object);
  return out;
}

/** Runs `work` over a listing in batches, so at most one batch of a large listing is held at once. */
export async function inBatches(objects: AsyncIterable<ListedObject>, concurrency: number, work: (object: ListedObject) => Promise<void>): Promise<void> {
  let batch: ListedObject[] = [];
  for await (const object of objects) {
    batch.push(object);
    if (batch.length >= BATCH) {
      await mapLimit(batch, concurrency, work);
      batch = [];
    }
  }
  await mapLimit(batch, concurrency, work);
}

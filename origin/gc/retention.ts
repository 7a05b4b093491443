// Which objects a retention run deletes: images not requested for longer
// than the policy allows, then every blob and manifest no remaining image
// references. Pure: storage's listing, the images' last use and the clock
// in; the deletions out. Storage I/O (listing, deleting) is the caller's.
//
// Safe by construction, because a wrong deletion would lose an image:
//   - an image whose record does not say what it references (written before
//     records kept their recipe) pins every object: nothing is collected;
//   - an object younger than the grace period is kept whatever references
//     it, so a build in flight (its layers written, its record not yet) never
//     loses a layer;
//   - an image never seen in use counts as used when its record was written.
import type { Digest } from '../../shared/digest.ts';
import type { ImageRecord } from '../image/image-store.ts';

export interface RetentionPolicy {
  /** Images not requested for this long are deleted. */
  maxIdleMs: number;
  /** Objects younger than this are never deleted (builds in flight). */
  graceMs: number;
}

export interface ImageEntry {
  key: string;
  /** Every digest the image's record references (config, manifests, layers); null when the record does not say. */
  references: readonly Digest[] | null;
  /** When the image was last requested (ms), or null if never recorded. */
  lastUsed: number | null;
  /** When its record was written (ms). */
  written: number;
}

export interface ObjectEntry {
  /** Storage key (`blobs/sha256/…`, `manifests/sha256/…`). */
  key: string;
  digest: Digest;
  size: number;
  /** When it was written (ms). */
  written: number;
}

export interface RetentionPlan {
  images: string[];
  objects: ObjectEntry[];
  bytes: number;
  /** Why nothing beyond image records may be collected, when that is so. */
  pinnedBy: string | null;
}

export function planRetention(images: readonly ImageEntry[], objects: readonly ObjectEntry[], policy: RetentionPolicy, now: number): RetentionPlan {
  const expired = new Set(images.filter((i) => now - (i.lastUsed ?? i.written) > policy.maxIdleMs && now - i.written > policy.graceMs).map((i) => i.key));
  const kept = images.filter((i) => !expired.has(i.key));
  const unknown = kept.find((i) => i.references === null);
  if (unknown) return { images: [...expired].sort(), objects: [], bytes: 0, pinnedBy: unknown.key };
  const referenced = new Set(kept.flatMap((i) => i.references ?? []));
  const deletable = objects.filter((o) => !referenced.has(o.digest) && now - o.written > policy.graceMs);
  return {
    images: [...expired].sort(),
    objects: deletable,
    bytes: deletable.reduce((sum, o) => sum + o.size, 0),
    pinnedBy: null,
  };
}

/** What an image record references; null for a record from before records kept their recipe. */
export function imageReferences(record: ImageRecord): Digest[] | null {
  if (!record.recipe || !record.config) return null;
  return [record.config, record.manifests.docker.digest, record.manifests.oci.digest, ...record.recipe.layers.map((l) => l.digest)];
}

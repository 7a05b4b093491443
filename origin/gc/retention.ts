// Which objects a retention run deletes: images not requested for longer
// than the policy allows, then every blob and manifest no remaining image
// references. Pure: storage's listing, the images' last use and the clock
// in; the deletions out. Storage I/O (listing, deleting) is the caller's.
//
// Safe by construction, because a wrong deletion would lose an image:
//   - an image whose record does not say what it references (written before
//     records kept their recipe) pins every object: planImages names it
//     (pinnedBy), and the run then collects nothing;
//   - an object younger than the grace period is kept whatever references
//     it, so a build in flight (its layers written, its record not yet) never
//     loses a layer;
//   - an image counts as used when its record was written, as well as when
//     it was last requested;
//   - a recorded use counts as up to one usage write interval later than it
//     says (usage.ts writes a use at most once an interval), so an image in
//     constant use is never idle however short the horizon;
//   - an index (one name over several platforms) keeps its platforms' images
//     for as long as it is kept itself, and goes before them.
import type { Digest } from '../../shared/digest.ts';
import type { ImageRecord } from '../image/image-store.ts';

export interface RetentionPolicy {
  /** Images not requested for this long are deleted. */
  maxIdleMs: number;
  /** Objects younger than this are never deleted (builds in flight). */
  graceMs: number;
  /**
   * How much older a recorded last use may be than the real one: a use is
   * written at most once per USAGE_WRITE_INTERVAL (usage.ts), so an image in
   * constant use may read that much older. Added to maxIdleMs for recorded
   * uses; 0 when absent.
   */
  usageLagMs?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The policy a configuration names (origin/config.ts RetentionConfig, and USAGE_WRITE_INTERVAL). */
export function retentionPolicy(config: { maxIdleDays: number; graceSeconds: number }, usageWriteIntervalSeconds: number): RetentionPolicy {
  return { maxIdleMs: config.maxIdleDays * DAY_MS, graceMs: config.graceSeconds * 1000, usageLagMs: usageWriteIntervalSeconds * 1000 };
}

export interface ImageEntry {
  key: string;
  /** Every digest the image's record references (config, manifests, layers); null when the record does not say. */
  references: readonly Digest[] | null;
  /** When the image was last requested (ms), or null if never recorded. */
  lastUsed: number | null;
  /** When its record was written (ms). */
  written: number;
  /** For an index: the image keys of its platforms' images, which it keeps. */
  members?: readonly string[];
}

export interface ImagePlan {
  /** Image keys to delete, indexes first (their records name the others). */
  expired: string[];
  /** Every digest a kept image references. */
  referenced: Set<Digest>;
  /** A kept image whose record does not say what it references, which pins every object; null when none does. */
  pinnedBy: string | null;
}

/**
 * Whether an image has gone unrequested for longer than the policy allows:
 * counted from the later of its last recorded use and its record's writing
 * (a build is a request), and never within the grace period.
 */
export function isIdle(image: Pick<ImageEntry, 'lastUsed' | 'written'>, policy: RetentionPolicy, now: number): boolean {
  const sinceUse = image.lastUsed === null ? Infinity : now - image.lastUsed - (policy.usageLagMs ?? 0);
  return sinceUse > policy.maxIdleMs && now - image.written > Math.max(policy.maxIdleMs, policy.graceMs);
}

/** Which images go, and what the ones that stay reference. */
export function planImages(images: readonly ImageEntry[], policy: RetentionPolicy, now: number): ImagePlan {
  const idle = (i: ImageEntry) => isIdle(i, policy, now);
  const expired = new Set(images.filter(idle).map((i) => i.key));
  // A kept index keeps its platforms' images, whatever their own use says.
  for (const index of images) if (!expired.has(index.key)) for (const member of index.members ?? []) expired.delete(member);
  const kept = images.filter((i) => !expired.has(i.key));
  const isIndex = new Set(images.filter((i) => i.members !== undefined).map((i) => i.key));
  const order = (a: string, b: string) => Number(isIndex.has(b)) - Number(isIndex.has(a)) || (a < b ? -1 : a > b ? 1 : 0);
  return {
    expired: [...expired].sort(order),
    referenced: new Set(kept.flatMap((i) => i.references ?? [])),
    pinnedBy: kept.find((i) => i.references === null)?.key ?? null,
  };
}

/** Whether an object may go: no kept image references it and it is older than the grace period. */
export function isCollectable(object: { digest: Digest; written: number }, referenced: ReadonlySet<Digest>, policy: RetentionPolicy, now: number): boolean {
  return !referenced.has(object.digest) && now - object.written > policy.graceMs;
}

/**
 * What an image record references; null for a record from before records
 * kept their recipe (or, for an index, its platforms' images). An index
 * references its own manifests; the manifests it lists belong to its
 * platforms' images, which it keeps (ImageEntry.members).
 */
export function imageReferences(record: ImageRecord): Digest[] | null {
  if (record.members) return [record.manifests.docker.digest, record.manifests.oci.digest];
  if (!record.recipe || !record.config) return null;
  return [record.config, record.manifests.docker.digest, record.manifests.oci.digest, ...record.recipe.layers.map((l) => l.digest)];
}

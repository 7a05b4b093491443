// The storage layout: every family of object names in the registry's storage,
// in one place. Every writer takes its keys from here (the origin for all of
// them, the edge for the blobs it signs URLs for without asking the origin),
// and docs/architecture.md lists exactly these families
// (test/unit/storage-keys.test.ts keeps the two in step).
//
// A family is a pattern with one `<placeholder>`; adding one is one line.

/** A family of keys: call it with the placeholder's value to get the key. */
export interface KeyFamily {
  (value: string): string;
  /** The key with its placeholder, as the docs write it: `blobs/sha256/<hex>`. */
  readonly pattern: string;
  /** What every key of the family starts with, up to the last `/` before the placeholder: the prefix to list it by. */
  readonly prefix: string;
  /** The placeholder's value in a key of this family; null for a key of another family. */
  parse(key: string): string | null;
}

function family(pattern: string): KeyFamily {
  const placeholder = /<[^<>]+>/.exec(pattern);
  if (placeholder === null) throw new Error(`storage key pattern without a placeholder: ${pattern}`);
  const [before, after] = [pattern.slice(0, placeholder.index), pattern.slice(placeholder.index + placeholder[0].length)];
  // Backends check the finished key (storage.ts checkStorageKey), so a value cannot escape its place.
  const prefix = before.slice(0, before.lastIndexOf('/') + 1);
  const parse = (key: string) => {
    if (!key.startsWith(before) || !key.endsWith(after) || key.length <= before.length + after.length) return null;
    const value = key.slice(before.length, key.length - after.length);
    // A value never holds a `/`: `popularity/<hash>.json` must not parse `popularity/learned/x.json`.
    return value.includes('/') ? null : value;
  };
  return Object.assign((value: string) => before + value + after, { pattern, prefix, parse });
}

/** A single object, not a family: its key is its pattern. */
function single(key: string): KeyFamily {
  return Object.assign(() => key, { pattern: key, prefix: key.slice(0, key.lastIndexOf('/') + 1), parse: (k: string) => (k === key ? '' : null) });
}

export const STORAGE_KEYS = {
  /** Layers and configs, content-addressed by their sha256 hex digest. */
  blob: family('blobs/sha256/<hex>'),
  /** Manifests and image indexes (both formats of each), content-addressed by their sha256 hex digest. */
  manifest: family('manifests/sha256/<hex>'),
  /** The layer cache: a group's identity → digest, diff_id, size. */
  layer: family('layers/<id>.json'),
  /** The reverse index of rebuildable layers: a blob's digest → the layer id whose record says how to remake it. */
  blobSource: family('blob-sources/sha256/<hex>.json'),
  /** The reverse index of derivable image parts: a manifest's or config's digest → the image key whose record rebuilds it. */
  imageSource: family('image-sources/sha256/<hex>.json'),
  /** The image cache: source identity + image → both manifests' digests. */
  image: family('images/<key>.json'),
  /** When an image was last requested (origin/gc/usage.ts), by its image key; rewritten at most once an interval per replica. */
  usage: family('usage/<image key>.json'),
  /** The last popularity data loaded from NIX_POPULARITY_URL, by the sha256 hex of the URL. */
  popularity: family('popularity/<hash of URL>.json'),
  /** Popularity one replica learned from the images it built (only that replica writes it). */
  learnedPopularity: family('popularity/learned/<replica>.json'),
  /** The replicas that keep learned counts, so each finds the others' records. */
  learnedPopularityIndex: single('popularity/learned/replicas.json'),
  /** The search index of one version of the package set, by the sha256 hex of the source's cache key and system (origin/search/indexes.ts). */
  index: family('index/<hash of source cache key and system>.json'),
  /** The running retention run's lease, or when the last one ended, and on which replica, so replicas sharing storage run it one at a time, once per interval (origin/gc/retention-schedule.ts). */
  retentionRun: single('gc/retention-run.json'),
  /** The readiness check's round-trip object, one per replica. */
  health: family('health/<replica>'),
} as const satisfies Record<string, KeyFamily>;

// The images this origin knows: image records (which manifests an image
// has) under a key that identifies exactly what was built, and the
// manifests themselves by digest. Records live in memory (an LRU) in front
// of storage, so a known image is served without running Nix again, by this
// replica or any other sharing the storage.
//
// Records are written last, after the config and the manifests they point
// at, so whatever a lookup returns exists.
import { IMAGE_FORMAT } from './manifest.ts';
import { createHash } from 'node:crypto';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA, type ManifestFormat } from '../../shared/media-types.ts';
import type { Architecture, ImageSpec } from '../../shared/names.ts';
import { Lru } from '../../shared/lru.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import type { ImageConfigInput, ImageManifests, SerializedBlob } from './manifest.ts';

export interface ManifestRef {
  digest: Digest;
  size: number;
}

/**
 * What the image cache remembers: enough to serve either format. For an
 * image, its manifests; for an index (a name over several platforms, see
 * image-index.ts), the Docker manifest list and the OCI index.
 */
export interface ImageRecord {
  manifests: Record<ManifestFormat, ManifestRef>;
  /** What the config and manifests are derived from, so they can be again; absent in older records. */
  recipe?: ImageConfigInput;
  /** The config's digest, indexed with the manifests' (absent in older records). */
  config?: Digest;
  /** An index's: the image keys of its platforms' images, which it keeps from retention (absent in older index records). */
  members?: string[];
}

/** The reverse index entry: which image a manifest or config belongs to. */
export interface ImageSource {
  image: string;
}

export interface ImageStoreStats {
  hits: number;
  misses: number;
}

/** A stable hash of JSON-able parts: the image cache's keys, and the builder's single-flight keys. */
export function hashKey(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** The key of an image whose source names its version (a commit, a pinned channel). */
export function sourceImageKey(sourceKey: string, spec: ImageSpec): string {
  return hashKey(['source', IMAGE_FORMAT, sourceKey, spec.arch, spec.packages]);
}

/**
 * The key of the index over `platforms` of an image whose source names its
 * version. A source that cannot (a local path) has no such key: its index is
 * made again from its platforms' images, which it evaluates on every pull anyway.
 */
export function sourceIndexKey(sourceKey: string, platforms: readonly Architecture[], packages: readonly string[]): string {
  return hashKey(['index', IMAGE_FORMAT, sourceKey, platforms, packages]);
}

/** The key of an image whose source cannot name its version (a local path): what it evaluated to. */
export function evaluatedImageKey(drvs: readonly string[], spec: ImageSpec): string {
  return hashKey(['drvs', IMAGE_FORMAT, drvs, spec.arch, spec.packages]);
}

/**
 * The digests a record can derive again, which image-sources maps to it: an
 * image's config and manifests, an index's two formats; none for a record
 * from before records kept what derives them.
 */
export function derivedDigests(record: ImageRecord): Digest[] {
  if (record.recipe && record.config) return [record.config, record.manifests.docker.digest, record.manifests.oci.digest];
  if (record.members && record.members.length > 0) return [record.manifests.docker.digest, record.manifests.oci.digest];
  return [];
}

/**
 * Whether bytes read under a digest are what the digest says (a damaged
 * manifest counts as lost). Asked of every manifest read, so hashed with
 * node:crypto, in a few microseconds, rather than with WebCrypto, whose
 * digest is a job on libuv's thread pool: one more trip through a busy
 * event loop for every cached pull.
 */
export function intact(digest: Digest, bytes: Uint8Array): boolean {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}` === digest;
}

/** A manifest or index read by digest; `intact` says whether it is what the digest says. */
export interface StoredManifest {
  bytes: Uint8Array;
  mediaType: string;
  intact: boolean;
}

/** Memory for manifests read from storage (see ImageStore.manifests). */
const MANIFEST_MEMORY_BYTES = 16 * 1024 * 1024;

/**
 * How long a manifest in memory is answered without a stat of storage: so
 * long may a manifest another process deleted (a replica's retention, `gc
 * --verify`) still be served here. A tenth of a second bounds the stats to
 * ten a second per hot manifest, whatever the rate of pulls. Under a burst
 * of requests each stat waited behind the burst's own work in libuv's thread
 * pool; with this window the cached pull's median p99 under bench:burst's
 * bursts fell from 41.7 to 34.8 ms (docs/operations.md).
 */
export const MANIFEST_RECHECK_MS = 100;

export class ImageStore {
  private readonly storage: Storage;
  private readonly records: Lru<string, { record: ImageRecord; at: number }>;
  /**
   * Manifests by digest, kept once read and found to be what their digest
   * says, for as long as records are. A cached pull (the edge's misses and
   * revalidations) then costs at most one trip through libuv's thread pool
   * (a stat: is it still there?) rather than four (open, stat, read, close),
   * each a wait for a core on a busy origin; and no trip at all within
   * MANIFEST_RECHECK_MS of the last stat (`checkedAt`), so that a burst of
   * pulls of one image costs a stat per MANIFEST_RECHECK_MS, not one per pull.
   */
  private readonly manifests: Lru<Digest, { bytes: Uint8Array; mediaType: string; at: number; checkedAt: number }>;
  private readonly memoryMs: number;
  readonly stats: ImageStoreStats = { hits: 0, misses: 0 };

  /**
   * `memoryMs`: how long a record is served from memory before storage is
   * asked again. Retention deletes records another replica may remember;
   * past this, that replica sees the deletion and builds the image again
   * rather than naming manifests that are gone.
   */
  constructor(storage: Storage, capacity = 1024, memoryMs = 10 * 60 * 1000) {
    this.storage = storage;
    this.records = new Lru(capacity);
    // A manifest is a few KiB (at most 4 MiB): 16 MiB holds thousands.
    this.manifests = new Lru(4 * capacity, { maxWeight: MANIFEST_MEMORY_BYTES, weigh: (m) => m.bytes.byteLength });
    this.memoryMs = memoryMs;
  }

  /** Drops a record, and the manifests it names, from memory (retention deleted it). */
  forget(key: string): void {
    const memory = this.records.get(key);
    if (memory) for (const ref of Object.values(memory.record.manifests)) this.manifests.delete(ref.digest);
    this.records.delete(key);
  }

  /** The record of a built image, from memory or storage; null when no replica built it. */
  async lookup(key: string): Promise<ImageRecord | null> {
    const memory = this.records.get(key);
    if (memory && performance.now() - memory.at < this.memoryMs) {
      this.stats.hits++;
      return memory.record;
    }
    const stored = await this.storage.get(STORAGE_KEYS.image(key));
    if (stored) {
      const record = JSON.parse(new TextDecoder().decode(stored)) as ImageRecord;
      this.records.set(key, { record, at: performance.now() });
      this.stats.hits++;
      return record;
    }
    this.records.delete(key);
    this.stats.misses++;
    return null;
  }

  /** Writes an image's config and both manifests (content-addressed, create-only) and returns its record. */
  async saveManifests(built: ImageManifests, recipe?: ImageConfigInput): Promise<ImageRecord> {
    await this.storage.put(STORAGE_KEYS.blob(digestHex(built.config.digest)), built.config.bytes, built.config.mediaType, { createOnly: true });
    for (const format of ['docker', 'oci'] as const) {
      const m = built.manifests[format];
      await this.storage.put(STORAGE_KEYS.manifest(digestHex(m.digest)), m.bytes, m.mediaType, { createOnly: true });
    }
    return {
      manifests: {
        docker: { digest: built.manifests.docker.digest, size: built.manifests.docker.bytes.length },
        oci: { digest: built.manifests.oci.digest, size: built.manifests.oci.bytes.length },
      },
      ...(recipe ? { recipe, config: built.config.digest } : {}),
    };
  }

  /**
   * Writes both formats of an index (content-addressed, create-only, beside
   * manifests) and returns its record, which names its platforms' image keys.
   */
  async saveIndexes(indexes: Record<ManifestFormat, SerializedBlob>, members: readonly string[]): Promise<ImageRecord> {
    for (const format of ['docker', 'oci'] as const) {
      await this.storage.put(STORAGE_KEYS.manifest(digestHex(indexes[format].digest)), indexes[format].bytes, indexes[format].mediaType, { createOnly: true });
    }
    return {
      manifests: {
        docker: { digest: indexes.docker.digest, size: indexes.docker.bytes.length },
        oci: { digest: indexes.oci.digest, size: indexes.oci.bytes.length },
      },
      members: [...members],
    };
  }

  /** Remembers a finished image under its key; call after `saveManifests`. */
  async remember(key: string, record: ImageRecord): Promise<void> {
    this.records.set(key, { record, at: performance.now() });
    // Every digest the record answers with leads back to it: a manifest or
    // config, so recovery can derive it again (manifest-recovery.ts; an
    // index's from its platforms' records), and every manifest, an index's
    // included, so a request for it counts as the image's use (gc/image-hits.ts).
    const source = new TextEncoder().encode(JSON.stringify({ image: key } satisfies ImageSource));
    for (const digest of [...(record.config ? [record.config] : []), record.manifests.docker.digest, record.manifests.oci.digest]) {
      await this.storage.put(STORAGE_KEYS.imageSource(digestHex(digest)), source, MEDIA.json);
    }
    await this.storage.put(STORAGE_KEYS.image(key), new TextEncoder().encode(JSON.stringify(record)), MEDIA.json);
  }

  /** The key of the image a manifest or config digest belongs to (the image-sources index), or null when none is indexed. */
  async imageOf(digest: Digest): Promise<string | null> {
    const source = await this.storage.get(STORAGE_KEYS.imageSource(digestHex(digest)));
    if (!source) return null;
    try {
      const image = (JSON.parse(new TextDecoder().decode(source)) as Partial<ImageSource>).image;
      return typeof image === 'string' ? image : null;
    } catch {
      // A damaged entry indexes nothing; the image's next build writes it again.
      return null;
    }
  }

  /**
   * Forgets the records in memory that answer with this manifest: storage
   * no longer has it nor a record to derive it from (retention deleted the
   * image), so the next lookup reads storage and finds the image gone.
   * Returns whether any was forgotten.
   */
  forgetManifest(digest: Digest): boolean {
    this.manifests.delete(digest);
    const members: string[] = [];
    const forgotten = this.records.deleteWhere((_, { record }) => {
      const answers = record.manifests.docker.digest === digest || record.manifests.oci.digest === digest;
      // An index built again must not name its platforms' manifests from memory either.
      if (answers) members.push(...(record.members ?? []));
      return answers;
    });
    for (const member of members) this.records.delete(member);
    return forgotten > 0;
  }

  /** The stored record under an image key, bypassing memory (recovery reads what storage holds). */
  async storedRecord(key: string): Promise<ImageRecord | null> {
    const stored = await this.storage.get(STORAGE_KEYS.image(key));
    return stored ? (JSON.parse(new TextDecoder().decode(stored)) as ImageRecord) : null;
  }

  /** A stored manifest or index by digest; null when no image ever had it (or what is stored is no manifest). */
  async manifest(digest: Digest): Promise<StoredManifest | null> {
    const key = STORAGE_KEYS.manifest(digestHex(digest));
    const memory = this.manifests.get(digest);
    const now = performance.now();
    if (memory && now - memory.at < this.memoryMs) {
      if (now - memory.checkedAt < MANIFEST_RECHECK_MS) return { bytes: memory.bytes, mediaType: memory.mediaType, intact: true };
      // Still there, whole: another process (a replica's retention, `gc --verify`) may have deleted it, and a
      // manifest must not outlive its image. One stat, where a read is four trips.
      const info = await this.storage.stat(key);
      if (info?.size === memory.bytes.byteLength) {
        memory.checkedAt = performance.now();
        return { bytes: memory.bytes, mediaType: memory.mediaType, intact: true };
      }
      this.manifests.delete(digest);
    }
    const bytes = await this.storage.get(key);
    if (!bytes) return null;
    let parsed: { mediaType?: string };
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: string };
    } catch {
      // A damaged (truncated) manifest is as good as none; recovery may derive it again.
      return null;
    }
    const found = { bytes, mediaType: parsed.mediaType ?? MEDIA.dockerManifest, intact: intact(digest, bytes) };
    // Only what its digest says: a damaged copy is left for recovery to replace, never remembered.
    if (found.intact) {
      const read = performance.now();
      this.manifests.set(digest, { bytes, mediaType: found.mediaType, at: read, checkedAt: read });
    }
    return found;
  }
}

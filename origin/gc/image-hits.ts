// Manifest requests as the use of images: a manifest the origin answers
// (by tag or digest, the edge's tag revalidations included) and a manifest
// the edge reports having answered from its own tiers both touch the image
// the manifest belongs to (usage.ts). A digest leads to its image key through
// the image-sources index (image-store.ts `imageOf`).
//
// A report is also the edge's question "can you still serve these?": the
// answer lists the digests the origin can no longer serve, and the edge
// drops them (docs/operations.md, "Last use"). A digest is served while its
// image record exists (the manifest can be derived again from it) or the
// manifest itself is stored; retention deletes both together.
//
// What a report may cost is bounded: at most HIT_REPORT_LIMITS.maxDigests
// digests, each at most three small storage reads, and a hot digest's image
// key and its image's record are read once an interval, not once a report.
// Once an interval and not once for all: a digest's image-sources entry can
// move to another image (a newer build of the same manifest, retention's
// keeper), and the use must be credited to the image that now answers it.
import type { Logger } from 'pino';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { Lru } from '../../shared/lru.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { ImageStore } from '../image/image-store.ts';
import { mapLimit } from '../image/map-limit.ts';
import type { Storage } from '../storage/storage.ts';
import type { UsageLog } from './usage.ts';

export interface ImageHitsOptions {
  /** How long an image record seen in storage is taken to exist without looking again (ms): the usage write interval. */
  intervalMs: number;
  log: Logger;
  /** Digests and images remembered in memory. */
  capacity?: number;
}

/** Storage reads of one report in flight at once. */
const REPORT_CONCURRENCY = 8;

export class ImageHits {
  private readonly storage: Storage;
  private readonly images: ImageStore;
  private readonly usage: UsageLog;
  private readonly options: ImageHitsOptions;
  /**
   * Digest → image key, and when it was read. A digest can change image: a
   * newer build of the same manifest (a newer package set with the same
   * store paths) takes the image-sources entry over, and retention points an
   * entry at a kept image when the one it named goes. So an entry is read
   * again once an interval, like a record's existence below.
   */
  private readonly keys: Lru<Digest, { key: string; at: number }>;
  /** Image key → when its record was last seen in storage. */
  private readonly confirmed: Lru<string, number>;

  constructor(storage: Storage, images: ImageStore, usage: UsageLog, options: ImageHitsOptions) {
    this.storage = storage;
    this.images = images;
    this.usage = usage;
    this.options = options;
    this.keys = new Lru(options.capacity ?? 100_000);
    this.confirmed = new Lru(options.capacity ?? 100_000);
  }

  /** The origin answered this manifest: its image was used. Never throws and never delays the answer. */
  answered(digest: Digest, at: number): void {
    this.use(digest, at).catch((err: unknown) => this.options.log.warn({ err, digest }, 'cannot record the use of an image'));
  }

  /** The edge answered these manifests: their images were used. Returns those this origin can no longer serve. */
  async report(digests: readonly Digest[], at: number): Promise<Digest[]> {
    const served = await mapLimit(digests, REPORT_CONCURRENCY, (digest) => this.use(digest, at));
    const unknown = digests.filter((_, i) => !served[i]);
    if (unknown.length > 0) this.options.log.info({ digests: unknown }, 'the edge reported manifests this origin can no longer serve');
    return unknown;
  }

  /** Touches the digest's image if it still exists; whether the origin can still serve the digest. */
  private async use(digest: Digest, at: number): Promise<boolean> {
    const key = await this.imageOf(digest, at);
    if (key !== null && (await this.recordExists(key, at))) {
      await this.usage.touch(key, at);
      return true;
    }
    // No image record: still served if the manifest itself is stored (an index written before
    // indexes were in the image-sources index, or a record that predates it).
    return (await this.storage.stat(STORAGE_KEYS.manifest(digestHex(digest)))) !== null;
  }

  private async imageOf(digest: Digest, at: number): Promise<string | null> {
    const known = this.keys.get(digest);
    if (known !== undefined && at - known.at < this.options.intervalMs && at >= known.at) return known.key;
    const key = await this.images.imageOf(digest);
    // Only found keys are remembered: a digest not indexed yet may be by the next build.
    if (key !== null) this.keys.set(digest, { key, at });
    else this.keys.delete(digest);
    return key;
  }

  /**
   * Whether the image's record is in storage (not this replica's memory,
   * which may still hold a record retention deleted). Seen once, it is
   * taken to exist for an interval, so a deletion is noticed within one.
   */
  private async recordExists(key: string, at: number): Promise<boolean> {
    const seen = this.confirmed.get(key);
    if (seen !== undefined && at - seen < this.options.intervalMs && at >= seen) return true;
    if ((await this.storage.stat(STORAGE_KEYS.image(key))) === null) {
      this.confirmed.delete(key);
      return false;
    }
    this.confirmed.set(key, at);
    return true;
  }
}

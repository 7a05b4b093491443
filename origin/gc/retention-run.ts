// One retention run over storage: list the image records, decide with
// retention.ts which images and objects go, and delete them, then the small
// records that only described what is gone. The decisions are retention.ts's
// (pure); this module is the listing, the reading and the order of deletions.
//
// The order, so that a crash at any point leaves every remaining record
// pointing at objects that exist or can be made again:
//
//   1. Expired image records (each followed by its usage record, several
//      at once), every index before any image. Image records are what pulls
//      start from (a tag finds its record); once one is gone, nothing that
//      serves a pull points at its manifests, config or layers. An index
//      goes first so that no index record is left naming a platform image
//      whose record is gone. Each image's last use and its record's write
//      time are read again just before its deletion (the first reading may
//      be minutes old by then): one pulled meanwhile stays, with what it
//      references (an index with its platforms' images), and one whose
//      record a build wrote again is left to the second listing. Only a pull
//      within the round trip between that check and the deletion is lost.
//   2. Unreferenced manifests and blobs. Nothing kept references them. Before
//      a layer blob is deleted its blob-sources entry is written again, which
//      stamps when the blob went: its layer record (the recipe) outlives the
//      blob by the grace period. A build that found the layer just before
//      the deletion (it stat'ed the blob, then wrote an image record naming
//      it after this run listed the images) therefore still has a recipe:
//      the blob route rebuilds the blob on the first request
//      (image/blob-recovery.ts).
//      Then the images are listed a third time: a record written during the
//      deletions that names a deleted object gets it made again at once
//      (`repair`: blob and manifest recovery), not when a client asks, which
//      behind the edge with GCS storage never reaches the origin.
//   3. Dead records: image-sources entries for digests no kept image
//      references, usage records of images whose record is gone, and
//      blob-sources entries (then the layer record they
//      name) whose blob has been gone for longer than the grace period.
//      blob-sources goes before its layer record: a crash in between leaves
//      a layer record whose blob is missing, which is what a layer record
//      can rebuild from its own recipe. Each is checked again after it is
//      deleted (its image record exists again, its blob was written again by
//      a concurrent build) and put back if so.
//
// Concurrent builds: an object younger than the grace period is never
// deleted (a build writing new layers), images written since the run's first
// listing are read again before any object is deleted (a build that reused
// old objects), and what remains, a build that read a layer between that
// second listing and the deletion, is covered by the third listing and, for
// a record written after it, by the build itself: once its record is
// written it looks at every object the record names and makes a missing one
// again (image/record-objects.ts). Either it sees the object, and the
// deletion came after the record, which this run's third listing then finds,
// or it does not, and makes it. The stamp in step 2 keeps the layer records
// it needs for that (and the blob route rebuilds from them too).
import { digestHex, type Digest } from '../../shared/digest.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { mapLimit } from '../image/map-limit.ts';
import { collect, digestOfKey, inBatches, parseJson } from './listing.ts';
import { derivedDigests, type ImageRecord, type ImageSource } from '../image/image-store.ts';
import type { BlobSource, LayerRecord } from '../image/layer-store.ts';
import type { ListedObject, Storage } from '../storage/storage.ts';
import { imageReferences, isCollectable, isIdle, planImages, type ImageEntry, type RetentionPolicy } from './retention.ts';

/** When an image was last requested (ms), or null if never recorded (origin/gc/usage.ts). */
export type LastUsed = (imageKey: string) => Promise<number | null>;

export interface RetentionRunOptions {
  storage: Storage;
  policy: RetentionPolicy;
  lastUsed: LastUsed;
  /** Decide and report, delete nothing. */
  dryRun?: boolean;
  now?: () => number;
  /** Storage requests in flight at once. */
  concurrency?: number;
  /**
   * Whether the report lists every object and record deleted (the gc
   * command prints them); false counts them only, so a first run over a
   * large bucket holds no list of its deletions (the scheduled run).
   */
  listDeletions?: boolean;
  /**
   * Makes a deleted object again (blob and manifest recovery) when an image
   * record written during the run names it; true when it could.
   */
  repair?: (digest: Digest) => Promise<boolean>;
}

export interface RetentionReport {
  dryRun: boolean;
  /** Image keys deleted (or that would be), indexes first. */
  images: string[];
  /** Blobs and manifests deleted (or that would be); empty when not listed (listDeletions). */
  objects: ListedObject[];
  /** How many: objects and small records deleted (or that would be), listed or not. */
  deleted: { objects: number; records: number };
  /** Their bytes. */
  bytes: number;
  /** Small records deleted (or that would be): image-sources, blob-sources, layer records, usage; empty when not listed. */
  records: string[];
  /** A kept image whose record does not say what it references; while one exists, no object is deleted. */
  pinnedBy: string | null;
  /** Objects this run deleted that an image written meanwhile names, and whether they were made again. */
  remade: { digest: Digest; made: boolean }[];
  /** Blobs and manifests in storage when they were listed, before this run deleted any. */
  stored: { objects: number; bytes: number };
  ms: number;
}

const encoder = new TextEncoder();

interface ReadImage {
  entry: ImageEntry;
  /** The manifest and config digests its record answers with (image-sources entries lead to it); not the record, whose recipe is most of its size. */
  derived: Digest[];
}

/**
 * Reads the image records listed, with their last use; records deleted since
 * the listing are skipped. `lastUsed` is not asked of a `recent` record: one
 * written within the idle horizon cannot be idle whatever its use (retention.ts isIdle).
 */
async function readImages(storage: Storage, listed: readonly ListedObject[], lastUsed: LastUsed, concurrency: number, recent: (written: number) => boolean): Promise<ReadImage[]> {
  const read = await mapLimit(listed, concurrency, async (object): Promise<ReadImage | null> => {
    const key = STORAGE_KEYS.image.parse(object.key);
    if (key === null) return null;
    const bytes = await storage.get(object.key);
    if (!bytes) return null;
    const record = parseJson<ImageRecord>(bytes);
    // A record that does not parse says nothing of what it references: it pins, as an old record does.
    const references = record ? imageReferences(record) : null;
    const entry: ImageEntry = { key, references, lastUsed: recent(object.written) ? null : await lastUsed(key), written: object.written, ...(record?.members ? { members: record.members } : {}) };
    return { entry, derived: record ? derivedDigests(record) : [] };
  });
  return read.filter((r): r is ReadImage => r !== null);
}

export async function runRetention(options: RetentionRunOptions): Promise<RetentionReport> {
  const { storage, policy, lastUsed } = options;
  const dryRun = options.dryRun ?? false;
  const clock = options.now ?? Date.now;
  const concurrency = options.concurrency ?? 16;
  const listDeletions = options.listDeletions ?? true;
  const started = performance.now();
  const now = clock();
  const report: RetentionReport = { dryRun, images: [], objects: [], deleted: { objects: 0, records: 0 }, bytes: 0, records: [], pinnedBy: null, remade: [], stored: { objects: 0, bytes: 0 }, ms: 0 };

  // 1. Images: which go, and what the others reference.
  const firstListing = await collect(storage.list(STORAGE_KEYS.image.prefix));
  const images = await readImages(storage, firstListing, lastUsed, concurrency, (written) => now - written <= policy.maxIdleMs);
  const plan = planImages(images.map((i) => i.entry), policy, now);
  report.pinnedBy = plan.pinnedBy;
  const expired = new Set(plan.expired);
  const referenced = plan.referenced;
  const listedWritten = new Map(images.map((i) => [i.entry.key, i.entry.written]));
  const byKey = new Map(images.map((i) => [i.entry.key, i]));
  /** An expired image found in use after all: it stays, with what it references (an index: its platforms' images). */
  const keep = (key: string): void => {
    if (!expired.delete(key)) return;
    const { entry } = byKey.get(key)!;
    if (entry.references === null) report.pinnedBy ??= key;
    for (const digest of entry.references ?? []) referenced.add(digest);
    for (const member of entry.members ?? []) keep(member);
  };
  const expire = async (key: string): Promise<void> => {
    // Kept by an index rescued below (indexes come first).
    if (!expired.has(key)) return;
    // The reading above may be minutes old: an image pulled since (a new
    // usage record) or built again (a new record) is no longer idle.
    const [used, info] = await Promise.all([lastUsed(key), storage.stat(STORAGE_KEYS.image(key))]);
    // Written again: kept, and read by the listing below as a new record.
    if (info?.written !== undefined && info.written !== listedWritten.get(key)) {
      expired.delete(key);
      return;
    }
    const entry = byKey.get(key)!.entry;
    if (!isIdle({ ...entry, lastUsed: used }, policy, now)) {
      keep(key);
      return;
    }
    await storage.delete(STORAGE_KEYS.image(key));
    // Its last use describes nothing any more; an image built again under the key starts a new one.
    await storage.delete(STORAGE_KEYS.usage(key));
  };
  // Side by side, but every index before any image: an index kept after all keeps its platforms' images.
  const isIndex = (key: string) => byKey.get(key)!.entry.members !== undefined;
  if (!dryRun) {
    await mapLimit(plan.expired.filter(isIndex), concurrency, expire);
    await mapLimit(plan.expired.filter((key) => !isIndex(key)), concurrency, expire);
  }
  report.images = plan.expired.filter((key) => expired.has(key));

  // Records written since the first listing (a build that reused old objects,
  // an expired image built again) are kept whatever they reference.
  const firstWritten = new Map(firstListing.map((o) => [o.key, o.written]));
  const newRecords = async (): Promise<ReadImage[]> => {
    const fresh = (await collect(storage.list(STORAGE_KEYS.image.prefix))).filter((o) => {
      const key = STORAGE_KEYS.image.parse(o.key);
      // New, written again, or deleted above and already back.
      return key !== null && (firstWritten.get(o.key) !== o.written || (!dryRun && expired.has(key)));
    });
    return await readImages(storage, fresh, async () => null, concurrency, () => true);
  };
  const keptImages = images.filter((i) => !expired.has(i.entry.key));
  for (const added of await newRecords()) {
    keptImages.push(added);
    if (added.entry.references === null) report.pinnedBy ??= added.entry.key;
    for (const digest of added.entry.references ?? []) referenced.add(digest);
  }

  // 2. Blobs and manifests no kept image references, past the grace period.
  const deletedBlobs = new Set<Digest>();
  const deleted = new Set<Digest>();
  for (const family of [STORAGE_KEYS.manifest, STORAGE_KEYS.blob]) {
    await inBatches(storage.list(family.prefix), concurrency, async (object) => {
      report.stored.objects++;
      report.stored.bytes += object.size;
      const digest = digestOfKey(family, object.key);
      if (digest === null || report.pinnedBy !== null || !isCollectable({ digest, written: object.written }, referenced, policy, now)) return;
      report.deleted.objects++;
      if (listDeletions) report.objects.push(object);
      report.bytes += object.size;
      if (dryRun) return;
      deleted.add(digest);
      if (family === STORAGE_KEYS.blob) {
        deletedBlobs.add(digest);
        const source = STORAGE_KEYS.blobSource(digestHex(digest));
        const bytes = await storage.get(source);
        if (bytes) await storage.put(source, bytes, MEDIA.json);
      }
      await storage.delete(object.key);
    });
  }
  // A record written while objects were being deleted may name one of them
  // (a build that found it just before): made again now, from the records
  // kept for it, rather than when a client asks. Behind the edge with GCS a
  // client's blob request goes to GCS alone and would never reach recovery.
  if (!dryRun && deleted.size > 0) {
    for (const added of await newRecords()) {
      if (added.entry.references === null) report.pinnedBy ??= added.entry.key;
      for (const digest of added.entry.references ?? []) {
        referenced.add(digest);
        if (!deleted.has(digest)) continue;
        const made = options.repair ? await options.repair(digest).catch(() => false) : false;
        report.remade.push({ digest, made });
      }
      keptImages.push(added);
    }
  }
  /** A kept image that references a manifest or config digest, for image-sources entries naming a deleted image. */
  const owner = new Map<Digest, string>();
  for (const { entry, derived } of keptImages) {
    for (const digest of derived) owner.set(digest, entry.key);
  }
  const deletedRecord = (key: string): void => {
    report.deleted.records++;
    if (listDeletions) report.records.push(key);
  };
  // Without knowing what every kept image references, no record can be said to be dead.
  if (report.pinnedBy === null) await deleteDeadRecords(storage, { referenced, owner, expired, kept: new Set(keptImages.map((i) => i.entry.key)), deletedBlobs, policy, now, dryRun, concurrency, deletedRecord });
  report.ms = Math.round(performance.now() - started);
  return report;
}

interface DeadRecordContext {
  referenced: ReadonlySet<Digest>;
  owner: ReadonlyMap<Digest, string>;
  expired: ReadonlySet<string>;
  /** Image keys whose records stay. */
  kept: ReadonlySet<string>;
  /** Blobs this run deleted: their records stay for the grace period from now. */
  deletedBlobs: ReadonlySet<Digest>;
  policy: RetentionPolicy;
  now: number;
  dryRun: boolean;
  concurrency: number;
  /** Counts a record deleted (or that would be), and lists it when the report lists deletions. */
  deletedRecord: (key: string) => void;
}

/** 3. The small records that only describe what is gone. */
async function deleteDeadRecords(storage: Storage, c: DeadRecordContext): Promise<void> {
  const old = (object: ListedObject) => c.now - object.written > c.policy.graceMs;

  await inBatches(storage.list(STORAGE_KEYS.imageSource.prefix), c.concurrency, async (object) => {
    const digest = digestOfKey(STORAGE_KEYS.imageSource, object.key);
    if (digest === null) return;
    const bytes = await storage.get(object.key);
    const image = bytes ? parseJson<ImageSource>(bytes)?.image : undefined;
    if (c.referenced.has(digest)) {
      // Two images can share a manifest: keep the entry pointing at one that stays.
      const keeper = c.owner.get(digest);
      if (keeper !== undefined && image !== undefined && c.expired.has(image) && !c.dryRun) {
        await storage.put(object.key, encoder.encode(JSON.stringify({ image: keeper } satisfies ImageSource)), MEDIA.json);
      }
      return;
    }
    if (!old(object)) return;
    // An image built again since the listing wrote its entries before its record
    // (a dry run deleted no record: one it would have deleted does not count).
    if (image !== undefined && !(c.dryRun && c.expired.has(image)) && (await storage.stat(STORAGE_KEYS.image(image)))) return;
    c.deletedRecord(object.key);
    if (c.dryRun || !bytes) return;
    await storage.delete(object.key);
    if (image !== undefined && (await storage.stat(STORAGE_KEYS.image(image)))) await storage.put(object.key, bytes, MEDIA.json);
  });

  // Last use of images whose record is gone (dropped by the scrub, deleted by hand): a usage record
  // is written only when an image's manifest is answered, so one older than the grace period without
  // its record describes nothing.
  await inBatches(storage.list(STORAGE_KEYS.usage.prefix), c.concurrency, async (object) => {
    const key = STORAGE_KEYS.usage.parse(object.key);
    if (key === null || c.kept.has(key) || c.expired.has(key) || !old(object)) return;
    if (await storage.stat(STORAGE_KEYS.image(key))) return;
    c.deletedRecord(object.key);
    if (!c.dryRun) await storage.delete(object.key);
  });

  await inBatches(storage.list(STORAGE_KEYS.blobSource.prefix), c.concurrency, async (object) => {
    const digest = digestOfKey(STORAGE_KEYS.blobSource, object.key);
    if (digest === null || c.referenced.has(digest) || c.deletedBlobs.has(digest) || !old(object)) return;
    const blob = STORAGE_KEYS.blob(digestHex(digest));
    if (await storage.stat(blob)) return;
    const bytes = await storage.get(object.key);
    const layerId = bytes ? parseJson<BlobSource>(bytes)?.layer : undefined;
    const layerKey = layerId !== undefined ? STORAGE_KEYS.layer(layerId) : null;
    const layerBytes = layerKey ? await storage.get(layerKey) : null;
    // Only the record of this very blob: the entry may be stale and the id's record describe another.
    const layer = layerBytes && parseJson<LayerRecord>(layerBytes)?.digest === digest ? layerBytes : null;
    c.deletedRecord(object.key);
    if (layer && layerKey) c.deletedRecord(layerKey);
    if (c.dryRun) return;
    await storage.delete(object.key);
    if (layer && layerKey) await storage.delete(layerKey);
    // A build wrote the layer again meanwhile (blob first, then its records): give them back.
    if (await storage.stat(blob)) {
      if (layer && layerKey) await storage.put(layerKey, layer, MEDIA.json);
      if (bytes) await storage.put(object.key, bytes, MEDIA.json);
    }
  });
}

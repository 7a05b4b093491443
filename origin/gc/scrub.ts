// The scrub (`npm run gc -- --verify`): reads every blob and manifest and
// checks its sha256 against its name, then checks that every image record's
// objects are there. What is damaged is deleted and made again through the
// recovery the blob and manifest routes use (image/blob-recovery.ts,
// image/manifest-recovery.ts); a missing image-sources entry of a record is
// written again, so a later loss of its manifests stays recoverable.
//
// An image some object of which cannot be made again (its recipe is gone, or
// its store paths are not in this machine's /nix/store) loses its record,
// and an index naming it loses its record too: the next pull by tag builds
// the image again (Nix rebuilds or substitutes what is gone) instead of
// naming a blob that answers 404 for ever. That is the damage beyond repair
// the scrub reports, and exits non-zero for.
//
// The scrub may run for hours beside origins that build: an object step 2
// does not know from step 1 (written after step 1 listed its family) is
// looked for in storage before it counts as missing, and so is a platform's
// record an index names that the listing of records did not include.
import { createHash } from 'node:crypto';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { BlobRecovery } from '../image/blob-recovery.ts';
import { derivedDigests, type ImageRecord, type ImageSource } from '../image/image-store.ts';
import type { ManifestRecovery } from '../image/manifest-recovery.ts';
import type { Storage } from '../storage/storage.ts';
import { digestOfKey, inBatches, parseJson } from './listing.ts';
import { imageReferences } from './retention.ts';
import { remakeObject } from '../image/remake-object.ts';
import { recordObjectKeys } from '../image/record-objects.ts';

export interface ScrubOptions {
  storage: Storage;
  blobs: BlobRecovery;
  manifests: ManifestRecovery;
  /** Objects read at once. */
  concurrency?: number;
}

export interface ScrubReport {
  /** Blobs and manifests read, and their bytes. */
  read: number;
  bytes: number;
  /** Objects whose bytes did not match their digest: deleted, then made again or not. */
  damaged: { key: string; repaired: boolean }[];
  /** Objects an image record names that were not in storage: made again or not. */
  missing: { digest: Digest; image: string; repaired: boolean }[];
  /** image-sources entries written again for records that lacked them. */
  sourcesRestored: number;
  /** Image records deleted because an object of theirs cannot be made again (the next pull builds them). */
  droppedImages: string[];
  /** Records from before recipes: what they reference cannot be checked. */
  unchecked: string[];
}

const encoder = new TextEncoder();

async function sha256Of(storage: Storage, key: string): Promise<Digest | null> {
  const stream = await storage.read(key);
  if (!stream) return null;
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

export async function scrub(options: ScrubOptions): Promise<ScrubReport> {
  const { storage } = options;
  const concurrency = options.concurrency ?? 4;
  const report: ScrubReport = { read: 0, bytes: 0, damaged: [], missing: [], sourcesRestored: 0, droppedImages: [], unchecked: [] };
  const present = new Set<Digest>();

  // 1. Every blob and manifest against its name.
  for (const family of [STORAGE_KEYS.blob, STORAGE_KEYS.manifest]) {
    await inBatches(storage.list(family.prefix), concurrency, async (object) => {
      const digest = digestOfKey(family, object.key);
      if (digest === null) return;
      const actual = await sha256Of(storage, object.key);
      if (actual === null) return;
      report.read++;
      report.bytes += object.size;
      if (actual === digest) {
        present.add(digest);
        return;
      }
      // Wrong bytes are worse than none: a client would fail on the digest. Gone first, then made again.
      await storage.delete(object.key);
      const repaired = await remakeObject(options.blobs, options.manifests, digest);
      if (repaired) present.add(digest);
      report.damaged.push({ key: object.key, repaired });
    });
  }

  // 2. Every image record's objects, images before the indexes that name them.
  const records: { key: string; record: ImageRecord | null }[] = [];
  for await (const object of storage.list(STORAGE_KEYS.image.prefix)) {
    const key = STORAGE_KEYS.image.parse(object.key);
    const bytes = key === null ? null : await storage.get(object.key);
    if (key === null || bytes === null) continue;
    // A record that does not parse serves nothing: dropped below, built again on the next pull.
    records.push({ key, record: parseJson<ImageRecord>(bytes) });
  }
  const listedKeys = new Set(records.map((r) => r.key));
  records.sort((a, b) => Number(a.record?.members !== undefined) - Number(b.record?.members !== undefined));
  const dropped = new Set<string>();
  const drop = async (key: string) => {
    await storage.delete(STORAGE_KEYS.image(key));
    dropped.add(key);
    report.droppedImages.push(key);
  };
  for (const { key, record } of records) {
    if (record === null) {
      await drop(key);
      continue;
    }
    const references = imageReferences(record);
    if (references === null) {
      report.unchecked.push(key);
      continue;
    }
    // Recovery finds a record through these: one lost with a race or by hand is written again.
    const source = encoder.encode(JSON.stringify({ image: key } satisfies ImageSource));
    for (const digest of derivedDigests(record)) {
      const sourceKey = STORAGE_KEYS.imageSource(digestHex(digest));
      const stored = await storage.get(sourceKey);
      const named = stored ? parseJson<ImageSource>(stored)?.image : undefined;
      if (named !== undefined && (named === key || (await storage.stat(STORAGE_KEYS.image(named))))) continue;
      await storage.put(sourceKey, source, MEDIA.json);
      report.sourcesRestored++;
    }
    // An index whose platform's record is gone would name manifests nothing can make again.
    // A platform's record written after the listing above is there all the same.
    let whole = true;
    for (const member of record.members ?? []) {
      if (dropped.has(member) || (!listedKeys.has(member) && !(await storage.stat(STORAGE_KEYS.image(member))))) whole = false;
    }
    const keyOf = new Map(recordObjectKeys(record).map((o): [Digest, string] => [o.digest, o.key]));
    for (const digest of references) {
      if (present.has(digest)) continue;
      // Step 1 saw only what was stored when it listed: an image built since wrote its objects later.
      const objectKey = keyOf.get(digest);
      if (objectKey !== undefined && (await storage.stat(objectKey))) continue;
      const repaired = await remakeObject(options.blobs, options.manifests, digest);
      if (repaired) present.add(digest);
      report.missing.push({ digest, image: key, repaired });
      if (!repaired) whole = false;
    }
    if (!whole) await drop(key);
  }
  return report;
}


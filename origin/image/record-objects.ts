// After a build writes its image record: every object the record names is
// looked at once more, and one that is gone is made again (remake-object.ts).
//
// Why: a build reuses an old layer (or config, or manifest) after one stat
// (layer-store.ts ensure, the create-only puts of image-store.ts), then
// spends minutes on its other layers. Retention (gc/retention-run.ts) may
// delete that object in between, when no kept image references it, and its
// last listing of the images may come before this record exists. With GCS
// behind the edge, clients fetch blobs without asking the origin, so nothing
// else would notice: the blob answers 404 until a scrub.
//
// The order makes it whole: this looks after the record is written. If it
// sees the object, any deletion came after the record, so the retention run
// that deletes it lists the record afterwards and makes the object again
// itself; if it does not, it makes it here. One stat per object per build.
import { digestHex, type Digest } from '../../shared/digest.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import type { ImageRecord } from './image-store.ts';
import { mapLimit } from './map-limit.ts';

export interface RecordRepair {
  storage: Storage;
  /** Makes a lost object again (remake-object.ts); true when it could. */
  remake: (digest: Digest) => Promise<boolean>;
}

/** Stats looked at once. */
const CONCURRENCY = 8;

/** The storage key of every object a record names: config and layers are blobs, its two formats manifests. */
export function recordObjectKeys(record: ImageRecord): { digest: Digest; key: string }[] {
  const blobs = [...(record.config ? [record.config] : []), ...(record.recipe?.layers.map((l) => l.digest) ?? [])];
  return [
    ...blobs.map((digest) => ({ digest, key: STORAGE_KEYS.blob(digestHex(digest)) })),
    ...[record.manifests.docker.digest, record.manifests.oci.digest].map((digest) => ({ digest, key: STORAGE_KEYS.manifest(digestHex(digest)) })),
  ];
}

/** Makes again what the record names and storage lacks; returns what was missing, and whether each was made. */
export async function ensureRecordObjects(record: ImageRecord, repair: RecordRepair): Promise<{ digest: Digest; made: boolean }[]> {
  const checked = await mapLimit(recordObjectKeys(record), CONCURRENCY, async ({ digest, key }) => {
    if (await repair.storage.stat(key)) return null;
    return { digest, made: await repair.remake(digest) };
  });
  return checked.filter((c): c is { digest: Digest; made: boolean } => c !== null);
}

// Makes any lost object again by the one recovery that knows it: a layer
// blob from its layer record (blob-recovery.ts), a config or manifest from
// its image record (manifest-recovery.ts). Used where a digest is known to be
// gone but not what it was: the scrub, and retention for objects an image
// written during its run names.
import type { Digest } from '../../shared/digest.ts';
import type { BlobRecovery } from './blob-recovery.ts';
import type { ManifestRecovery } from './manifest-recovery.ts';

export async function remakeObject(blobs: BlobRecovery, manifests: ManifestRecovery, digest: Digest): Promise<boolean> {
  if ((await blobs.expectedSize(digest)) !== null) return (await blobs.recover(digest)) !== null;
  return await manifests.recover(digest);
}

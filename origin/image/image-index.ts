// Builds an image index: one name carrying an image per platform. Pure:
// the platforms' manifest digests in, JSON out, in both formats (Docker's
// manifest list, listing Docker manifests; the OCI index, listing OCI
// manifests), serialised once, as manifests are (manifest.ts).
//
// No annotations, no timestamps: the same images make the same index, so
// its digest survives a rebuild into empty storage.
import { MANIFEST_MEDIA, type ManifestFormat } from '../../shared/media-types.ts';
import { sha256Digest, type Digest } from '../../shared/digest.ts';
import type { Architecture } from '../../shared/names.ts';
import type { SerializedBlob } from './manifest.ts';

/** One platform's image: its manifests' digests and sizes in both formats. */
export interface IndexMember {
  arch: Architecture;
  manifests: Record<ManifestFormat, { digest: Digest; size: number }>;
}

const encoder = new TextEncoder();

/** Both index formats over `members`, in their order (the origin's NIXERY_PLATFORMS). */
export async function buildIndexes(members: readonly IndexMember[]): Promise<Record<ManifestFormat, SerializedBlob>> {
  const indexes = {} as Record<ManifestFormat, SerializedBlob>;
  for (const format of ['docker', 'oci'] as const) {
    const media = MANIFEST_MEDIA[format];
    const bytes = encoder.encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: media.index,
        manifests: members.map((m) => ({
          mediaType: media.manifest,
          size: m.manifests[format].size,
          digest: m.manifests[format].digest,
          platform: { architecture: m.arch, os: 'linux' },
        })),
      }),
    );
    indexes[format] = { digest: await sha256Digest(bytes), bytes, mediaType: media.index };
  }
  return indexes;
}

// Every media type string the project uses, in one place.

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  octetStream: 'application/octet-stream',
  json: 'application/json',
} as const;

/** The two manifest formats this registry produces for every image. */
export type ManifestFormat = 'docker' | 'oci';

export const MANIFEST_MEDIA: Record<ManifestFormat, { manifest: string; config: string; layer: string; index: string }> = {
  docker: { manifest: MEDIA.dockerManifest, config: MEDIA.dockerConfig, layer: MEDIA.dockerLayer, index: MEDIA.dockerManifestList },
  oci: { manifest: MEDIA.ociManifest, config: MEDIA.ociConfig, layer: MEDIA.ociLayer, index: MEDIA.ociIndex },
};

/**
 * Chooses the manifest format from a request's Accept header. Docker schema2
 * is the default, as every client understands it; OCI is answered only to a
 * client that asks for OCI and not for schema2 (as the reference registry does).
 */
export function negotiateManifestFormat(accept: string | null | undefined): ManifestFormat {
  if (!accept) return 'docker';
  const types = acceptedTypes(accept);
  const wantsOci = types.includes(MEDIA.ociManifest);
  const wantsDocker = types.includes(MEDIA.dockerManifest) || types.includes('*/*');
  return wantsOci && !wantsDocker ? 'oci' : 'docker';
}

function acceptedTypes(accept: string): string[] {
  return accept
    .split(',')
    .map((part) => part.split(';')[0]!.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

/**
 * What a request by tag may be answered with: a manifest of this format,
 * and, where the name has several platforms, an index of `index`'s format
 * (Docker's manifest list or the OCI index; it lists manifests of its own
 * format). The answer depends on these two alone, so they are the edge's
 * cache key and what it asks the origin for (acceptHeader).
 */
export interface Negotiated {
  readonly manifest: ManifestFormat;
  /** Null when the client accepts no list type: it gets the default platform's manifest. */
  readonly index: ManifestFormat | null;
}

/**
 * Chooses the answer formats from a request's Accept header. A list type
 * must be named: `*\/*` counts for a manifest (every client reads schema2),
 * not for an index, which a client that did not ask for one may not follow.
 * The index of the manifest's own family is preferred.
 */
export function negotiate(accept: string | null | undefined): Negotiated {
  const manifest = negotiateManifestFormat(accept);
  const types = accept ? acceptedTypes(accept) : [];
  const other: ManifestFormat = manifest === 'docker' ? 'oci' : 'docker';
  const index = types.includes(MANIFEST_MEDIA[manifest].index) ? manifest : types.includes(MANIFEST_MEDIA[other].index) ? other : null;
  return { manifest, index };
}

/** An Accept header that negotiates to exactly `wanted` (what the edge sends the origin). */
export function acceptHeader(wanted: Negotiated): string {
  const types = wanted.index !== null ? [MANIFEST_MEDIA[wanted.index].index] : [];
  types.push(MANIFEST_MEDIA[wanted.manifest].manifest);
  return types.join(', ');
}

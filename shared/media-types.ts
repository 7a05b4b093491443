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

export const MANIFEST_MEDIA: Record<ManifestFormat, { manifest: string; config: string; layer: string }> = {
  docker: { manifest: MEDIA.dockerManifest, config: MEDIA.dockerConfig, layer: MEDIA.dockerLayer },
  oci: { manifest: MEDIA.ociManifest, config: MEDIA.ociConfig, layer: MEDIA.ociLayer },
};

/**
 * Chooses the manifest format from a request's Accept header. Docker schema2
 * is the default, as every client understands it; OCI is answered only to a
 * client that asks for OCI and not for schema2 (as the reference registry does).
 */
export function negotiateManifestFormat(accept: string | null | undefined): ManifestFormat {
  if (!accept) return 'docker';
  const types = accept
    .split(',')
    .map((part) => part.split(';')[0]!.trim().toLowerCase())
    .filter((t) => t.length > 0);
  const wantsOci = types.includes(MEDIA.ociManifest);
  const wantsDocker = types.includes(MEDIA.dockerManifest) || types.includes('*/*');
  return wantsOci && !wantsDocker ? 'oci' : 'docker';
}

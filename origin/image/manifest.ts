// Builds an image's config and its manifests. Pure: digests in, JSON out.
// The JSON is serialised once here and those exact bytes are stored and
// served, since a manifest's digest is the hash of its bytes.
import { MANIFEST_MEDIA, type ManifestFormat } from '../../shared/media-types.ts';
import { sha256Digest, type Digest } from '../../shared/digest.ts';
import type { Architecture } from '../../shared/names.ts';

export interface LayerDescriptor {
  digest: Digest;
  diffId: Digest;
  size: number;
  /** What the layer holds, for the config's history (e.g. the store path names). */
  description: string;
}

export interface ImageConfigInput {
  arch: Architecture;
  layers: readonly LayerDescriptor[];
  /** The packages of the image, recorded in a label for people inspecting it. */
  packages: readonly string[];
  /** The default command (default-command.ts); none when undefined. */
  cmd?: readonly string[];
}

/**
 * Bumped whenever an image's config or contents change for the same
 * packages (a new default, a new base file), so images an older origin
 * cached are built again instead of served as they were.
 */
export const IMAGE_FORMAT = 2;

/** cacert's bundle, linked into /etc by the symlink tree (every image carries cacert). */
const CA_BUNDLE = '/etc/ssl/certs/ca-bundle.crt';

export interface SerializedBlob {
  digest: Digest;
  bytes: Uint8Array;
  mediaType: string;
}

export interface ImageManifests {
  config: SerializedBlob;
  manifests: Record<ManifestFormat, SerializedBlob>;
}

const encoder = new TextEncoder();

async function serialize(value: unknown, mediaType: string): Promise<SerializedBlob> {
  const bytes = encoder.encode(JSON.stringify(value));
  return { digest: await sha256Digest(bytes), bytes, mediaType };
}

export function imageConfig(input: ImageConfigInput): object {
  return {
    architecture: input.arch,
    os: 'linux',
    config: {
      // OpenSSL and most TLS clients read SSL_CERT_FILE; Nix-built ones (curl, git, Nix itself) NIX_SSL_CERT_FILE.
      Env: ['PATH=/bin', `SSL_CERT_FILE=${CA_BUNDLE}`, `NIX_SSL_CERT_FILE=${CA_BUNDLE}`],
      ...(input.cmd && input.cmd.length > 0 ? { Cmd: [...input.cmd] } : {}),
      Labels: { 'org.opencontainers.image.description': `Nix packages: ${input.packages.join(' ')}` },
    },
    rootfs: { type: 'layers', diff_ids: input.layers.map((l) => l.diffId) },
    // No `created` anywhere: a timestamp would make every build of the same image differ.
    history: input.layers.map((l) => ({ created_by: 'nixery-edge', comment: l.description })),
  };
}

/** The config blob and both manifest formats of one image. */
export async function buildManifests(input: ImageConfigInput): Promise<ImageManifests> {
  // The config's bytes are the same in both formats; only the descriptor's media type differs.
  const configBytes = encoder.encode(JSON.stringify(imageConfig(input)));
  const configDigest = await sha256Digest(configBytes);
  const manifests = {} as Record<ManifestFormat, SerializedBlob>;
  for (const format of ['docker', 'oci'] as const) {
    const media = MANIFEST_MEDIA[format];
    manifests[format] = await serialize(
      {
        schemaVersion: 2,
        mediaType: media.manifest,
        config: { mediaType: media.config, size: configBytes.length, digest: configDigest },
        layers: input.layers.map((l) => ({ mediaType: media.layer, size: l.size, digest: l.digest })),
      },
      media.manifest,
    );
  }
  return { config: { digest: configDigest, bytes: configBytes, mediaType: MANIFEST_MEDIA.docker.config }, manifests };
}

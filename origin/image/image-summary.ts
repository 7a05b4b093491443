// What the page shows of a built image: its size and its layers, read from
// the manifest (sizes, digests) and the config (what each layer holds, from
// its history). Pure: the bytes come in.
import type { Digest } from '../../shared/digest.ts';

export interface ImageSummary {
  /** The Docker manifest's digest: what `docker pull` reports. */
  digest: Digest;
  /** Compressed bytes a client downloads: the config and every layer. */
  totalBytes: number;
  layers: { digest: string; size: number; description: string }[];
}

interface ManifestJson {
  config: { size: number; digest: string };
  layers: { size: number; digest: string }[];
}

interface ConfigJson {
  history?: { comment?: string }[];
}

export function summarizeImage(digest: Digest, manifestBytes: Uint8Array, configBytes: Uint8Array | null): ImageSummary {
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as ManifestJson;
  const config = configBytes === null ? {} : (JSON.parse(new TextDecoder().decode(configBytes)) as ConfigJson);
  const history = config.history ?? [];
  return {
    digest,
    totalBytes: manifest.config.size + manifest.layers.reduce((sum, l) => sum + l.size, 0),
    layers: manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, description: history[i]?.comment ?? '' })),
  };
}

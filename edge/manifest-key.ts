// What a cached manifest answer is found by, in every tier (memory, the
// Cache API, the global KV tier): one spelling, so an index answer and a
// plain manifest of the same tag can never be mistaken for each other in any
// of them.
import type { Digest } from '../shared/digest.ts';
import type { ManifestFormat } from '../shared/media-types.ts';

export type ManifestKey =
  | { readonly kind: 'digest'; readonly digest: Digest }
  | {
      readonly kind: 'tag';
      readonly format: ManifestFormat;
      /** The index format the client reads (shared/media-types.ts negotiate); absent or null: none. */
      readonly index?: ManifestFormat | null;
      readonly image: string;
      readonly tag: string;
    };

export function keyString(key: ManifestKey): string {
  if (key.kind === 'digest') return `digest/${key.digest}`;
  // Keys of clients that read no index are spelled as before indexes existed, so those entries stay valid.
  const formats = key.index ? `${key.format}+${key.index}-index` : key.format;
  return `tag/${formats}/${key.image}/${key.tag}`;
}

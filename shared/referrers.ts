// The referrers API of the distribution spec (v1.1): a registry that
// supports it MUST answer 200 with an OCI image index for a well-formed
// digest, never 404. Nothing can refer to an image here (this registry takes
// no pushes, so no signatures or SBOMs are attached), so the index is always
// empty; the edge answers it without asking the origin.
import { MEDIA } from './media-types.ts';

export interface ReferrersAnswer {
  body: Uint8Array;
  headers: Record<string, string>;
}

/** `artifactType` filters an empty list to an empty list; saying it was applied is still what the spec asks. */
export function referrersAnswer(artifactType: string | null): ReferrersAnswer {
  const body = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] }));
  const headers: Record<string, string> = { 'Content-Type': MEDIA.ociIndex, 'Content-Length': String(body.length) };
  if (artifactType !== null) headers['OCI-Filters-Applied'] = 'artifactType';
  return { body, headers };
}

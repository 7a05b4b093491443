// The pull API at /v2/: one dispatcher over the shared route parser, so the
// edge accepts and refuses exactly what the origin does, and refuses it
// before anything reaches the origin.
import { errors } from '../shared/errors.ts';
import { MEDIA } from '../shared/media-types.ts';
import { parseImageName } from '../shared/names.ts';
import { parseRegistryRequest } from '../shared/routes.ts';
import { referrersAnswer } from '../shared/referrers.ts';
import { forwardBlob, serveGcsBlob, type BlobServices } from './blobs.ts';
import { passThrough } from './errors.ts';
import { serveManifest, type ManifestServices, type WaitUntil } from './manifests.ts';
import { classify, OriginUnreachable, unavailableError, type OriginAnswer } from './origin.ts';
import { apiHeaders, respond, type RequestInfo } from './responses.ts';
import { refuseOverLimit } from './rate-limit.ts';

export interface RegistryServices extends ManifestServices, BlobServices {}

export async function handleRegistry(request: Request, info: RequestInfo, services: RegistryServices, ctx: WaitUntil): Promise<Response> {
  const route = parseRegistryRequest(info.method, info.url.pathname);
  switch (route.kind) {
    case 'base':
      // Clients ping /v2/ before every pull; no reason to cross to the origin for "{}".
      return respond(200, apiHeaders(info, { 'Content-Type': MEDIA.json }), '{}');
    case 'catalog':
      throw errors.noCatalog();
    case 'tags':
      parseImageName(route.name);
      // The query (n, last) goes along: the origin pages the list.
      return forwardSmall(info, services);
    case 'referrers': {
      // Always the empty index (shared/referrers.ts): nothing for the origin to add.
      parseImageName(route.name);
      const answer = referrersAnswer(info.url.searchParams.get('artifactType'));
      return respond(200, apiHeaders(info, answer.headers), answer.body);
    }
    case 'manifest':
      return serveManifest(info, request.headers.get('Accept'), route, services, ctx);
    case 'blob':
      return services.signer !== null ? serveGcsBlob(info, request, route.digest, { ...services, signer: services.signer }, ctx) : forwardBlob(info, request, services.origin);
  }
}

/**
 * A small, uncached answer of the origin (the tag list), passed on as it is.
 * It reaches the origin every time (its query pages it), so it counts
 * against the client's rate limit as a manifest miss does.
 */
async function forwardSmall(info: RequestInfo, services: RegistryServices): Promise<Response> {
  await refuseOverLimit(services.rateLimit, info.client ?? null);
  let answer: OriginAnswer;
  try {
    answer = await services.origin.send(info.url.pathname + info.url.search, { method: 'GET', requestId: info.requestId, headers: { Accept: MEDIA.json }, client: info.client ?? null, readBody: true });
  } catch (err) {
    if (err instanceof OriginUnreachable) throw unavailableError({ kind: 'failed', reason: err.message, originError: null });
    throw err;
  }
  const sorted = classify(answer);
  if (sorted?.kind === 'failed') throw unavailableError(sorted);
  if (sorted?.kind === 'refused') return passThrough(info, answer);
  const headers: Record<string, string> = { 'Content-Type': answer.headers.get('Content-Type') ?? MEDIA.json };
  const link = answer.headers.get('Link');
  if (link !== null) headers.Link = link;
  return respond(answer.status, apiHeaders(info, headers), answer.body);
}

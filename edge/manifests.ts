// Answering manifest requests: from isolate memory or the Cache API when
// fresh, else from the origin (one request per key per isolate), else from a
// stale copy when the origin fails, else 503.
import { negotiate } from '../shared/media-types.ts';
import { parseImageName, requestedImage } from '../shared/names.ts';
import type { RegistryRoute } from '../shared/routes.ts';
import type { EdgeConfig } from './env.ts';
import { keyString, type CachedManifest, type ManifestCache, type ManifestEntry, type ManifestKey } from './manifest-cache.ts';
import { parseErrorBody, unavailableError, type ManifestFetch, type OriginAnswer, type OriginClient } from './origin.ts';
import { passThrough } from './errors.ts';
import { apiHeaders, EDGE_CACHE_HEADER, respond, type RequestInfo } from './responses.ts';
import type { SingleFlight } from '../shared/single-flight.ts';
import { withDeadline } from '../shared/deadline.ts';
import { CACHE_CONTROL } from '../shared/responses.ts';
import { limitOriginRequest, type RateLimitPolicy } from './rate-limit.ts';
import { rememberFor } from './remembered-errors.ts';
import type { HitReporter } from './hit-reports.ts';

export interface ManifestServices {
  config: EdgeConfig;
  cache: ManifestCache;
  origin: OriginClient;
  flights: SingleFlight<ManifestFetch>;
  /** Per-client limits on requests that reach the origin; none without. */
  rateLimit?: RateLimitPolicy;
  /** Reports manifests answered from the edge's tiers to the origin (hit-reports.ts); null or absent: off. */
  hits?: HitReporter | null;
}

/** The part of the Workers ExecutionContext used here. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

/** Followers of a shared origin request give up this long after the leader's own limit (see single-flight.ts). */
const FOLLOWER_GRACE_MS = 1_000;

type ManifestRoute = Extract<RegistryRoute, { kind: 'manifest' }>;

export async function serveManifest(
  info: RequestInfo,
  accept: string | null,
  route: ManifestRoute,
  services: ManifestServices,
  ctx: WaitUntil,
): Promise<Response> {
  const { config, cache } = services;
  // The origin refuses names that specify no image; so does the edge, before any cache or origin work.
  const spec = parseImageName(route.name);
  const wanted = negotiate(accept);
  const key: ManifestKey =
    route.reference.kind === 'digest'
      ? { kind: 'digest', digest: route.reference.digest }
      : {
          kind: 'tag',
          format: wanted.manifest,
          // A name with a platform is never an index, so whether the client reads one does not split its entries.
          index: spec.platformNamed ? null : wanted.index,
          image: requestedImage(spec),
          tag: route.reference.tag,
        };
  const now = Date.now();

  const cached = await cache.lookup(key, info.url.origin, now, (promise) => ctx.waitUntil(promise));
  if (cached !== null && cache.isFresh(cached, now)) return fromEdge(info, cached.entry, key, services, ctx, cached.source);

  const remembered = cache.failure(key, now);
  if (remembered !== null) {
    const answer = { status: remembered.status, headers: new Headers({ 'Content-Type': remembered.contentType }), body: remembered.body };
    return passThrough(info, answer, 'negative');
  }

  const limited = await limitOriginRequest(services.rateLimit, info.client ?? null);
  if (limited !== null) {
    if (cached !== null) return fromEdge(info, cached.entry, key, services, ctx, 'stale');
    throw limited;
  }

  const flight = services.flights.run(keyString(key), () => fetchAndStore(info, route, key, services, ctx));
  // The origin request outlives this client if need be: the next request gets its answer from the cache.
  if (flight.leader) ctx.waitUntil(flight.result);
  const patience = cached !== null ? config.staleTimeoutMs : config.originTimeoutMs + FOLLOWER_GRACE_MS;
  const result = await withDeadline(flight.result, patience, () => timedOut(patience));

  switch (result.kind) {
    case 'manifest':
      return manifestResponse(info, result.entry, key, config, 'miss');
    case 'refused':
      // An origin too busy to answer (429) is covered by a stale copy like one that failed.
      if (result.answer.status === 429 && cached !== null) return fromEdge(info, cached.entry, key, services, ctx, 'stale');
      return passThrough(info, result.answer);
    case 'failed':
      if (cached !== null) {
        console.warn(`nixery-edge: serving a stale manifest for ${keyString(key)}: ${result.reason}`);
        return fromEdge(info, cached.entry, key, services, ctx, 'stale');
      }
      throw unavailableError(result);
  }
}

async function fetchAndStore(info: RequestInfo, route: ManifestRoute, key: ManifestKey, services: ManifestServices, ctx: WaitUntil): Promise<ManifestFetch> {
  const { cache, origin } = services;
  // A digest is answered without negotiating; a tag is asked for in exactly the key's formats.
  const wanted = key.kind === 'tag' ? { manifest: key.format, index: key.index ?? null } : { manifest: 'docker' as const, index: null };
  const expected = key.kind === 'digest' ? key.digest : null;
  const result = await origin.fetchManifest(info.url.pathname, wanted, expected, info.requestId, info.client ?? null);
  const now = Date.now();
  if (result.kind === 'manifest') {
    ctx.waitUntil(cache.store(key, result.entry, info.url.origin, now));
  } else if (result.kind === 'refused' && (rememberFor(result.answer) !== null || isUnknownPackage(key, result.answer))) {
    cache.rememberFailure(
      key,
      { status: result.answer.status, contentType: result.answer.headers.get('Content-Type') ?? 'application/json', body: result.answer.body },
      now,
      rememberFor(result.answer) ?? undefined,
    );
  } else if (result.kind === 'failed') {
    console.error(`nixery-edge: origin failed for ${route.name}:${route.rawReference} (request ${info.requestId}): ${result.reason}`);
  }
  return result;
}

/**
 * Only "unknown package" answers to tag requests are remembered: they cost
 * the origin a Nix evaluation each, and they do not change within seconds.
 */
function isUnknownPackage(key: ManifestKey, answer: OriginAnswer): boolean {
  if (key.kind !== 'tag' || answer.status !== 404) return false;
  const body = parseErrorBody(answer);
  const detail = body?.errors[0]?.detail as { unknown?: unknown } | null | undefined;
  return Array.isArray(detail?.unknown) && detail.unknown.length > 0;
}

/**
 * An answer from the edge's own tiers, which the origin never sees: the
 * manifest is reported to it as used (after the response, in ctx.waitUntil).
 */
function fromEdge(info: RequestInfo, entry: ManifestEntry, key: ManifestKey, services: ManifestServices, ctx: WaitUntil, source: CachedManifest['source'] | 'stale'): Response {
  services.hits?.hit(entry.digest, info.url.origin, ctx);
  return manifestResponse(info, entry, key, services.config, source);
}

function manifestResponse(info: RequestInfo, entry: ManifestEntry, key: ManifestKey, config: EdgeConfig, source: CachedManifest['source'] | 'miss' | 'stale'): Response {
  const headers = apiHeaders(info, {
    'Content-Type': entry.mediaType,
    'Docker-Content-Digest': entry.digest,
    ETag: `"${entry.digest}"`,
    'Cache-Control': key.kind === 'digest' ? CACHE_CONTROL.immutable : source === 'stale' ? 'no-cache' : `public, max-age=${config.tagTtlSeconds}`,
    [EDGE_CACHE_HEADER]: source,
    // A tag's answer depends on Accept (manifest format, index or not), so shared HTTP caches must key by it.
    ...(key.kind === 'tag' ? { Vary: 'Accept' } : {}),
  });
  return respond(200, headers, entry.bytes);
}

function timedOut(ms: number): ManifestFetch {
  return { kind: 'failed', reason: `the origin did not answer within ${ms} ms`, originError: null };
}

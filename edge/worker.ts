// The Worker in front of the origin. Routing only: the page at `/` and its
// script, the page's JSON API under /api/, the pull API under /v2/, and a
// registry-style 404 for anything else (the origin's own endpoints,
// /healthz and /metrics, are never forwarded).
//
// A HEAD is routed as a GET and loses its body here, in this one place (as
// Hono's dispatch does), so every handler answers GET and HEAD alike.
// Handlers still see the client's method in `RequestInfo`: a blob forwarded
// to the origin is asked for with HEAD, so no bytes cross for nothing.
import { Router, type IRequest } from 'itty-router';
import { errors } from '../shared/errors.ts';
import { BlobSigner } from './blobs.ts';
import { EdgeBlobDelivery } from './blob-delivery.ts';
import { DIGEST_READ_CACHE_SECONDS, GlobalTier } from './global-tier.ts';
import { HitReporter } from './hit-reports.ts';
import { configFor, type EdgeConfig, type Env } from './env.ts';
import { errorResponse } from './errors.ts';
import { landingPage, pageScript } from './landing.ts';
import { handleApi, type ApiServices } from './api.ts';
import { ManifestCache, type ResponseCache } from './manifest-cache.ts';
import { OriginClient, type ManifestFetch } from './origin.ts';
import { handleRegistry, type RegistryServices } from './registry.ts';
import { requestIdFor, withoutBody, type RequestInfo } from './responses.ts';
import { SingleFlight } from '../shared/single-flight.ts';
import { edgeClient } from './rate-limit.ts';

/** A cache of its own, so the edge's entries never mix with the zone's. */
const CACHE_NAME = 'nixery-edge-manifests';
const BLOB_CACHE_NAME = 'nixery-edge-blobs';
/** The page's API answers (searches) are cached apart from manifests. */
const API_CACHE_NAME = 'nixery-edge-api';

// One set of services (and so one set of in-memory caches) per isolate and configuration.
const servicesByConfig = new WeakMap<EdgeConfig, RegistryServices & ApiServices>();

function openCache(name: string): Promise<ResponseCache | null> {
  return caches.open(name).catch((err: unknown) => {
    console.error('nixery-edge: the Cache API is unavailable; serving from memory only', String(err));
    return null;
  });
}

// The rate limiter is a binding, not configuration: it comes with env.
function servicesFor(config: EdgeConfig, env: Env): RegistryServices & ApiServices {
  let services = servicesByConfig.get(config);
  if (services === undefined) {
    let opened: Promise<ResponseCache | null> | null = null;
    const signer = config.blobs.backend === 'gcs' ? new BlobSigner(config.blobs) : null;
    let openedApi: Promise<ResponseCache | null> | null = null;
    const cache = new ManifestCache({
      tagTtlSeconds: config.tagTtlSeconds,
      staleTtlSeconds: config.staleTtlSeconds,
      digestTtlSeconds: config.digestTtlSeconds,
      negativeTtlSeconds: config.negativeTtlSeconds,
      cache: () => (opened ??= openCache(CACHE_NAME)),
      global: config.globalStore !== null ? new GlobalTier(config.globalStore) : null,
    });
    const origin = new OriginClient(config);
    services = {
      config,
      cache,
      origin,
      hits:
        config.usageReportIntervalSeconds > 0
          ? new HitReporter({
              origin,
              // Ignored for as long as another data centre's KV may serve its cached read of it.
              forget: (digest, servedUnder) => cache.forget(digest, servedUnder, Date.now(), DIGEST_READ_CACHE_SECONDS),
              intervalMs: config.usageReportIntervalSeconds * 1000,
              delayMs: config.usageReportDelayMs,
            })
          : null,
      flights: new SingleFlight<ManifestFetch>(),
      signer,
      blobDelivery:
        signer !== null && config.blobDelivery === 'edge'
          ? new EdgeBlobDelivery({ signer, maxCacheBytes: config.blobCacheMaxBytes, cache: () => caches.open(BLOB_CACHE_NAME) })
          : null,
      apiCache: () => (openedApi ??= openCache(API_CACHE_NAME)),
      rateLimit: { limiter: env.ORIGIN_RATE_LIMITER ?? null, periodSeconds: config.rateLimitPeriodSeconds },
    };
    servicesByConfig.set(config, services);
  }
  return services;
}

type Args = [RequestInfo, Env, ExecutionContext];

const router = Router<IRequest, Args>()
  .get('/', (_request, info, env, ctx) => landingPage(info, () => servicesFor(configFor(env), env), ctx))
  .get('/static/page.js', (_request, info) => pageScript(info))
  .all('/api/*', (request, info, env, ctx) => handleApi(request, info, servicesFor(configFor(env), env), ctx))
  .all('/v2/*', (request, info, env, ctx) => handleRegistry(request, info, servicesFor(configFor(env), env), ctx));

async function answer(request: Request, info: RequestInfo, env: Env, ctx: ExecutionContext): Promise<Response> {
  try {
    const response: Response | undefined = await router.fetch(request, info, env, ctx);
    return response ?? errorResponse(errors.notFound(info.url.pathname), info);
  } catch (err) {
    return errorResponse(err, info);
  }
}

export default {
  async fetch(request, env, ctx): Promise<Response> {
    const info: RequestInfo = { method: request.method, url: new URL(request.url), requestId: requestIdFor(request), client: edgeClient(request) };
    const head = request.method === 'HEAD';
    const response = await answer(head ? new Request(request, { method: 'GET' }) : request, info, env, ctx);
    return head ? withoutBody(response) : response;
  },
} satisfies ExportedHandler<Env>;

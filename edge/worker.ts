// The Worker in front of the origin. Routing only: the landing page at `/`,
// the pull API under /v2/, and a registry-style 404 for anything else (the
// origin's own endpoints, /healthz and /metrics, are never forwarded).
import { Router, type IRequest } from 'itty-router';
import { errors } from '../shared/errors.ts';
import { BlobSigner } from './blobs.ts';
import { configFor, type EdgeConfig, type Env } from './env.ts';
import { errorResponse } from './errors.ts';
import { landingPage } from './landing.ts';
import { ManifestCache, type ResponseCache } from './manifest-cache.ts';
import { OriginClient, type ManifestFetch } from './origin.ts';
import { handleRegistry, type RegistryServices } from './registry.ts';
import { requestIdFor, type RequestInfo } from './responses.ts';
import { SingleFlight } from '../shared/single-flight.ts';
import { edgeClient } from './rate-limit.ts';

/** A cache of its own, so the edge's entries never mix with the zone's. */
const CACHE_NAME = 'nixery-edge-manifests';

// One set of services (and so one set of in-memory caches) per isolate and configuration.
const servicesByConfig = new WeakMap<EdgeConfig, RegistryServices>();

function servicesFor(config: EdgeConfig, env: Env): RegistryServices {
  let services = servicesByConfig.get(config);
  if (services === undefined) {
    let opened: Promise<ResponseCache | null> | null = null;
    services = {
      config,
      cache: new ManifestCache({
        tagTtlSeconds: config.tagTtlSeconds,
        staleTtlSeconds: config.staleTtlSeconds,
        digestTtlSeconds: config.digestTtlSeconds,
        negativeTtlSeconds: config.negativeTtlSeconds,
        cache: () => (opened ??= caches.open(CACHE_NAME).catch((err: unknown) => {
          console.error('nixery-edge: the Cache API is unavailable; serving from memory only', String(err));
          return null;
        })),
      }),
      origin: new OriginClient(config),
      flights: new SingleFlight<ManifestFetch>(),
      signer: config.blobs.backend === 'gcs' ? new BlobSigner(config.blobs) : null,
      rateLimit: { limiter: env.ORIGIN_RATE_LIMITER ?? null, periodSeconds: config.rateLimitPeriodSeconds },
    };
    servicesByConfig.set(config, services);
  }
  return services;
}

type Args = [RequestInfo, Env, ExecutionContext];

const router = Router<IRequest, Args>()
  .get('/', (_request, info) => landingPage(info))
  .head('/', (_request, info) => landingPage(info))
  .all('/v2/*', (request, info, env, ctx) => handleRegistry(request, info, servicesFor(configFor(env), env), ctx));

export default {
  async fetch(request, env, ctx): Promise<Response> {
    const info: RequestInfo = { method: request.method, url: new URL(request.url), requestId: requestIdFor(request), client: edgeClient(request) };
    try {
      const response: Response | undefined = await router.fetch(request, info, env, ctx);
      return response ?? errorResponse(errors.notFound(info.url.pathname), info);
    } catch (err) {
      return errorResponse(err, info);
    }
  },
} satisfies ExportedHandler<Env>;

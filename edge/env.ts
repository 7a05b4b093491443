// The Worker's configuration: its bindings (wrangler.toml [vars] and
// secrets), read once per isolate into a typed object. Variable names are the
// origin's where the meaning is the same (STORAGE_BACKEND, BUCKET, GCS_*).
//
// This module uses no Workers-only API, so the Node unit tests import it.
import { ConfigError, configInteger, configText, gcsEndpoint } from '../shared/config.ts';
import type { GlobalStore } from './global-tier.ts';
import type { OriginRateLimiter } from './rate-limit.ts';

/** The bindings as wrangler and miniflare hand them over: strings, or JSON values for [vars] written unquoted. */
export interface Env {
  /** Where the origin answers, e.g. https://origin.example.com (no path). */
  ORIGIN_URL?: string;
  /** Secret: sent to the origin in X-Nixery-Edge-Secret. */
  ORIGIN_SECRET?: string;
  /** Longest wait for the origin when no cached copy could stand in (ms); above the origin's Nix timeout. */
  ORIGIN_TIMEOUT_MS?: string | number;
  /** Wait for the origin when a stale cached manifest could stand in (ms). */
  STALE_TIMEOUT_MS?: string | number;
  /** Seconds a manifest fetched by tag is served without asking the origin again. */
  MANIFEST_TAG_TTL?: string | number;
  /** Seconds a tag's manifest is kept after it went stale, to serve when the origin fails. */
  MANIFEST_STALE_TTL?: string | number;
  /** Seconds a manifest fetched by digest is kept (it never changes). */
  MANIFEST_DIGEST_TTL?: string | number;
  /** Seconds an "unknown package" answer is remembered when the origin says nothing (no max-age); 0 turns the negative cache off. */
  NEGATIVE_TTL?: string | number;
  /** The Rate Limiting binding ([[ratelimits]] in wrangler.toml) counting requests that reach the origin, per client. */
  ORIGIN_RATE_LIMITER?: OriginRateLimiter;
  /** The binding's period (10 or 60), for Retry-After: it cannot be read from the binding. */
  ORIGIN_RATE_LIMIT_PERIOD?: string | number;
  /** "filesystem": blobs are forwarded to the origin. "gcs": the edge signs GCS URLs itself. */
  STORAGE_BACKEND?: string;
  BUCKET?: string;
  GCS_SIGNING_ACCOUNT?: string;
  /** Secret: the service account's PEM private key. */
  GCS_SIGNING_KEY?: string;
  /** Lifetime of signed blob URLs in seconds. */
  GCS_URL_LIFETIME?: string | number;
  /** Another GCS endpoint signed URLs point at (an emulator, a private endpoint); Google's by default. */
  GCS_API_ENDPOINT?: string;
  STORAGE_EMULATOR_HOST?: string;
  /** "redirect" (default): 307 to a signed URL. "edge": the Worker fetches the blob from GCS, streams it and caches it (needs STORAGE_BACKEND=gcs). */
  BLOB_DELIVERY?: string;
  /** Largest blob cached at the edge (bytes); a larger one is redirected. The Cache API takes 512 MB per object (5 GB on Enterprise). */
  BLOB_CACHE_MAX_BYTES?: string | number;
  /** The Workers KV namespace of the global manifest tier ([[kv_namespaces]] in wrangler.toml); absent: no global tier. */
  GLOBAL_MANIFESTS?: GlobalStore;
  /** Seconds between two reports of one manifest's hits to the origin, per isolate; 0 turns reporting off. */
  USAGE_REPORT_INTERVAL?: string | number;
  /** The longest a hit waits for its report to be sent (ms). */
  USAGE_REPORT_DELAY_MS?: string | number;
}

export type BlobConfig =
  | { backend: 'filesystem' }
  | { backend: 'gcs'; bucket: string; account: string; privateKeyPem: string; urlLifetimeSeconds: number; apiEndpoint: string | null };

export interface EdgeConfig {
  /** Origin URL without a trailing slash. */
  originUrl: string;
  originSecret: string | null;
  originTimeoutMs: number;
  staleTimeoutMs: number;
  tagTtlSeconds: number;
  staleTtlSeconds: number;
  digestTtlSeconds: number;
  negativeTtlSeconds: number;
  rateLimitPeriodSeconds: number;
  blobs: BlobConfig;
  /** How blobs reach clients with GCS storage: redirected to a signed URL, or served by the edge from its cache. */
  blobDelivery: 'redirect' | 'edge';
  blobCacheMaxBytes: number;
  /** The global manifest tier's store, or null without the binding. */
  globalStore: GlobalStore | null;
  /** Hits of one manifest are reported to the origin at most once per this many seconds per isolate; 0: never. */
  usageReportIntervalSeconds: number;
  /** The longest a reported hit waits for its batch to be sent (ms). */
  usageReportDelayMs: number;
}

export { ConfigError };

const DAY = 24 * 60 * 60;

const text = (env: Env, name: keyof Env & string): string | undefined => configText(env, name);
const integer = (env: Env, name: keyof Env & string, fallback: number, min: number, max: number): number => configInteger(env, name, fallback, min, max);

function httpUrl(name: keyof Env, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(name, `must be http or https, got ${url.protocol}`);
  if (url.search !== '' || url.hash !== '') throw new ConfigError(name, 'must not have a query or fragment');
  return url;
}

function originUrl(env: Env): string {
  const raw = text(env, 'ORIGIN_URL');
  if (raw === undefined) throw new ConfigError('ORIGIN_URL', 'is required: the URL the origin answers at, e.g. https://origin.example.com');
  // A path prefix is allowed (an origin mounted under a path); requests append /v2/... to it.
  return httpUrl('ORIGIN_URL', raw).href.replace(/\/+$/, '');
}

function blobConfig(env: Env): BlobConfig {
  const backend = text(env, 'STORAGE_BACKEND') ?? 'filesystem';
  if (backend === 'filesystem') return { backend };
  if (backend !== 'gcs') throw new ConfigError('STORAGE_BACKEND', `must be "filesystem" or "gcs", got ${JSON.stringify(backend)}`);
  const bucket = text(env, 'BUCKET');
  if (bucket === undefined) throw new ConfigError('BUCKET', 'is required when STORAGE_BACKEND=gcs');
  const account = text(env, 'GCS_SIGNING_ACCOUNT');
  if (account === undefined) throw new ConfigError('GCS_SIGNING_ACCOUNT', 'is required when STORAGE_BACKEND=gcs (the edge signs blob URLs itself)');
  const privateKeyPem = text(env, 'GCS_SIGNING_KEY');
  if (privateKeyPem === undefined) throw new ConfigError('GCS_SIGNING_KEY', 'is required when STORAGE_BACKEND=gcs: `wrangler secret put GCS_SIGNING_KEY`');
  // The key's contents are checked when first imported (async); here only its shape, never echoing it.
  if (!privateKeyPem.includes('PRIVATE KEY-----')) throw new ConfigError('GCS_SIGNING_KEY', 'is not a PEM private key');
  return {
    backend,
    bucket,
    account,
    privateKeyPem,
    urlLifetimeSeconds: integer(env, 'GCS_URL_LIFETIME', 300, 10, 7 * DAY),
    // The origin's GCS_API_ENDPOINT or STORAGE_EMULATOR_HOST, read by the same rule.
    apiEndpoint: gcsEndpoint(env),
  };
}

const MIB = 1024 * 1024;

function blobDelivery(env: Env, blobs: BlobConfig): EdgeConfig['blobDelivery'] {
  const delivery = text(env, 'BLOB_DELIVERY') ?? 'redirect';
  if (delivery !== 'redirect' && delivery !== 'edge') throw new ConfigError('BLOB_DELIVERY', `must be "redirect" or "edge", got ${JSON.stringify(delivery)}`);
  // With filesystem storage blobs are streamed from the origin already; there is no bucket to fetch from.
  if (delivery === 'edge' && blobs.backend !== 'gcs') throw new ConfigError('BLOB_DELIVERY', '"edge" needs STORAGE_BACKEND=gcs (the edge fetches blobs from the bucket)');
  return delivery;
}

function globalStore(env: Env): GlobalStore | null {
  const binding = env.GLOBAL_MANIFESTS;
  if (binding === undefined || binding === null) return null;
  // A [vars] entry of that name (a string) is a mistake for the binding; say so rather than fail on first use.
  if (typeof binding !== 'object' || typeof binding.getWithMetadata !== 'function' || typeof binding.put !== 'function' || typeof binding.delete !== 'function') {
    throw new ConfigError('GLOBAL_MANIFESTS', 'must be a KV namespace binding ([[kv_namespaces]] in wrangler.toml), not a variable');
  }
  return binding;
}

export function readConfig(env: Env): EdgeConfig {
  const blobs = blobConfig(env);
  return {
    originUrl: originUrl(env),
    originSecret: text(env, 'ORIGIN_SECRET') ?? null,
    originTimeoutMs: integer(env, 'ORIGIN_TIMEOUT_MS', 90_000, 100, 15 * 60_000),
    staleTimeoutMs: integer(env, 'STALE_TIMEOUT_MS', 5_000, 0, 15 * 60_000),
    tagTtlSeconds: integer(env, 'MANIFEST_TAG_TTL', 60, 0, 365 * DAY),
    staleTtlSeconds: integer(env, 'MANIFEST_STALE_TTL', 7 * DAY, 0, 365 * DAY),
    digestTtlSeconds: integer(env, 'MANIFEST_DIGEST_TTL', 365 * DAY, 60, 365 * DAY),
    negativeTtlSeconds: integer(env, 'NEGATIVE_TTL', 10, 0, DAY),
    rateLimitPeriodSeconds: integer(env, 'ORIGIN_RATE_LIMIT_PERIOD', 60, 1, 3600),
    blobs,
    blobDelivery: blobDelivery(env, blobs),
    blobCacheMaxBytes: integer(env, 'BLOB_CACHE_MAX_BYTES', 512 * MIB, 0, 5 * 1024 * MIB),
    globalStore: globalStore(env),
    usageReportIntervalSeconds: integer(env, 'USAGE_REPORT_INTERVAL', 3600, 0, DAY),
    // ctx.waitUntil gives work 30 s after the response: the delay and the report (8 s at most) fit in it.
    usageReportDelayMs: integer(env, 'USAGE_REPORT_DELAY_MS', 5_000, 0, 20_000),
  };
}

// The env object is the same for every request an isolate serves, so the
// result (or the error) is computed once per isolate.
const memo = new WeakMap<object, EdgeConfig | ConfigError>();

/** The configuration for these bindings; throws the same ConfigError on every request while it is invalid. */
export function configFor(env: Env): EdgeConfig {
  let result = memo.get(env);
  if (result === undefined) {
    try {
      result = readConfig(env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      result = err;
      console.error(`nixery-edge: invalid configuration: ${err.message}`);
    }
    memo.set(env, result);
  }
  if (result instanceof ConfigError) throw result;
  return result;
}

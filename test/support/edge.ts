// Starts the real Worker for tests: bundled by wrangler exactly as it is
// deployed (once per test process), run in workerd through miniflare,
// pointed at a given origin URL.
import { bundleWorker, startEdge as startWorker, type RateLimitSpec, type WorkerBundle } from '../../scripts/edge-runtime.ts';
import type { Miniflare } from 'miniflare';
import { HIT_REPORT_PATH } from '../../shared/hit-report.ts';

export interface RunningTestEdge {
  url: string;
  port: number;
  /** host:port, as container clients name a registry. */
  host: string;
  miniflare: Miniflare;
  stop(): Promise<void>;
}

export interface StartTestEdgeOptions {
  /** More bindings (ORIGIN_SECRET, MANIFEST_TAG_TTL, GCS_*...) over wrangler.toml's [vars]. */
  bindings?: Record<string, string>;
  /** Share the Cache API's entries between edges started with the same directory (a restart). */
  cachePersist?: string;
  /** A fixed port (a restart keeps its host, and so its Cache API keys); any free port by default. */
  port?: number;
  /** Share the global tier (KV) between edges started with the same directory: two data centres, one global store. */
  kvPersist?: string;
  /** false: no global tier binding (the edge as it was before one). */
  globalStore?: boolean;
  /** Replaces wrangler.toml's [[ratelimits]]. */
  ratelimits?: Record<string, RateLimitSpec>;
  /** false: no TCP front for container clients' TLS attempts (scripts/edge-runtime.ts); clients reach workerd itself. */
  refuseTls?: boolean;
  /** false: a Cache API that stores nothing (bench:burst's edge without its local stand-ins). */
  cacheApi?: boolean;
}

let bundle: Promise<WorkerBundle> | undefined;

export function workerBundle(): Promise<WorkerBundle> {
  bundle ??= bundleWorker();
  return bundle;
}

export async function startEdge(originUrl: string, options: StartTestEdgeOptions = {}): Promise<RunningTestEdge> {
  const edge = await startWorker({
    bundle: await workerBundle(),
    bindings: { ORIGIN_URL: originUrl, ...options.bindings },
    ...(options.cachePersist !== undefined ? { cachePersist: options.cachePersist } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.kvPersist !== undefined ? { kvPersist: options.kvPersist } : {}),
    ...(options.globalStore !== undefined ? { globalStore: options.globalStore } : {}),
    ...(options.ratelimits !== undefined ? { ratelimits: options.ratelimits } : {}),
    ...(options.refuseTls !== undefined ? { refuseTls: options.refuseTls } : {}),
    ...(options.cacheApi !== undefined ? { cacheApi: options.cacheApi } : {}),
  });
  return { url: edge.url, port: edge.port, host: new URL(edge.url).host, miniflare: edge.miniflare, stop: edge.stop };
}

/** The origin's request log lines (pino JSON, one per request) whose path matches. */
export function originRequests(logs: Record<string, unknown>[], pathPart: string): Record<string, unknown>[] {
  return logs.filter((line) => line.msg === 'request' && typeof line.path === 'string' && line.path.includes(pathPart));
}

/**
 * The origin's request log lines made on a client's behalf: all but the
 * edge's own hit reports, which a manifest hit sends up to
 * USAGE_REPORT_DELAY_MS later, so at any moment of a later test.
 */
export function clientRequests(logs: Record<string, unknown>[]): Record<string, unknown>[] {
  return logs.filter((line) => line.msg === 'request' && line.path !== HIT_REPORT_PATH);
}

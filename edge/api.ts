// The page's JSON API at the edge (docs/api.md): validated here with the
// origin's own parser (shared/api.ts), so a bad request never crosses, then
// forwarded to the origin with the secret. Search answers are cached (the
// Cache API, SEARCH_TTL_SECONDS) under one canonical URL per search; a
// build's event stream is passed through as it arrives, never buffered.
// Every request that reaches the origin (a search miss, a build, the list of
// failures, an event stream) counts against the client's rate limit, as a
// manifest miss does (rate-limit.ts), and carries the client's address for
// the origin's fair shares.
//
// No Workers-only API here (the Cache API comes in as `ResponseCache`): the
// Node unit tests import it.
import { errors } from '../shared/errors.ts';
import { REQUEST_ID_HEADER } from '../shared/headers.ts';
import { API_LIMITS, API_PATHS, parseBuildRequest, parseEventsPath, parseSearchQuery, searchPath, type SearchQuery } from '../shared/api.ts';
import { passThrough } from './errors.ts';
import type { ResponseCache } from './manifest-cache.ts';
import type { WaitUntil } from './manifests.ts';
import { classify, OriginUnreachable, unavailableError, type OriginAnswer, type OriginClient } from './origin.ts';
import { EDGE_CACHE_HEADER, respond, type RequestInfo } from './responses.ts';
import { refuseOverLimit, type RateLimitPolicy } from './rate-limit.ts';

/** Seconds a search answer is reused: the index changes only with the package set's version. */
export const SEARCH_TTL_SECONDS = 60;

export interface ApiServices {
  origin: OriginClient;
  /** The Cache API's cache for API answers; null when unavailable (memory-less: every search asks the origin). */
  apiCache: () => Promise<ResponseCache | null>;
  /** Per-client limits on requests to the origin; none if absent. */
  rateLimit?: RateLimitPolicy;
}

function jsonHeaders(info: RequestInfo, cacheControl: string): Headers {
  return new Headers({ 'Content-Type': 'application/json', 'Cache-Control': cacheControl, [REQUEST_ID_HEADER]: info.requestId });
}

/** An answer of the origin read whole: errors in the registry format, 5xx as UNAVAILABLE. */
function relay(info: RequestInfo, answer: OriginAnswer, cacheControl = 'no-store'): Response {
  const sorted = classify(answer);
  if (sorted?.kind === 'failed') throw unavailableError(sorted);
  if (sorted?.kind === 'refused') return passThrough(info, answer);
  return respond(answer.status, jsonHeaders(info, cacheControl), answer.body);
}

async function send(services: ApiServices, path: string, info: RequestInfo, method: 'GET' | 'POST', body?: string): Promise<OriginAnswer> {
  await refuseOverLimit(services.rateLimit, info.client ?? null);
  const headers = { Accept: 'application/json', ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) };
  try {
    return await services.origin.send(path, { method, requestId: info.requestId, headers, client: info.client ?? null, readBody: true, ...(body !== undefined ? { body } : {}) });
  } catch (err) {
    if (err instanceof OriginUnreachable) throw unavailableError({ kind: 'failed', reason: err.message, originError: null });
    throw err;
  }
}

export interface SearchAnswer {
  status: number;
  body: Uint8Array;
  /** Where it came from, for X-Nixery-Edge-Cache. */
  source: 'cache' | 'origin';
  /** The origin's refusal or failure, as it sent it (status >= 400). */
  answer: OriginAnswer | null;
}

/** A search, from the Cache API or the origin (which then fills the cache). Shared by the API and the page's server-rendered results. */
export async function search(query: SearchQuery, info: RequestInfo, services: ApiServices, ctx: WaitUntil): Promise<SearchAnswer> {
  const path = searchPath(query);
  const key = `${info.url.origin}/.nixery-edge${path}`;
  const cache = await services.apiCache();
  const hit = await cache?.match(key).catch(() => undefined);
  if (hit !== undefined) return { status: 200, body: new Uint8Array(await hit.arrayBuffer()), source: 'cache', answer: null };
  const answer = await send(services, path, info, 'GET');
  const sorted = classify(answer);
  if (sorted?.kind === 'failed') throw unavailableError(sorted);
  if (answer.status === 200 && cache) {
    const stored = new Response(answer.body, { headers: { 'Content-Type': 'application/json', 'Cache-Control': `public, max-age=${SEARCH_TTL_SECONDS}` } });
    // A failed write costs a later miss, never a wrong answer.
    ctx.waitUntil(cache.put(key, stored).catch((err: unknown) => console.error('nixery-edge: cache write failed', String(err))));
  }
  return { status: answer.status, body: answer.body, source: 'origin', answer: answer.status === 200 ? null : answer };
}

/** Reads a request body, refusing it past `max` bytes without reading the rest. */
async function boundedText(request: Request, max: number): Promise<string> {
  const declared = Number(request.headers.get('Content-Length') ?? '0');
  if (declared > max) throw errors.queryInvalid(`the request body is larger than ${max} bytes`, { max });
  if (request.body === null) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw errors.queryInvalid(`the request body is larger than ${max} bytes`, { max });
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

export async function handleApi(request: Request, info: RequestInfo, services: ApiServices, ctx: WaitUntil): Promise<Response> {
  const path = info.url.pathname;
  const read = info.method === 'GET' || info.method === 'HEAD';

  if (path === API_PATHS.search && read) {
    const found = await search(parseSearchQuery(info.url.searchParams), info, services, ctx);
    if (found.answer !== null) return relay(info, found.answer);
    const headers = jsonHeaders(info, `public, max-age=${SEARCH_TTL_SECONDS}`);
    headers.set(EDGE_CACHE_HEADER, found.source);
    return respond(200, headers, found.body);
  }

  if (path === API_PATHS.builds && info.method === 'POST') {
    const text = await boundedText(request, API_LIMITS.maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw errors.queryInvalid('the body is not JSON: {"packages": ["hello"], "tag": "latest"}');
    }
    parseBuildRequest(body);
    return relay(info, await send(services, path, info, 'POST', text));
  }

  if (path === API_PATHS.failures && read) return relay(info, await send(services, path, info, 'GET'));

  if (path.startsWith(`${API_PATHS.builds}/`) && info.method === 'GET') {
    if (parseEventsPath(path) === null) throw errors.notFound(path);
    return streamEvents(info, services, path);
  }

  const known: readonly string[] = [API_PATHS.search, API_PATHS.builds, API_PATHS.failures];
  throw known.includes(path) ? errors.unsupported(`${info.method} is not supported on ${path}`) : errors.notFound(path);
}

/**
 * A build's server-sent events, passed on chunk by chunk: the origin's body
 * stream becomes the client's, with nothing read or buffered in between, so
 * each event reaches the browser when the origin writes it.
 */
async function streamEvents(info: RequestInfo, services: ApiServices, path: string): Promise<Response> {
  await refuseOverLimit(services.rateLimit, info.client ?? null);
  let response: Response;
  try {
    response = await services.origin.send(path, { method: 'GET', requestId: info.requestId, headers: { Accept: 'text/event-stream' }, client: info.client ?? null, readBody: false });
  } catch (err) {
    if (err instanceof OriginUnreachable) throw unavailableError({ kind: 'failed', reason: err.message, originError: null });
    throw err;
  }
  if (response.status !== 200 || !(response.headers.get('Content-Type') ?? '').startsWith('text/event-stream')) {
    const answer: OriginAnswer = { status: response.status, headers: response.headers, body: new Uint8Array(await response.arrayBuffer()) };
    return relay(info, answer);
  }
  return new Response(response.body, {
    status: 200,
    headers: { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no', [REQUEST_ID_HEADER]: info.requestId },
  });
}

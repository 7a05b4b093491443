// Headers every response of the pull API carries, and the one way handlers
// build a response, so GET and HEAD always agree (HEAD: same headers, no body).
//
// No Workers-only API here: the Node unit tests import it.
import { REQUEST_ID_HEADER } from '../shared/headers.ts';

export const API_VERSION = { name: 'Docker-Distribution-API-Version', value: 'registry/2.0' } as const;
/** Says where a manifest came from (memory, cache, origin, stale); for operators and tests. */
export const EDGE_CACHE_HEADER = 'X-Nixery-Edge-Cache';

/** What every handler knows about the request it answers. */
export interface RequestInfo {
  readonly method: string;
  readonly url: URL;
  readonly requestId: string;
  /** The client's address as Cloudflare saw it (rate-limit.ts); null when unknown. */
  readonly client?: string | null;
}

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a client's well-formed request id (to correlate its logs with ours), else makes one. */
export function requestIdFor(request: Request): string {
  const given = request.headers.get(REQUEST_ID_HEADER);
  return given !== null && CLIENT_ID.test(given) ? given : crypto.randomUUID();
}

export function apiHeaders(info: RequestInfo, extra?: Record<string, string>): Headers {
  const headers = new Headers(extra);
  headers.set(API_VERSION.name, API_VERSION.value);
  headers.set(REQUEST_ID_HEADER, info.requestId);
  return headers;
}

/**
 * A complete (non-streamed) answer. For HEAD the body is dropped but
 * Content-Length still states the GET body's length, as the origin does.
 */
export function respond(info: RequestInfo, status: number, headers: Headers, body: Uint8Array | string | null): Response {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  if (bytes !== null) headers.set('Content-Length', String(bytes.byteLength));
  return new Response(info.method === 'HEAD' ? null : bytes, { status, headers });
}

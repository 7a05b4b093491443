// Headers every response of the pull API carries, the one way handlers
// build a whole response, and the one place a HEAD loses its body: handlers
// answer every request as a GET, and `withoutBody` (called by the Worker's
// fetch) keeps the status and headers of a HEAD's answer only.
//
// No Workers-only API here: the Node unit tests import it.
import { REQUEST_ID_HEADER } from '../shared/headers.ts';
import { API_HEADERS } from '../shared/responses.ts';
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
  for (const [name, value] of Object.entries(API_HEADERS)) headers.set(name, value);
  headers.set(REQUEST_ID_HEADER, info.requestId);
  return headers;
}

/** A complete (non-streamed) answer; Content-Length states the body's length. */
export function respond(status: number, headers: Headers, body: Uint8Array | string): Response {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  headers.set('Content-Length', String(bytes.byteLength));
  return new Response(bytes, { status, headers });
}

/**
 * The answer to a HEAD: the GET's status and headers, Content-Length still
 * stating the GET body's length (as the origin does), and no body. A
 * streamed body is cancelled unread (a forwarded blob is asked for with HEAD
 * anyway, so it has none).
 */
export function withoutBody(response: Response): Response {
  void response.body?.cancel();
  return new Response(null, { status: response.status, headers: response.headers });
}

// The one place where the edge turns an error into a response: the registry
// error JSON of shared/errors.ts, with the origin's headers, so a client
// cannot tell which side refused it. The origin's own refusals are passed
// through here too.
//
// No Workers-only API here: the Node unit tests import it.
import { errors, RegistryError, toRegistryError } from '../shared/errors.ts';
import { errorAnswer } from '../shared/responses.ts';
import { ConfigError } from './env.ts';
import type { OriginAnswer } from './origin.ts';
import { apiHeaders, EDGE_CACHE_HEADER, respond, type RequestInfo } from './responses.ts';

/** Errors the edge did not expect become UNKNOWN for the client, and a log line for the operator. */
export function asRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof ConfigError) {
    // The variable name helps whoever deploys; values are never echoed (some are secrets).
    return errors.internal(`the edge is misconfigured: ${err.message}`, { variable: err.variable });
  }
  console.error('nixery-edge: unexpected error', err instanceof Error ? (err.stack ?? err.message) : String(err));
  return toRegistryError(err);
}

export function errorResponse(err: unknown, info: RequestInfo): Response {
  const answer = errorAnswer(asRegistryError(err));
  return respond(answer.status, apiHeaders(info, answer.headers), answer.body);
}

/**
 * The origin's own refusal (a 4xx: unknown package, unknown blob), status
 * and body as the origin sent them, with the edge's headers. `cache` marks a
 * refusal replayed from the edge's short negative cache.
 */
export function passThrough(info: RequestInfo, answer: OriginAnswer, cache?: 'negative'): Response {
  const headers = apiHeaders(info, { 'Content-Type': answer.headers.get('Content-Type') ?? 'application/json' });
  if (cache !== undefined) headers.set(EDGE_CACHE_HEADER, cache);
  for (const name of ['Content-Range', 'Retry-After']) {
    const value = answer.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  const length = answer.headers.get('Content-Length');
  if (answer.body.byteLength === 0 && length !== null) {
    // The origin answered a forwarded HEAD: its Content-Length is that of the body it did not send.
    headers.set('Content-Length', length);
    return new Response(null, { status: answer.status, headers });
  }
  return respond(answer.status, headers, answer.body);
}

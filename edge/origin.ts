// Talking to the origin: every request carries the shared secret and the
// request id, and waits no longer than a limit. Failures are sorted into
// what the client caused (4xx, passed through) and what the origin could not
// do (down, too slow, 5xx, or refusing the edge itself), which the edge may
// cover with a stale copy.
//
// No Workers-only API here: the Node unit tests import it.
import { errors, isErrorBody, type ErrorBody, type RegistryError } from '../shared/errors.ts';
import { sha256Digest, type Digest } from '../shared/digest.ts';
import { acceptHeader, type Negotiated } from '../shared/media-types.ts';
import { CLIENT_ADDRESS_HEADER, ORIGIN_SECRET_HEADER, REQUEST_ID_HEADER } from '../shared/headers.ts';
import { isImageFailure } from './remembered-errors.ts';
import type { EdgeConfig } from './env.ts';
import type { ManifestEntry } from './manifest-cache.ts';

/** An answer of the origin read whole (manifests and errors are small). */
export interface OriginAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
}

export type ManifestFetch =
  | { readonly kind: 'manifest'; readonly entry: ManifestEntry }
  /** The origin refused the request itself (4xx): the client gets exactly this. */
  | { readonly kind: 'refused'; readonly answer: OriginAnswer }
  | OriginFailure;

/** The origin could not answer: a stale copy may stand in, else 503. */
export interface OriginFailure {
  readonly kind: 'failed';
  readonly reason: string;
  /** The origin's own error body, when it sent one (a 5xx with Nix's words, say). */
  readonly originError: ErrorBody | null;
}

/** Thrown by `OriginClient.send` when there is no HTTP answer in time. */
export class OriginUnreachable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OriginUnreachable';
  }
}

export interface SendOptions {
  method: 'GET' | 'HEAD' | 'POST';
  requestId: string;
  /** A POST's body (the page's build requests: small JSON). */
  body?: string;
  headers?: Record<string, string>;
  /**
   * The address of the client this request is for (rate-limit.ts edgeClient),
   * sent for the origin's fair shares of its Nix queue; the origin believes it
   * only beside the secret. Null or absent for the edge's own requests.
   */
  client?: string | null;
  /** Also wait for the body within the time limit (false for streamed blobs: only the headers are timed). */
  readBody: boolean;
  /** A shorter limit than ORIGIN_TIMEOUT_MS (background work that must end within ctx.waitUntil's time). */
  timeoutMs?: number;
}

export class OriginClient {
  private readonly config: EdgeConfig;
  private readonly fetcher: typeof fetch;

  // The default calls the global through a closure: Workers refuse `fetch` called as a method of another object.
  constructor(config: EdgeConfig, fetcher: typeof fetch = (input, init) => fetch(input, init)) {
    this.config = config;
    this.fetcher = fetcher;
  }

  /**
   * Sends a request to the origin. Resolves with the origin's response
   * (whatever its status) or throws OriginUnreachable. Redirects are passed
   * on to the client, not followed (a GCS origin answers blobs with 307).
   */
  async send(path: string, options: SendOptions & { readBody: true }): Promise<OriginAnswer>;
  async send(path: string, options: SendOptions & { readBody: false }): Promise<Response>;
  async send(path: string, options: SendOptions): Promise<OriginAnswer | Response> {
    const headers = new Headers(options.headers);
    headers.set(REQUEST_ID_HEADER, options.requestId);
    if (options.client) headers.set(CLIENT_ADDRESS_HEADER, options.client);
    if (this.config.originSecret !== null) headers.set(ORIGIN_SECRET_HEADER, this.config.originSecret);
    const controller = new AbortController();
    const limit = Math.min(options.timeoutMs ?? this.config.originTimeoutMs, this.config.originTimeoutMs);
    const timer = setTimeout(() => controller.abort(new OriginUnreachable(`the origin did not answer within ${limit} ms`)), limit);
    try {
      const response = await this.fetcher(`${this.config.originUrl}${path}`, {
        method: options.method,
        headers,
        ...(options.body !== undefined ? { body: options.body } : {}),
        redirect: 'manual',
        signal: controller.signal,
      });
      if (!options.readBody) return response;
      const body = new Uint8Array(await response.arrayBuffer());
      return { status: response.status, headers: response.headers, body };
    } catch (err) {
      if (err instanceof OriginUnreachable) throw err;
      if (controller.signal.aborted) throw new OriginUnreachable(`the origin did not answer within ${limit} ms`);
      throw new OriginUnreachable(`the origin is unreachable: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Fetches a manifest (or an index) in the negotiated formats. Always a GET,
   * even for a client's HEAD, so the answer can be cached; the Accept header
   * names exactly those formats, so the answer depends on the cache key only.
   */
  async fetchManifest(path: string, wanted: Negotiated, expected: Digest | null, requestId: string, client: string | null = null): Promise<ManifestFetch> {
    let answer: OriginAnswer;
    try {
      answer = await this.send(path, { method: 'GET', requestId, headers: { Accept: acceptHeader(wanted) }, client, readBody: true });
    } catch (err) {
      if (err instanceof OriginUnreachable) return { kind: 'failed', reason: err.message, originError: null };
      throw err;
    }
    const sorted = classify(answer);
    if (sorted !== null) return sorted;
    if (answer.status !== 200) return failed(`the origin answered ${answer.status} to a manifest request`, answer);

    const digest = answer.headers.get('Docker-Content-Digest');
    const mediaType = answer.headers.get('Content-Type');
    if (digest === null || mediaType === null) return failed('the origin answered a manifest without Docker-Content-Digest or Content-Type', answer);
    // A manifest is cached for a long time: check it is the one the origin names before keeping it.
    const actual = await sha256Digest(answer.body);
    if (actual !== digest || (expected !== null && actual !== expected)) {
      return failed(`the origin sent a manifest whose digest ${actual} is not ${expected ?? digest}`, answer);
    }
    return { kind: 'manifest', entry: { digest: actual, mediaType, bytes: answer.body } };
  }
}

/**
 * Sorts the origin's error answers: null for anything that is not one (2xx, 3xx).
 * The origin refusing the edge's secret is not the client's doing: it is
 * reported as the origin failing (the operator's to fix), not passed on as DENIED.
 */
export function classify(answer: OriginAnswer): ManifestFetch | null {
  // The image's own failure (a broken package, a limit), as the origin marks it: the client's answer.
  if (isImageFailure(answer)) return { kind: 'refused', answer };
  if (answer.status >= 500) return failed(`the origin failed with ${answer.status}`, answer);
  if (answer.status === 401 || answer.status === 403) return failed(`the origin refused the edge (${answer.status}): check ORIGIN_SECRET on both sides`, answer);
  if (answer.status >= 400) return { kind: 'refused', answer };
  return null;
}

function failed(reason: string, answer: OriginAnswer): OriginFailure {
  return { kind: 'failed', reason, originError: parseErrorBody(answer) };
}

export function parseErrorBody(answer: OriginAnswer): ErrorBody | null {
  if (!(answer.headers.get('Content-Type') ?? '').includes('json')) return null;
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(answer.body));
    return isErrorBody(value) ? value : null;
  } catch {
    return null;
  }
}

/** What the client sees when the origin failed and nothing cached could stand in: 503 UNAVAILABLE, with the origin's words if it had any. */
export function unavailableError(failure: OriginFailure): RegistryError {
  const originMessage = failure.originError?.errors[0]?.message;
  const why = originMessage !== undefined ? `${failure.reason}: ${originMessage}` : failure.reason;
  return errors.unavailable(`the registry cannot answer right now: ${why}`, { reason: failure.reason, origin: failure.originError });
}

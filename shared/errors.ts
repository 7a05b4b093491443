// The registry error type shared by the edge and the origin. Every error a
// client sees is one of these, rendered by shared/responses.ts's
// `errorAnswer` in exactly one place on each side. An error carries the
// headers its answer needs (Content-Range of a 416, say), so no writer has
// to know about particular errors.
//
// Codes and statuses follow the OCI distribution spec ("Error Codes"); UNKNOWN
// and UNAVAILABLE are the codes the reference registry (distribution) uses for
// server-side failures.

export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  // The reference registry's code for a malformed `n` in a tag list (not in the OCI spec's table).
  PAGINATION_NUMBER_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  /** Not the distribution spec's: a malformed request to the page's JSON API (docs/api.md). */
  QUERY_INVALID: 400,
  UNKNOWN: 500,
  UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface RegistryErrorOptions {
  /** A status other than the code's own (416 for a range, say). */
  status?: number;
  /** Headers the answer carries besides the usual ones (Content-Range, Retry-After). */
  headers?: Readonly<Record<string, string>>;
}

declare global {
  interface ErrorConstructor {
    /** V8's, in Node and workerd alike (Node's types declare it; the Workers types leave it out). */
    stackTraceLimit: number;
  }
}

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly detail: unknown;
  readonly status: number;
  /**
   * Response headers that belong to this error: Content-Range on a 416, Retry-After on a
   * refusal, Cache-Control on a failure the origin remembers (and so may the edge).
   */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, detail?: unknown, options: RegistryErrorOptions = {}) {
    const status = options.status ?? ERROR_STATUS[code];
    // A client's error (4xx) is an answer, not a fault: nobody reads its stack, and capturing one
    // was a twentieth of what a stranger's refused request cost the origin. A 5xx keeps its stack
    // for the log. The limit is read when the error is made, and restored before anything else runs.
    const limit = Error.stackTraceLimit;
    if (status < 500) Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'RegistryError';
    this.code = code;
    this.detail = detail ?? null;
    this.status = status;
    this.headers = options.headers ?? {};
  }

  /** The same error with more headers (e.g. a remembered failure's Cache-Control). */
  withHeaders(headers: Record<string, string>): RegistryError {
    return new RegistryError(this.code, this.message, this.detail, { status: this.status, headers: { ...this.headers, ...headers } });
  }
}

export interface ErrorBody {
  errors: { code: string; message: string; detail: unknown }[];
}

export function errorBody(err: RegistryError): ErrorBody {
  return { errors: [{ code: err.code, message: err.message, detail: err.detail }] };
}

/** Recognises an error body produced by any registry, ours or another. */
export function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== 'object' || value === null) return false;
  const errors = (value as { errors?: unknown }).errors;
  return Array.isArray(errors) && errors.every((e) => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string');
}

/** Anything thrown that is not already a RegistryError becomes UNKNOWN, without leaking internals. */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  return new RegistryError('UNKNOWN', 'internal server error');
}

/** Small constructors so call sites read as sentences. */
export const errors = {
  nameInvalid: (name: string, why: string) => new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(name)}: ${why}`, { name }),
  manifestUnknown: (message: string, detail?: unknown) => new RegistryError('MANIFEST_UNKNOWN', message, detail),
  blobUnknown: (digest: string) => new RegistryError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, { digest }),
  digestInvalid: (digest: string, why: string) => new RegistryError('DIGEST_INVALID', `invalid digest ${JSON.stringify(digest)}: ${why}`, { digest }),
  queryInvalid: (message: string, detail?: unknown) => new RegistryError('QUERY_INVALID', message, detail),
  notFound: (path: string) => new RegistryError('NAME_UNKNOWN', `no such endpoint: ${path.slice(0, 200)}`, { path: path.slice(0, 200) }),
  unsupported: (message: string) => new RegistryError('UNSUPPORTED', message),
  noCatalog: () => new RegistryError('UNSUPPORTED', 'this registry has no catalog: every name of packages is an image'),
  denied: (message: string) => new RegistryError('DENIED', message),
  unavailable: (message: string, detail?: unknown) => new RegistryError('UNAVAILABLE', message, detail),
  internal: (message: string, detail?: unknown) => new RegistryError('UNKNOWN', message, detail),
  /** 429, the distribution spec's TOOMANYREQUESTS, with when to come back. */
  tooManyRequests: (message: string, retryAfterSeconds: number, detail?: unknown) =>
    new RegistryError('TOOMANYREQUESTS', message, detail, { headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) } }),
  /** An image over one of the origin's limits (limits.ts): the limit is named in the detail. */
  limitExceeded: (message: string, detail: { limit: string; max: number; actual: number }) => new RegistryError('DENIED', message, detail),
  rangeNotSatisfiable: (size: number) =>
    new RegistryError('UNKNOWN', 'requested range not satisfiable', { size }, { status: 416, headers: { 'Content-Range': `bytes */${size}` } }),
};

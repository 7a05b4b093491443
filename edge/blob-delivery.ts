// BLOB_DELIVERY=edge: the Worker serves blobs itself. It fetches a blob from
// GCS by a URL it signed, streams it to the client and keeps it in the Cache
// API by digest (immutable), so a repeat pull in that data centre touches
// neither GCS nor the origin. Ranges and HEAD are answered from the cached
// copy (the Cache API answers a Range on a cached 200 with 206 or 416 itself).
//
// The bytes are checked while they stream: everything passes through a
// SHA-256 of its own (crypto.DigestStream) and the last chunk is held back
// until the digest is known. If it is not the blob's digest, both the
// client's stream and the cache write fail before the end: the client sees a
// broken transfer, never a complete wrong blob, and nothing is cached.
//
// A blob too big for a Cache API object (BLOB_CACHE_MAX_BYTES; 512 MB on
// Cloudflare's plans below Enterprise) is redirected to GCS as with
// BLOB_DELIVERY=redirect, and remembered per isolate so the next request
// for it is redirected without asking GCS first.
//
// Uses Workers-only APIs (crypto.DigestStream): tested in workerd (test/e2e).
import { errors } from '../shared/errors.ts';
import { digestHex, toHex, type Digest } from '../shared/digest.ts';
import { MEDIA } from '../shared/media-types.ts';
import { Lru } from '../shared/lru.ts';
import type { BlobSigner } from './blobs.ts';
import { pacedTee } from './paced-tee.ts';
import { apiHeaders, EDGE_CACHE_HEADER, type RequestInfo } from './responses.ts';

const IMMUTABLE = 'public, max-age=31536000, immutable';
/** The blob's size, stored with a cached blob (the cached entry itself has no Content-Length; see below). */
const SIZE_HEADER = 'X-Nixery-Edge-Blob-Size';
/** Headers of a blob answer (cached or GCS's) that mean the same to the client. */
const PASSED_HEADERS = ['Content-Length', 'Content-Range', 'Accept-Ranges'];

/** The part of the Workers Cache API used here. */
export interface BlobCache {
  match(request: Request): Promise<Response | undefined>;
  put(key: string, response: Response): Promise<void>;
}

export interface EdgeBlobOptions {
  signer: BlobSigner;
  maxCacheBytes: number;
  /** Null where there is no Cache API (workers.dev): blobs are then streamed from GCS every time. */
  cache: () => Promise<BlobCache | null>;
  fetcher?: typeof fetch;
}

/** Where a blob answer came from, in X-Nixery-Edge-Cache: the data centre's cache, or GCS (stored on the way, or not). */
type BlobSource = 'cache' | 'miss' | 'uncached';

export class EdgeBlobDelivery {
  private readonly options: EdgeBlobOptions;
  private readonly fetcher: typeof fetch;
  /** Blobs known to be too big to cache: redirected at once. */
  private readonly tooBig = new Lru<Digest, true>(1_000);

  constructor(options: EdgeBlobOptions) {
    this.options = options;
    // Workers refuse `fetch` called as a method of another object.
    this.fetcher = options.fetcher ?? ((input, init) => fetch(input, init));
  }

  /** `redirect` answers as BLOB_DELIVERY=redirect would, for a blob the cache cannot hold. */
  async serve(info: RequestInfo, request: Request, digest: Digest, background: (p: Promise<unknown>) => void, redirect: () => Promise<Response>): Promise<Response> {
    if (this.tooBig.get(digest) !== undefined) return redirect();
    const range = request.headers.get('Range');
    const key = `${info.url.origin}/.nixery-edge/blobs/${digest}`;
    const cache = await this.openCache();
    if (cache !== null) {
      const hit = await this.fromCache(cache, key, range);
      if (hit !== null) return answer(info, digest, withLength(hit), 'cache');
    }

    const { url } = await this.options.signer.url(digest);
    // A client's range of an uncached blob is fetched as asked and not cached: the whole blob arrives with the next full GET.
    const partial = range !== null || info.method === 'HEAD';
    let upstream: Response;
    try {
      upstream = await this.fetcher(url, { method: info.method === 'HEAD' ? 'HEAD' : 'GET', headers: range !== null ? { Range: range } : {} });
    } catch (err) {
      throw errors.unavailable(`the edge cannot reach storage: ${err instanceof Error ? err.message : String(err)}`, { reason: 'storage unreachable' });
    }
    if (upstream.status === 404) {
      await upstream.body?.cancel();
      throw errors.blobUnknown(digest);
    }
    if (upstream.status === 416) {
      await upstream.body?.cancel();
      throw errors.rangeNotSatisfiable(sizeFromContentRange(upstream.headers.get('Content-Range')) ?? 0);
    }
    if (upstream.status !== 200 && upstream.status !== 206) {
      await upstream.body?.cancel();
      throw errors.unavailable(`storage answered ${upstream.status} for ${digest}`, { reason: `storage answered ${upstream.status}` });
    }
    if (partial || upstream.body === null) return answer(info, digest, upstream, 'uncached');

    const length = Number(upstream.headers.get('Content-Length') ?? Number.NaN);
    if (Number.isFinite(length) && length > this.options.maxCacheBytes) {
      // Already asked for, but no byte need cross: the client fetches it from GCS as in redirect mode.
      await upstream.body.cancel();
      this.tooBig.set(digest, true);
      return redirect();
    }
    const checked = upstream.body.pipeThrough(verifyDigest(digest));
    if (cache === null || !Number.isFinite(length)) {
      // Without a length the Cache API would take the body as chunked, which holds up the cache's other writes: not worth it.
      const body = Number.isFinite(length) ? checked.pipeThrough(fixedLength(length)) : checked;
      return answer(info, digest, new Response(body, { status: 200, headers: upstream.headers }), 'uncached');
    }
    // The client's side has a stated length (Content-Length; a stream that ends short fails). The cache's side does
    // not: workerd's cache keeps an aborted stream of stated length as a short entry, but drops an aborted plain
    // stream, so the entry carries its size in a header of its own instead.
    const tee = pacedTee(checked);
    const [toClient, toCache] = tee.sides;
    const stored = new Response(toCache, {
      headers: {
        'Content-Type': MEDIA.octetStream,
        [SIZE_HEADER]: String(length),
        ETag: `"${digest}"`,
        'Docker-Content-Digest': digest,
        'Accept-Ranges': 'bytes',
        'Cache-Control': IMMUTABLE,
      },
    });
    background(
      cache.put(key, stored).catch((err: unknown) => {
        // The client must not wait for a cache side that nobody reads any more.
        tee.drop(1, err);
        // A failed write (a wrong digest, a full cache) costs a later fetch from GCS, never a wrong answer.
        console.error(`nixery-edge: blob ${digest} not cached: ${String(err)}`);
      }),
    );
    return answer(info, digest, new Response(toClient.pipeThrough(fixedLength(length)), { status: 200, headers: upstream.headers }), 'miss');
  }

  private async fromCache(cache: BlobCache, key: string, range: string | null): Promise<Response | null> {
    try {
      // Always a GET: the Cache API matches no other method; a HEAD is the GET's headers.
      return (await cache.match(new Request(key, { headers: range !== null ? { Range: range } : {} }))) ?? null;
    } catch (err) {
      console.error('nixery-edge: blob cache read failed', String(err));
      return null;
    }
  }

  private cacheOpened: Promise<BlobCache | null> | null = null;

  private openCache(): Promise<BlobCache | null> {
    this.cacheOpened ??= this.options.cache().catch((err: unknown) => {
      console.error('nixery-edge: the Cache API is unavailable; blobs are streamed from storage uncached', String(err));
      return null;
    });
    return this.cacheOpened;
  }
}

/** The client's answer: the edge's own headers, the length and range of the source, and for HEAD no body. */
async function answer(info: RequestInfo, digest: Digest, source: Response, from: BlobSource): Promise<Response> {
  if (source.status === 416) {
    await source.body?.cancel();
    throw errors.rangeNotSatisfiable(sizeFromContentRange(source.headers.get('Content-Range')) ?? 0);
  }
  const headers = apiHeaders(info, {
    'Content-Type': MEDIA.octetStream,
    'Docker-Content-Digest': digest,
    ETag: `"${digest}"`,
    'Cache-Control': IMMUTABLE,
    'Accept-Ranges': 'bytes',
    [EDGE_CACHE_HEADER]: from,
  });
  for (const name of PASSED_HEADERS) {
    const value = source.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  if (info.method === 'HEAD') {
    await source.body?.cancel();
    return new Response(null, { status: source.status, headers });
  }
  return new Response(source.body, { status: source.status, headers });
}

/** A whole cached blob with its stated length (Content-Length for the client and for HEAD). */
function withLength(hit: Response): Response {
  const size = Number(hit.headers.get(SIZE_HEADER) ?? Number.NaN);
  if (hit.status !== 200 || !Number.isFinite(size) || hit.body === null) return hit;
  const headers = new Headers(hit.headers);
  headers.set('Content-Length', String(size));
  return new Response(hit.body.pipeThrough(fixedLength(size)), { status: 200, headers });
}

function sizeFromContentRange(value: string | null): number | null {
  const match = value === null ? null : /\/(\d+)\s*$/.exec(value);
  return match ? Number(match[1]) : null;
}

/** Workers' streaming hash (in neither lib.dom's nor Node's types): a WritableStream whose `digest` resolves once it is closed. */
type DigestStreamClass = new (algorithm: string) => WritableStream<Uint8Array> & { readonly digest: Promise<ArrayBuffer> };
const workersCrypto = (): { DigestStream: DigestStreamClass } => (globalThis as unknown as { crypto: { DigestStream: DigestStreamClass } }).crypto;

/** Workers' FixedLengthStream: an identity stream whose readable side has a known length (not in lib.dom's types). */
type FixedLengthStreamClass = new (length: number) => TransformStream<Uint8Array, Uint8Array>;
function fixedLength(length: number): TransformStream<Uint8Array, Uint8Array> {
  const Fixed = (globalThis as unknown as { FixedLengthStream: FixedLengthStreamClass }).FixedLengthStream;
  return new Fixed(length);
}

/**
 * Passes bytes on while hashing them, holding back the last chunk until the
 * whole stream is hashed; errors instead of ending when the digest is not `expected`.
 */
export function verifyDigest(expected: Digest): TransformStream<Uint8Array, Uint8Array> {
  const hash = new (workersCrypto().DigestStream)('SHA-256');
  const writer = hash.getWriter();
  let held: Uint8Array | null = null;
  return new TransformStream<Uint8Array, Uint8Array>({
    async transform(chunk, controller) {
      await writer.write(chunk);
      if (held !== null) controller.enqueue(held);
      held = chunk;
    },
    async flush(controller) {
      await writer.close();
      const actual = toHex(await hash.digest);
      if (actual !== digestHex(expected)) throw new Error(`storage sent bytes whose sha256 is ${actual}, not ${expected}`);
      if (held !== null) controller.enqueue(held);
    },
  });
}

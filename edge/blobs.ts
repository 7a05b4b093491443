// Blob requests. With GCS storage the edge answers them alone: it signs a V4
// URL for the blob's object (shared/gcs-signer.ts, WebCrypto) and redirects,
// so blob traffic never touches the origin; with BLOB_DELIVERY=edge it
// fetches the blob by that URL and serves it from its cache instead
// (edge/blob-delivery.ts). With filesystem storage (local
// runs) the origin holds the bytes, and the edge streams them through,
// Range and all.
//
// Signing does not check that the blob exists (that would be an origin or
// GCS request per blob): a client asks only for blobs named by a manifest it
// got, and for any other digest GCS itself answers 404.
//
// No Workers-only API here: the Node unit tests import it.
import { digestHex, type Digest } from '../shared/digest.ts';
import { importSigningKey, signGcsUrl, type SigningKey } from '../shared/gcs-signer.ts';
import { STORAGE_KEYS } from '../shared/storage-keys.ts';
import type { BlobConfig } from './env.ts';
import { ConfigError } from './env.ts';
import { Lru } from '../shared/lru.ts';
import { passThrough } from './errors.ts';
import { classify, OriginUnreachable, unavailableError, type OriginClient } from './origin.ts';
import { apiHeaders, respond, type RequestInfo } from './responses.ts';
import type { EdgeBlobDelivery } from './blob-delivery.ts';

/** What blob requests need; part of the registry's services. */
export interface BlobServices {
  /** Null with filesystem storage: blobs are forwarded to the origin. */
  signer: BlobSigner | null;
  /** Set with BLOB_DELIVERY=edge (GCS storage only). */
  blobDelivery: EdgeBlobDelivery | null;
}

type GcsConfig = Extract<BlobConfig, { backend: 'gcs' }>;

/** How long a client may keep a redirect, at most (the origin says the same). */
const MAX_REDIRECT_AGE = 60;

/**
 * Signs blob URLs, reusing a URL while at least half its lifetime is left:
 * RSA signing costs about a millisecond, and a popular layer is asked for
 * many times a second.
 */
export class BlobSigner {
  private readonly config: GcsConfig;
  private key: Promise<SigningKey> | null = null;
  private readonly signed = new Lru<Digest, { url: string; signedAt: number }>(5_000);
  /** For the signing time; tests pass a fixed clock. */
  private readonly now: () => number;

  constructor(config: GcsConfig, now: () => number = Date.now) {
    this.config = config;
    this.now = now;
  }

  async url(digest: Digest): Promise<{ url: string; remainingSeconds: number }> {
    const now = this.now();
    const lifetime = this.config.urlLifetimeSeconds;
    const reusable = this.signed.get(digest);
    if (reusable !== undefined && now - reusable.signedAt < (lifetime * 1000) / 2) {
      return { url: reusable.url, remainingSeconds: lifetime - Math.floor((now - reusable.signedAt) / 1000) };
    }
    const url = await signGcsUrl({
      bucket: this.config.bucket,
      object: STORAGE_KEYS.blob(digestHex(digest)),
      account: this.config.account,
      key: await this.signingKey(),
      expiresInSeconds: lifetime,
      now,
      ...(this.config.apiEndpoint !== null ? { origin: this.config.apiEndpoint } : {}),
    });
    // The URL states its time in whole seconds; remember that time, not the finer one.
    this.signed.set(digest, { url, signedAt: Math.floor(now / 1000) * 1000 });
    return { url, remainingSeconds: lifetime };
  }

  private signingKey(): Promise<SigningKey> {
    // Imported once per isolate. A key that cannot be imported fails every
    // request the same way, as a configuration error naming the secret.
    this.key ??= importSigningKey(this.config.privateKeyPem).catch((err: unknown) => {
      throw new ConfigError('GCS_SIGNING_KEY', err instanceof Error ? err.message : String(err));
    });
    return this.key;
  }
}

export async function redirectToBlob(info: RequestInfo, digest: Digest, signer: BlobSigner): Promise<Response> {
  const { url, remainingSeconds } = await signer.url(digest);
  const headers = apiHeaders(info, {
    Location: url,
    'Docker-Content-Digest': digest,
    'Cache-Control': `private, max-age=${Math.min(MAX_REDIRECT_AGE, Math.floor(remainingSeconds / 2))}`,
  });
  return respond(307, headers, new Uint8Array(0));
}

/** A blob with GCS storage: served by the edge (BLOB_DELIVERY=edge) or redirected to a signed URL. */
export function serveGcsBlob(
  info: RequestInfo,
  request: Request,
  digest: Digest,
  services: BlobServices & { signer: BlobSigner },
  ctx: { waitUntil(promise: Promise<unknown>): void },
): Promise<Response> {
  const signer = services.signer;
  const redirect = () => redirectToBlob(info, digest, signer);
  if (services.blobDelivery === null) return redirect();
  return services.blobDelivery.serve(info, request, digest, (promise) => ctx.waitUntil(promise), redirect);
}

/** Headers of the origin's blob answer that mean the same from the edge. */
const BLOB_HEADERS = ['Content-Type', 'Content-Length', 'Content-Range', 'Accept-Ranges', 'Docker-Content-Digest', 'ETag', 'Cache-Control', 'Location'];

/** Streams a blob (or the requested range of it) from the origin. */
export async function forwardBlob(info: RequestInfo, request: Request, origin: OriginClient): Promise<Response> {
  const forwarded: Record<string, string> = {};
  for (const name of ['Range', 'If-Range']) {
    const value = request.headers.get(name);
    if (value !== null) forwarded[name] = value;
  }
  let response: Response;
  try {
    // A HEAD is forwarded as one, so the origin does not read a blob nobody wants.
    // The client's address: a blob the origin must rebuild waits in its build queue, in this client's share.
    response = await origin.send(info.url.pathname, { method: info.method === 'HEAD' ? 'HEAD' : 'GET', requestId: info.requestId, headers: forwarded, client: info.client ?? null, readBody: false });
  } catch (err) {
    if (err instanceof OriginUnreachable) throw unavailableError({ kind: 'failed', reason: err.message, originError: null });
    throw err;
  }
  if (response.status >= 400) {
    // Error bodies are small JSON: read them whole to sort them like any origin error.
    const answer = { status: response.status, headers: response.headers, body: new Uint8Array(await response.arrayBuffer()) };
    const sorted = classify(answer);
    if (sorted?.kind === 'failed') throw unavailableError(sorted);
    return passThrough(info, answer);
  }
  const headers = apiHeaders(info);
  for (const name of BLOB_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  return new Response(response.body, { status: response.status, headers });
}

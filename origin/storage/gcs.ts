// The Google Cloud Storage backend: objects live in one bucket (optionally
// under a name prefix) and clients download blobs straight from GCS through
// V4 signed URLs.
//
// Streaming writes (layers, whose digest is known only once the last byte is
// written) go to a temporary object under `_staging/` through a resumable
// upload, then are copied server-side to their content address with
// `ifGenerationMatch: 0` and the temporary object is deleted. This is the
// scheme Nixery uses. The alternative, spooling to a local file while the
// layer is produced and uploading it under its final name afterwards, was
// measured against it (bench/gcs/upload-strategies.ts, numbers in
// bench/gcs/README.md): the copy scheme overlaps the upload with producing
// the layer, so the only work left after the last byte is one copy request
// (metadata-only inside one bucket and storage class) plus a delete, where
// spooling has to push the whole layer after the last byte; it needs no
// local disk as large as the biggest layer; it costs two extra operations
// per layer. A crash between upload and copy leaves an object under
// `_staging/` that nobody reads; give the bucket a lifecycle rule deleting
// `_staging/` objects older than a day.
//
// Create-only writes rely on GCS preconditions (`ifGenerationMatch: 0`), never
// on a check-then-write: a 412 means another writer published the same
// content first, which is success.
import { isStaleStaging, type SweepResult } from '../gc/staging.ts';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { Storage as GoogleStorage } from '@google-cloud/storage';
import type { Bucket, File, StorageOptions } from '@google-cloud/storage';
import type { IncomingMessage } from 'node:http';
import { importSigningKey, signGcsUrl } from '../../shared/gcs-signer.ts';
import type { SigningKey } from '../../shared/gcs-signer.ts';
import { checkListPrefix, checkStorageKey, type ByteRange, type ListedObject, type ObjectInfo, type StagedWrite, type Storage } from './storage.ts';
import { withTimeout } from '../../shared/deadline.ts';

export interface GcsSigningOptions {
  /** The service-account email the key belongs to. */
  account: string;
  /** The private key as PEM text, or the path of a PEM file (Nixery's GCS_SIGNING_KEY is a path). */
  privateKeyPem: string;
}

export interface GcsStorageOptions {
  bucket: string;
  /**
   * Sign URLs locally with this service-account key. Without it, URLs are
   * signed by the client library with Application Default Credentials, which
   * for a metadata-server identity (GCE, GKE, Cloud Run) means one IAM
   * signBlob call per URL and the roles/iam.serviceAccountTokenCreator role
   * on that account.
   */
  signing?: GcsSigningOptions | null;
  /**
   * Lifetime of signed URLs. Default 300 s: the URL is handed out in a
   * redirect that clients follow at once (GCS checks expiry when a download
   * starts, not while it runs), every retry goes back through the registry
   * for a fresh URL, and a short life limits what a URL leaked into a log or
   * proxy is worth. It must stay above the redirect's own cache lifetime
   * (60 s) plus clock skew.
   */
  urlLifetimeSeconds?: number;
  /** Another JSON API endpoint, e.g. an emulator (`http://127.0.0.1:9199`); signed URLs point there too. */
  apiEndpoint?: string;
  /** A prefix for every object name, so one bucket can hold several registries. */
  prefix?: string;
  /** Extra options for the client library (projectId, credentials, retries). */
  clientOptions?: StorageOptions;
  /** A ready-made client library instance; a seam for tests. */
  client?: GoogleStorage;
  /** How long the start-up check may take. Default 15 s. */
  checkTimeoutMs?: number;
}

export const DEFAULT_URL_LIFETIME_SECONDS = 300;
const STAGING = '_staging';
const MAX_URL_LIFETIME = 7 * 24 * 60 * 60;

/** Builds the backend and checks the bucket and signing set-up, so a bad configuration fails at start-up. */
export async function createGcsStorage(options: GcsStorageOptions): Promise<GcsStorage> {
  const storage = new GcsStorage(options);
  await storage.checkAccess();
  return storage;
}

export class GcsStorage implements Storage {
  readonly name = 'gcs';
  readonly bucketName: string;
  readonly prefix: string;
  readonly urlLifetimeSeconds: number;
  private readonly client: GoogleStorage;
  private readonly bucket: Bucket;
  private readonly probe: Bucket;
  private readonly signing: { account: string; key: () => Promise<SigningKey> } | null;
  private readonly apiEndpoint: string | undefined;
  private readonly checkTimeoutMs: number;

  constructor(options: GcsStorageOptions) {
    if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(options.bucket)) {
      throw new Error(`invalid GCS bucket name ${JSON.stringify(options.bucket)}`);
    }
    const lifetime = options.urlLifetimeSeconds ?? DEFAULT_URL_LIFETIME_SECONDS;
    if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > MAX_URL_LIFETIME) {
      throw new Error(`signed URL lifetime must be 1 to ${MAX_URL_LIFETIME} whole seconds, got ${lifetime}`);
    }
    const prefix = (options.prefix ?? '').replace(/^\/+/, '');
    this.bucketName = options.bucket;
    this.prefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.urlLifetimeSeconds = lifetime;
    this.apiEndpoint = options.apiEndpoint;
    this.checkTimeoutMs = options.checkTimeoutMs ?? 15_000;

    const clientOptions: StorageOptions = { ...options.clientOptions, ...(options.apiEndpoint ? { apiEndpoint: options.apiEndpoint } : {}) };
    // The client library reads STORAGE_EMULATOR_HOST by itself and uses it
    // raw as its base URL (so `host:port` fails, and it would override the
    // endpoint the configuration chose). The configuration already made it
    // the apiEndpoint above (shared/config.ts gcsEndpoint): one reading, one
    // endpoint for object calls and signed URLs alike.
    delete process.env.STORAGE_EMULATOR_HOST;
    this.client = options.client ?? new GoogleStorage(clientOptions);
    this.bucket = this.client.bucket(options.bucket);
    // The start-up check must answer quickly: the default client retries a
    // refused connection with back-off for many seconds before giving up.
    this.probe = options.client ? this.bucket : new GoogleStorage({ ...clientOptions, retryOptions: { autoRetry: false } }).bucket(options.bucket);

    const signing = options.signing;
    if (signing) {
      let key: Promise<SigningKey> | undefined;
      this.signing = { account: signing.account, key: () => (key ??= loadSigningKey(signing.privateKeyPem)) };
    } else {
      this.signing = null;
    }
  }

  /**
   * Lists at most one object and signs one URL, so a wrong bucket, missing
   * permissions, an unreachable endpoint or an unusable signing key stop the
   * origin at start-up with a message that says which. Listing needs only
   * storage.objects.list, which any role able to run the registry has.
   */
  async checkAccess(): Promise<void> {
    const where = `GCS bucket "${this.bucketName}"${this.apiEndpoint ? ` at ${this.apiEndpoint}` : ''}`;
    try {
      await withTimeout(this.probe.getFiles({ prefix: this.prefix, maxResults: 1, autoPaginate: false }), this.checkTimeoutMs, `no answer within ${this.checkTimeoutMs} ms`);
    } catch (err) {
      const status = statusOf(err);
      const detail = (err as Error).message;
      if (status === 404) throw new Error(`${where} does not exist: ${detail}`, { cause: err });
      if (status === 401 || status === 403) throw new Error(`${where} refuses to list objects (HTTP ${status}); check the credentials and their roles: ${detail}`, { cause: err });
      if (status !== undefined) throw new Error(`${where} answered HTTP ${status} to a listing: ${detail}`, { cause: err });
      throw new Error(`${where} is not reachable: ${detail}`, { cause: err });
    }
    try {
      await this.signedUrl(`${this.prefix}${STAGING}/probe`);
    } catch (err) {
      const how = this.signing
        ? `with the key for ${this.signing.account} (GCS_SIGNING_KEY)`
        : 'through the IAM signBlob API with the default credentials (set GCS_SIGNING_KEY and GCS_SIGNING_ACCOUNT, or grant roles/iam.serviceAccountTokenCreator)';
      throw new Error(`cannot sign URLs for ${where} ${how}: ${(err as Error).message}`, { cause: err });
    }
  }

  private objectName(key: string): string {
    return this.prefix + checkStorageKey(key, STAGING);
  }

  private file(key: string): File {
    return this.bucket.file(this.objectName(key));
  }

  async stage(): Promise<StagedWrite> {
    const temp = this.bucket.file(`${this.prefix}${STAGING}/${Date.now()}-${randomBytes(12).toString('hex')}`);
    const stream = temp.createWriteStream({
      // Size unknown and possibly large: a resumable session, sent as one
      // request so nothing is buffered beyond the library's own chunk.
      resumable: true,
      validation: 'crc32c',
      contentType: 'application/octet-stream',
      // The name is fresh, so this always holds; it marks the upload as
      // idempotent, which lets the library retry it after transient errors.
      preconditionOpts: { ifGenerationMatch: 0 },
    });
    // A failed upload surfaces through commit(); without a listener an upload
    // error after the caller stopped watching would crash the process.
    stream.on('error', () => undefined);
    let settled = false;
    const removeTemp = () => temp.delete({ ignoreNotFound: true }).then(() => undefined, () => undefined);

    return {
      stream,
      commit: async (key: string, contentType: string) => {
        if (settled) throw new Error('staged write already settled');
        const target = this.file(key);
        settled = true;
        try {
          if (!stream.writableFinished) await finished(stream);
          await ignorePreconditionFailed(temp.copy(target, { contentType, preconditionOpts: { ifGenerationMatch: 0 } }));
        } finally {
          // A leftover temp object is harmless to readers; the lifecycle rule
          // removes it if this delete fails.
          await removeTemp();
        }
      },
      abort: async () => {
        settled = true;
        if (!stream.closed) {
          const closed = new Promise<void>((resolveClose) => stream.once('close', () => resolveClose()));
          stream.destroy();
          await closed;
        }
        await removeTemp();
      },
    };
  }

  async put(key: string, data: Uint8Array, contentType: string, options: { createOnly?: boolean } = {}): Promise<void> {
    const file = this.file(key);
    // One request; GCS replaces an object atomically, so readers see the old
    // or the new bytes, never a mix.
    const write = file.save(Buffer.from(data.buffer, data.byteOffset, data.byteLength), {
      resumable: false,
      validation: 'crc32c',
      contentType,
      ...(options.createOnly ? { preconditionOpts: { ifGenerationMatch: 0 } } : {}),
    });
    await (options.createOnly ? ignorePreconditionFailed(write) : write);
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      const [bytes] = await this.file(key).download();
      return bytes;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const [metadata] = await this.file(key).getMetadata();
      const info: ObjectInfo = { size: Number(metadata.size) };
      if (metadata.contentType) info.contentType = metadata.contentType;
      const written = Date.parse(String(metadata.timeCreated ?? metadata.updated ?? ''));
      if (!Number.isNaN(written)) info.written = written;
      return info;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  /**
   * Starts the download and waits for the response headers, so a missing
   * object is null here (one request) instead of an error in mid-response.
   */
  async read(key: string, range?: ByteRange): Promise<Readable | null> {
    const stream = this.file(key).createReadStream(range ? { start: range.start, end: range.end } : {});
    return await new Promise<Readable | null>((resolveRead, reject) => {
      const onError = (err: unknown) => {
        stream.off('response', onResponse);
        if (statusOf(err) === 404) resolveRead(null);
        else reject(err);
      };
      const onResponse = (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        // Error statuses are turned into a stream error by the library.
        if (status < 200 || status >= 300) return;
        stream.off('error', onError);
        stream.off('response', onResponse);
        resolveRead(stream);
      };
      stream.once('error', onError);
      stream.on('response', onResponse);
      // The library sends the request on the first read; ask for zero bytes
      // to send it now without consuming anything.
      stream.read(0);
    });
  }

  async publicUrl(key: string): Promise<string | null> {
    return await this.signedUrl(this.objectName(key));
  }

  private async signedUrl(object: string): Promise<string> {
    if (this.signing) {
      return await signGcsUrl({
        bucket: this.bucketName,
        object,
        account: this.signing.account,
        key: await this.signing.key(),
        expiresInSeconds: this.urlLifetimeSeconds,
        ...(this.apiEndpoint ? { origin: this.apiEndpoint } : {}),
      });
    }
    const [url] = await this.bucket.file(object).getSignedUrl({
      version: 'v4',
      action: 'read',
      expires: Date.now() + this.urlLifetimeSeconds * 1000,
    });
    return url;
  }

  async delete(key: string): Promise<void> {
    await this.file(key).delete({ ignoreNotFound: true });
  }

  /**
   * The library's paged listing, one page (up to `pageSize` objects) per
   * request and in memory at a time. The time written is the object's
   * `timeCreated`: every write makes a new generation, created then. An
   * object without one counts as just written, which keeps it (retention).
   */
  async *list(prefix: string, pageSize = 1000): AsyncIterable<ListedObject> {
    checkListPrefix(prefix, STAGING);
    const staging = `${this.prefix}${STAGING}/`;
    let pageToken: string | undefined;
    do {
      const [files, next] = await this.bucket.getFiles({ prefix: this.prefix + prefix, maxResults: pageSize, autoPaginate: false, ...(pageToken ? { pageToken } : {}) });
      for (const file of files) {
        if (file.name.startsWith(staging)) continue;
        const written = Date.parse(String(file.metadata.timeCreated ?? file.metadata.updated ?? ''));
        yield { key: file.name.slice(this.prefix.length), size: Number(file.metadata.size ?? 0), written: Number.isNaN(written) ? Date.now() : written };
      }
      pageToken = (next as { pageToken?: string } | null)?.pageToken;
    } while (pageToken);
  }

  async sweepStaging(now: number, maxAgeMs: number): Promise<SweepResult> {
    const result: SweepResult = { removed: 0, bytes: 0 };
    const staging = `${this.prefix}${STAGING}/`;
    const [files] = await this.bucket.getFiles({ prefix: staging });
    for (const file of files) {
      if (!isStaleStaging(file.name.slice(staging.length), now, maxAgeMs)) continue;
      await file.delete({ ignoreNotFound: true });
      result.removed++;
      result.bytes += Number(file.metadata.size ?? 0);
    }
    return result;
  }
}

/**
 * Accepts the key as PEM text or, as Nixery does, as the path of a PEM file;
 * anything not starting like a PEM block is taken as a path.
 */
export async function readSigningKey(pemOrPath: string): Promise<string> {
  if (/^\s*-----BEGIN /.test(pemOrPath)) return pemOrPath;
  try {
    return await readFile(pemOrPath, 'utf8');
  } catch (err) {
    throw new Error(`signing key is neither PEM text nor a readable file (${(err as Error).message})`, { cause: err });
  }
}

async function loadSigningKey(pemOrPath: string): Promise<SigningKey> {
  return await importSigningKey(await readSigningKey(pemOrPath));
}

/** The HTTP status of an error from the client library: ApiError has `code`, upload (gaxios) errors have `status`. */
export function statusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, status, response } = err as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const value of [code, status, response?.status]) {
    if (typeof value === 'number' && value >= 100 && value < 600) return value;
  }
  return undefined;
}

/** A create-only write that lost to an existing object is a success: the content is already there. */
async function ignorePreconditionFailed(write: Promise<unknown>): Promise<void> {
  try {
    await write;
  } catch (err) {
    if (statusOf(err) !== 412) throw err;
  }
}


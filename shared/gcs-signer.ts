// V4 signed URLs for Google Cloud Storage, made with WebCrypto only so the
// Worker and the origin share one signer.
//
// The output is byte-for-byte what `@google-cloud/storage` v7 makes with
// `file.getSignedUrl({ version: 'v4', action: 'read' })` for the same key,
// object and time (test/unit/gcs-signer.test.ts compares the two). Matching
// the library exactly matters more than matching the spec prose: any
// divergence in encoding is a URL that one side accepts and GCS refuses.
//
// Spec: https://cloud.google.com/storage/docs/access-control/signing-urls-manually
import { toHex } from './digest.ts';

/** The key type of `crypto.subtle`, spelled without DOM or Node typings so this file type-checks for both. */
export type SigningKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

export interface SignedUrlRequest {
  bucket: string;
  /** The object name as stored, unencoded (e.g. `blobs/sha256/ab…`). */
  object: string;
  /** Service-account email, the `client_email` of its JSON key. */
  account: string;
  /** A PEM private key (PKCS#8 or PKCS#1), or a key made by `importSigningKey`. */
  key: string | SigningKey;
  /** Lifetime of the URL in whole seconds, 1 to 604800 (7 days, the V4 maximum). */
  expiresInSeconds: number;
  /** The signing time; defaults to now. Only whole seconds are used. */
  now?: Date | number;
  /**
   * Scheme, host and port URLs point at; defaults to https://storage.googleapis.com.
   * Any path is ignored, as the library does: URLs are always path-style.
   */
  origin?: string;
}

const DEFAULT_ORIGIN = 'https://storage.googleapis.com';
const MAX_EXPIRES = 7 * 24 * 60 * 60;
const ALGORITHM = 'GOOG4-RSA-SHA256';
const KEY_ALGORITHM = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

/** Makes a GET V4 signed URL for `bucket/object`. */
export async function signGcsUrl(request: SignedUrlRequest): Promise<string> {
  const { bucket, object, account } = request;
  if (!Number.isInteger(request.expiresInSeconds) || request.expiresInSeconds < 1 || request.expiresInSeconds > MAX_EXPIRES) {
    throw new RangeError(`signed URL lifetime must be a whole number of seconds from 1 to ${MAX_EXPIRES}, got ${request.expiresInSeconds}`);
  }
  if (bucket === '' || bucket.includes('/')) throw new Error(`invalid bucket name ${JSON.stringify(bucket)}`);
  if (object === '') throw new Error('object name must not be empty');
  // The URL parser folds `.` and `..` path segments, so the URL would name a
  // different path than the one signed (the library has the same flaw and
  // makes URLs GCS refuses); refuse rather than hand out a broken URL.
  if (object.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw new Error(`object name ${JSON.stringify(object)} has a "." or ".." segment, which cannot be signed as a URL path`);
  }

  const key = typeof request.key === 'string' ? await importSigningKey(request.key) : checkKey(request.key);
  const now = request.now === undefined ? Date.now() : typeof request.now === 'number' ? request.now : request.now.getTime();
  if (!Number.isFinite(now)) throw new Error('invalid signing time');
  const date = new Date(Math.floor(now / 1000) * 1000);
  const datestamp = formatUtc(date, false);
  const timestamp = formatUtc(date, true);
  const scope = `${datestamp}/auto/storage/goog4_request`;

  const base = new URL(request.origin ?? DEFAULT_ORIGIN);
  // The library signs the bare hostname (no port) as the host header.
  const host = base.hostname;
  const path = `/${bucket}/${encodePath(object)}`;

  // Insertion order is the URL's parameter order; the canonical query is sorted.
  const query: [string, string][] = [
    ['X-Goog-Algorithm', ALGORITHM],
    ['X-Goog-Credential', `${account}/${scope}`],
    ['X-Goog-Date', timestamp],
    ['X-Goog-Expires', String(request.expiresInSeconds)],
    ['X-Goog-SignedHeaders', 'host'],
  ];
  const encoded = query.map(([name, value]) => [encodeComponent(name), encodeComponent(value)] as const);
  const canonicalQuery = [...encoded]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  const canonicalRequest = ['GET', path, canonicalQuery, `host:${host}\n`, 'host', 'UNSIGNED-PAYLOAD'].join('\n');
  const stringToSign = [ALGORITHM, timestamp, scope, await sha256Hex(canonicalRequest)].join('\n');
  const signature = await crypto.subtle.sign(KEY_ALGORITHM.name, key, new TextEncoder().encode(stringToSign));

  const url = new URL(base.href);
  url.pathname = path;
  url.search = [...encoded, ['X-Goog-Signature', toHex(signature)]].map(([name, value]) => `${name}=${value}`).join('&');
  return url.href;
}

/**
 * Imports a PEM private key for signing, so callers that sign often (the
 * Worker) import once and pass the key. Accepts PKCS#8 (`BEGIN PRIVATE KEY`,
 * what service-account JSON keys hold) and PKCS#1 (`BEGIN RSA PRIVATE KEY`,
 * what `openssl genrsa` writes), which is wrapped into PKCS#8 because
 * WebCrypto imports only PKCS#8. Encrypted keys are refused.
 */
export async function importSigningKey(pem: string): Promise<SigningKey> {
  // A PEM copied out of a JSON key file into an environment variable often
  // keeps its newlines as the two characters `\n`; `n` is a base64 letter,
  // so they must go before decoding.
  const text = pem.replace(/\\n/g, '\n').trim();
  const block = /^-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END \1-----$/.exec(text);
  if (!block) throw new Error('signing key is not a PEM block (expected -----BEGIN PRIVATE KEY-----)');
  const label = block[1];
  let der = base64Decode(block[2]!.replace(/\s+/g, ''));
  if (label === 'RSA PRIVATE KEY') der = pkcs1ToPkcs8(der);
  else if (label === 'ENCRYPTED PRIVATE KEY') throw new Error('signing key is encrypted; provide an unencrypted PKCS#8 key');
  else if (label !== 'PRIVATE KEY') throw new Error(`signing key has unsupported PEM type "${label}"; expected PRIVATE KEY or RSA PRIVATE KEY`);
  try {
    return await crypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
  } catch (err) {
    throw new Error(`signing key could not be imported as an RSA private key: ${(err as Error).message}`);
  }
}

function checkKey(key: SigningKey): SigningKey {
  const algorithm = key.algorithm as { name?: string; hash?: { name?: string } };
  if (key.type !== 'private' || algorithm.name !== KEY_ALGORITHM.name || algorithm.hash?.name !== KEY_ALGORITHM.hash || !key.usages.includes('sign')) {
    throw new Error('signing key must be an RSASSA-PKCS1-v1_5 SHA-256 private key usable for "sign"');
  }
  return key;
}

/**
 * The library's `encodeURI(name, false)`: each `/`-separated segment through
 * encodeURIComponent, plus `! ' ( ) *`, which encodeURIComponent leaves alone
 * but the V4 canonical form requires encoded.
 */
function encodePath(name: string): string {
  return name.split('/').map(encodeComponent).join('/');
}

function encodeComponent(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function formatUtc(date: Date, withTime: boolean): string {
  const pad = (n: number, width = 2) => n.toString().padStart(width, '0');
  const day = `${pad(date.getUTCFullYear(), 4)}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}`;
  if (!withTime) return day;
  return `${day}T${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}Z`;
}

async function sha256Hex(text: string): Promise<string> {
  return toHex(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}


function base64Decode(text: string): Uint8Array<ArrayBuffer> {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new Error('signing key PEM body is not valid base64');
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

// DER pieces of PKCS#8 PrivateKeyInfo (RFC 5208) around an RSAPrivateKey:
// SEQUENCE { INTEGER 0, SEQUENCE { OID rsaEncryption, NULL }, OCTET STRING key }.
const PKCS8_VERSION = [0x02, 0x01, 0x00];
const RSA_ALGORITHM_IDENTIFIER = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

function pkcs1ToPkcs8(pkcs1: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (pkcs1[0] !== 0x30) throw new Error('signing key is not a DER RSAPrivateKey');
  const octetString = [0x04, ...derLength(pkcs1.length)];
  const bodyLength = PKCS8_VERSION.length + RSA_ALGORITHM_IDENTIFIER.length + octetString.length + pkcs1.length;
  const header = [0x30, ...derLength(bodyLength), ...PKCS8_VERSION, ...RSA_ALGORITHM_IDENTIFIER, ...octetString];
  const out = new Uint8Array(header.length + pkcs1.length);
  out.set(header, 0);
  out.set(pkcs1, header.length);
  return out;
}

function derLength(length: number): number[] {
  if (length < 0x80) return [length];
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return [0x80 | bytes.length, ...bytes];
}

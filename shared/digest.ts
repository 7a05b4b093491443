// Content digests: parsing, validation and computation with web-standard
// crypto only, so the Worker and the origin share one implementation.
import { errors } from './errors.ts';

/** A validated sha256 digest, e.g. "sha256:e3b0c442...". */
export type Digest = `sha256:${string}`;

const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256_HEX = /^[a-f0-9]{64}$/;

export function isDigestLike(reference: string): boolean {
  return reference.includes(':');
}

/** Validates a digest string; only sha256 is produced or accepted by this registry. */
export function parseDigest(value: string): Digest {
  if (!DIGEST_GRAMMAR.test(value)) throw errors.digestInvalid(value, 'not of the form algorithm:hex');
  const [algorithm, encoded] = value.split(':', 2) as [string, string];
  if (algorithm !== 'sha256') throw errors.digestInvalid(value, `unsupported algorithm ${algorithm}; only sha256 is served`);
  if (!SHA256_HEX.test(encoded)) throw errors.digestInvalid(value, 'sha256 digests are 64 lower-case hex characters');
  return value as Digest;
}

export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = '';
  for (const b of view) out += b.toString(16).padStart(2, '0');
  return out;
}

export async function sha256Digest(data: Uint8Array | string): Promise<Digest> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const hash = await crypto.subtle.digest('SHA-256', bytes);
  return `sha256:${toHex(hash)}`;
}

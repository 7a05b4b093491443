// A full disk is a condition the client can wait out, not an internal error:
// it becomes 503 UNAVAILABLE naming the cause, with Retry-After, instead of an
// opaque 500. Pure: it only inspects the thrown value.
import { RegistryError } from '../../shared/errors.ts';

/** Seconds a client is told to wait; long enough for an operator or GC to free space. */
export const STORAGE_FULL_RETRY_AFTER_SECONDS = 60;

// ENOSPC: no space; EDQUOT: a quota, which the client experiences the same way.
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);
// Nix reports a full store in its stderr, which execa carries in the message. A
// builder that ran out of space may say anything ("I/O error" from busybox);
// Nix then adds its own note, having checked the store's and the build
// directory's free space.
const FULL_TEXT = /No space left on device|Disk quota exceeded|lack of free disk space/;

function describesFull(err: unknown, depth: number): string | null {
  if (depth > 5 || typeof err !== 'object' || err === null) return null;
  const { code, message, cause } = err as { code?: unknown; message?: unknown; cause?: unknown };
  if (typeof code === 'string' && FULL_CODES.has(code)) return code;
  if (typeof message === 'string' && FULL_TEXT.test(message)) return FULL_TEXT.exec(message)![0];
  return describesFull(cause, depth + 1);
}

/**
 * The registry error for a thrown value that means "no space left", or null.
 * `where` names the full place (storage, the Nix store, the temporary directory)
 * when the caller knows it; the detail never carries file paths to the client.
 */
export function storageFullError(err: unknown, where = 'storage'): RegistryError | null {
  if (err instanceof RegistryError) return null;
  const reason = describesFull(err, 0);
  if (reason === null) return null;
  return new RegistryError(
    'UNAVAILABLE',
    `${where} is full: ${reason}; the registry keeps serving what it has, retry later`,
    { retryable: true, reason },
    { headers: { 'Retry-After': String(STORAGE_FULL_RETRY_AFTER_SECONDS) } },
  );
}

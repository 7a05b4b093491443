// Failures the origin remembers for a short while, so a broken or unknown
// name asked again and again costs one Nix run per FAILURE_TTL, not one per
// request. Keyed by what was built (the source's version and the canonical
// image), so every tag that means the same source shares one entry.
//
// Per process, not in storage: a replica that has not seen the failure pays
// for it once, which is cheap next to a request storm, and nothing about a
// failure is ever written where a later fix would have to clear it. The
// answer says how long it holds (Cache-Control: max-age), so the edge keeps
// it as long and asks no origin at all meanwhile.
import { RegistryError } from '../../shared/errors.ts';
import { Lru } from '../../shared/lru.ts';

export interface FailureMemoryOptions {
  /** Seconds a failure is remembered; 0 remembers nothing (answers still say max-age=0). */
  ttlSeconds: number;
  capacity?: number;
  now?: () => number;
}

/**
 * Failures that are the image's and would come out the same again: the
 * client's errors (unknown packages, limits) and Nix's failures (detail.nix).
 * Not refusals (429), not a draining origin (503), not internal faults
 * (storage) that the next try may not meet.
 */
export function isImageFailure(err: unknown): err is RegistryError {
  if (!(err instanceof RegistryError)) return false;
  if (err.status === 429 || err.status === 503) return false;
  if (err.status < 500) return true;
  const detail = err.detail as { nix?: unknown } | null;
  return typeof detail?.nix === 'string';
}

export class FailureMemory {
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly failures: Lru<string, { error: RegistryError; until: number }>;
  readonly stats = { remembered: 0, recalled: 0 };

  constructor(options: FailureMemoryOptions) {
    this.ttlMs = options.ttlSeconds * 1000;
    this.now = options.now ?? (() => Date.now());
    this.failures = new Lru(options.capacity ?? 4096);
  }

  /** The remembered failure for `key`, with the seconds it still holds as its max-age; null if none. */
  recall(key: string): RegistryError | null {
    const entry = this.failures.get(key);
    if (entry === undefined) return null;
    const left = entry.until - this.now();
    if (left <= 0) {
      this.failures.delete(key);
      return null;
    }
    this.stats.recalled++;
    return entry.error.withHeaders(cacheControl(Math.ceil(left / 1000)));
  }

  /**
   * Runs `work` unless a failure for `key` is remembered (then throws it). An
   * image failure of `work` is remembered and thrown with its max-age.
   */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const remembered = this.recall(key);
    if (remembered !== null) throw remembered;
    try {
      return await work();
    } catch (err) {
      if (!isImageFailure(err)) throw err;
      const marked = err.withHeaders(cacheControl(Math.floor(this.ttlMs / 1000)));
      if (this.ttlMs > 0 && this.failures.get(key) === undefined) {
        this.failures.set(key, { error: err, until: this.now() + this.ttlMs });
        this.stats.remembered++;
      }
      throw marked;
    }
  }
}

function cacheControl(seconds: number): Record<string, string> {
  return { 'Cache-Control': `public, max-age=${seconds}` };
}

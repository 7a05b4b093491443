// Where the edge keeps manifests: isolate memory in front of the Cache API.
//
// A Cache API hit runs at about a third of the rate of an answer from
// memory (measured: docs/edge.md), so hot manifests are answered from two
// bounded maps: digest → manifest (immutable, kept while memory allows) and
// tag → digest (with the time it was fetched; fresh for MANIFEST_TAG_TTL).
// The Cache API is shared by the isolates of a data centre and survives an
// isolate; it holds whole manifests under both kinds of key.
//
// Keys: a digest names the same bytes whatever the client accepts (the
// origin answers a digest without negotiating), so digest keys carry no
// format; a tag key carries the negotiated formats (Docker schema2 or OCI,
// and the index format when the client reads one: an index answer is never
// served to a client that asked for a plain manifest, nor the other way round)
// and the requested image (`shell/hello` = `hello/shell`; `hello` apart from
// `amd64/hello`, since it may be an index), because that is what the origin's
// answer depends on.
//
// A tag's entry is kept past its freshness (MANIFEST_STALE_TTL) so that it can
// stand in when the origin fails; freshness is judged when read, from the
// time it was stored, so changing the TTL takes effect at once.
//
// Behind both, optionally, the global tier (edge/global-tier.ts, Workers KV):
// read when neither local layer has a fresh copy, written with every answer
// of the origin. A copy found there is copied into the local layers.
//
// No Workers-only API here (the Cache API comes in as `ResponseCache`): the
// Node unit tests import it.
import { keyString, type ManifestKey } from './manifest-key.ts';

export { keyString, type ManifestKey };
import type { Digest } from '../shared/digest.ts';
import type { ManifestFormat } from '../shared/media-types.ts';
import { Lru } from '../shared/lru.ts';
import type { GlobalTier } from './global-tier.ts';

export interface ManifestEntry {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Uint8Array;
}

export interface CachedManifest {
  readonly entry: ManifestEntry;
  /** When the origin answered (ms); null for a digest, which never goes stale. */
  readonly storedAt: number | null;
  readonly source: 'memory' | 'cache' | 'global';
}

/** A remembered "unknown package" answer of the origin, replayed as it was. */
export interface RememberedFailure {
  readonly status: number;
  readonly contentType: string;
  readonly body: Uint8Array;
  readonly until: number;
}

/** The part of the Workers Cache API this module uses; tests pass a Map-backed fake. */
export interface ResponseCache {
  match(key: string): Promise<Response | undefined>;
  put(key: string, response: Response): Promise<void>;
  delete(key: string): Promise<boolean>;
}

export interface ManifestCacheOptions {
  tagTtlSeconds: number;
  staleTtlSeconds: number;
  digestTtlSeconds: number;
  negativeTtlSeconds: number;
  /** Null where there is no Cache API (tests of the memory layer). */
  cache: () => Promise<ResponseCache | null>;
  /** Bytes of manifests kept in isolate memory. */
  memoryBytes?: number;
  /** The store every data centre shares; null or absent: none (memory and the Cache API only). */
  global?: GlobalTier | null;
}

/** Work that may finish after the response (ctx.waitUntil). */
export type Background = (promise: Promise<unknown>) => void;


/**
 * The Cache API key: under the Worker's own hostname, as Cloudflare advises
 * (another hostname costs DNS lookups), at a path no client request uses.
 */
export function cacheUrl(origin: string, key: ManifestKey): string {
  return `${origin}/.nixery-edge/manifests/${keyString(key)}`;
}

const STORED_AT = 'X-Nixery-Edge-Stored-At';
const DIGEST = 'Docker-Content-Digest';

export class ManifestCache {
  private readonly options: ManifestCacheOptions;
  private readonly digests: Lru<Digest, ManifestEntry>;
  private readonly tags = new Lru<string, { digest: Digest; storedAt: number }>(10_000);
  private readonly failures = new Lru<string, RememberedFailure>(1_000);
  /** Digests this isolate knows the global tier holds: their immutable record is not written again. */
  private readonly globalDigests = new Lru<Digest, true>(10_000);
  /**
   * Digests the origin said it can no longer serve (`forget`) → until when
   * to ignore copies of them: other data centres' KV caches, and tag copies
   * this isolate cannot find by digest, may still hold them.
   */
  private readonly gone = new Lru<Digest, number>(10_000);

  constructor(options: ManifestCacheOptions) {
    this.options = options;
    this.digests = new Lru(10_000, { maxWeight: options.memoryBytes ?? 32 * 1024 * 1024, weigh: (entry) => entry.bytes.byteLength + 200 });
  }

  isFresh(cached: CachedManifest, now: number): boolean {
    return cached.storedAt === null || now - cached.storedAt < this.options.tagTtlSeconds * 1000;
  }

  /**
   * The freshest copy the edge holds, fresh or stale, or null. A copy found
   * in the global tier is copied into the local layers (the Cache API write
   * goes to `background`).
   */
  async lookup(key: ManifestKey, origin: string, now: number, background?: Background): Promise<CachedManifest | null> {
    if (key.kind === 'digest' && this.isGone(key.digest, now)) return null;
    const memory = this.fromMemory(key);
    if (memory !== null && this.isFresh(memory, now)) return memory;
    // Stale or absent here; another isolate may have stored a fresher copy.
    let best = memory;
    const shared = await this.fromCache(key, origin);
    if (shared !== null && !this.isGone(shared.entry.digest, now) && (best === null || (shared.storedAt ?? 0) > (best.storedAt ?? 0))) {
      this.remember(key, shared.entry, shared.storedAt);
      best = shared;
    }
    if (best !== null && this.isFresh(best, now)) return best;
    const global = this.options.global;
    if (global === undefined || global === null) return best;
    // Another data centre may have asked the origin since.
    const record = await global.read(key);
    if (record === null || this.isGone(record.entry.digest, now) || (best !== null && (record.storedAt ?? 0) <= (best.storedAt ?? 0))) return best;
    this.remember(key, record.entry, record.storedAt);
    this.globalDigests.set(record.entry.digest, true);
    const writes = this.localWrites(key, record.entry, origin, record.storedAt);
    if (background !== undefined) background(writes);
    return { entry: record.entry, storedAt: record.storedAt, source: 'global' };
  }

  /**
   * Stores an answer of the origin in every layer; the returned promise is
   * the Cache API and global tier writes (for ctx.waitUntil).
   */
  store(key: ManifestKey, entry: ManifestEntry, origin: string, now: number): Promise<void> {
    const storedAt = key.kind === 'tag' ? now : null;
    // The origin served it: whatever it said before, the digest is back (a rebuild makes the same bytes).
    this.gone.delete(entry.digest);
    this.remember(key, entry, storedAt);
    this.failures.delete(keyString(key));
    return Promise.all([this.localWrites(key, entry, origin, storedAt), this.globalWrites(key, entry, storedAt)]).then(() => undefined);
  }

  private localWrites(key: ManifestKey, entry: ManifestEntry, origin: string, storedAt: number | null): Promise<void> {
    const writes = [this.write(cacheUrl(origin, { kind: 'digest', digest: entry.digest }), entry, null, this.options.digestTtlSeconds)];
    if (key.kind === 'tag' && storedAt !== null) writes.push(this.write(cacheUrl(origin, key), entry, storedAt, this.tagLifetime()));
    return Promise.all(writes).then(() => undefined);
  }

  private globalWrites(key: ManifestKey, entry: ManifestEntry, storedAt: number | null): Promise<void> {
    const global = this.options.global;
    if (global === undefined || global === null) return Promise.resolve();
    const writes: Promise<void>[] = [];
    // KV writes are billed and limited to one a second per key: an immutable record is written once per isolate.
    if (this.globalDigests.get(entry.digest) === undefined) {
      this.globalDigests.set(entry.digest, true);
      writes.push(global.write({ kind: 'digest', digest: entry.digest }, entry, null, this.options.digestTtlSeconds));
    }
    if (key.kind === 'tag' && storedAt !== null) writes.push(global.write(key, entry, storedAt, this.tagLifetime()));
    return Promise.all(writes).then(() => undefined);
  }

  /**
   * Drops a digest the origin can no longer serve from every tier this
   * isolate can reach: memory (the digest, and the tags naming it), the
   * Cache API of this data centre, and the global tier; and ignores copies of
   * it for `goneForSeconds` (KV's read cache of a digest: a day), so the next
   * request for it goes to the origin. Tag copies in the Cache API and KV are
   * keyed by tag, not found from here: they are ignored by the same mark.
   */
  async forget(digest: Digest, origin: string, now: number, goneForSeconds: number): Promise<void> {
    this.gone.set(digest, now + goneForSeconds * 1000);
    this.digests.delete(digest);
    this.tags.deleteWhere((_, tag) => tag.digest === digest);
    this.globalDigests.delete(digest);
    const key: ManifestKey = { kind: 'digest', digest };
    const global = this.options.global;
    await Promise.all([this.deleteLocal(cacheUrl(origin, key)), global !== undefined && global !== null ? global.delete(key) : undefined]);
  }

  private isGone(digest: Digest, now: number): boolean {
    const until = this.gone.get(digest);
    if (until === undefined) return false;
    if (until > now) return true;
    this.gone.delete(digest);
    return false;
  }

  private async deleteLocal(url: string): Promise<void> {
    const cache = await this.options.cache();
    if (cache === null) return;
    try {
      await cache.delete(url);
    } catch (err) {
      // Ignored by the gone mark in this isolate; other isolates drop it at their own report.
      console.error('nixery-edge: cache delete failed', String(err));
    }
  }

  private tagLifetime(): number {
    return this.options.tagTtlSeconds + this.options.staleTtlSeconds;
  }

  /**
   * Remembers an error answer for `seconds` (what the origin said with
   * max-age), or NEGATIVE_TTL when the origin said nothing; NEGATIVE_TTL=0
   * turns all of it off.
   */
  rememberFailure(key: ManifestKey, failure: Omit<RememberedFailure, 'until'>, now: number, seconds?: number): void {
    const ttl = seconds ?? this.options.negativeTtlSeconds;
    if (this.options.negativeTtlSeconds === 0 || ttl <= 0) return;
    this.failures.set(keyString(key), { ...failure, until: now + ttl * 1000 });
  }

  failure(key: ManifestKey, now: number): RememberedFailure | null {
    const name = keyString(key);
    const failure = this.failures.get(name);
    if (failure === undefined) return null;
    if (failure.until <= now) {
      this.failures.delete(name);
      return null;
    }
    return failure;
  }

  private remember(key: ManifestKey, entry: ManifestEntry, storedAt: number | null): void {
    this.digests.set(entry.digest, entry);
    if (key.kind === 'tag' && storedAt !== null) this.tags.set(keyString(key), { digest: entry.digest, storedAt });
  }

  private fromMemory(key: ManifestKey): CachedManifest | null {
    if (key.kind === 'digest') {
      const entry = this.digests.get(key.digest);
      return entry === undefined ? null : { entry, storedAt: null, source: 'memory' };
    }
    const tag = this.tags.get(keyString(key));
    if (tag === undefined) return null;
    const entry = this.digests.get(tag.digest);
    return entry === undefined ? null : { entry, storedAt: tag.storedAt, source: 'memory' };
  }

  private async fromCache(key: ManifestKey, origin: string): Promise<CachedManifest | null> {
    const cache = await this.options.cache();
    if (cache === null) return null;
    let response: Response | undefined;
    try {
      response = await cache.match(cacheUrl(origin, key));
    } catch (err) {
      console.error('nixery-edge: cache read failed', String(err));
      return null;
    }
    if (response === undefined) return null;
    const digest = response.headers.get(DIGEST) as Digest | null;
    const mediaType = response.headers.get('Content-Type');
    const storedAtHeader = response.headers.get(STORED_AT);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (digest === null || mediaType === null) return null;
    if (key.kind === 'digest') return { entry: { digest, mediaType, bytes }, storedAt: null, source: 'cache' };
    const storedAt = Number(storedAtHeader);
    // An entry without a readable time cannot be judged fresh; treat it as stored at the epoch (stale).
    return { entry: { digest, mediaType, bytes }, storedAt: Number.isFinite(storedAt) ? storedAt : 0, source: 'cache' };
  }

  private async write(url: string, entry: ManifestEntry, storedAt: number | null, lifetimeSeconds: number): Promise<void> {
    if (lifetimeSeconds <= 0) return;
    const cache = await this.options.cache();
    if (cache === null) return;
    const headers = new Headers({
      'Content-Type': entry.mediaType,
      [DIGEST]: entry.digest,
      'Cache-Control': `public, max-age=${lifetimeSeconds}`,
    });
    if (storedAt !== null) headers.set(STORED_AT, String(storedAt));
    try {
      await cache.put(url, new Response(entry.bytes, { headers }));
    } catch (err) {
      // A failed write costs a later miss, never a wrong answer.
      console.error('nixery-edge: cache write failed', String(err));
    }
  }
}

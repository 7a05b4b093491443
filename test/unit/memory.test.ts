// The in-memory pieces (shared by the edge and the origin): the bounded LRU and single flight;
// and the edge's manifest cache's two layers (memory in front of a Cache API stand-in).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lru } from '../../shared/lru.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import { withDeadline, withTimeout } from '../../shared/deadline.ts';
import { ManifestCache, cacheUrl, type ManifestEntry, type ManifestKey, type ResponseCache } from '../../edge/manifest-cache.ts';
import { sha256Digest } from '../../shared/digest.ts';
import { decodeRecord, globalKey, GlobalTier, type GlobalStore } from '../../edge/global-tier.ts';
import { MEDIA } from '../../shared/media-types.ts';

test('the LRU evicts the least recently used entry past its count or its weight', () => {
  const lru = new Lru<string, string>(2);
  lru.set('a', '1');
  lru.set('b', '2');
  lru.get('a');
  lru.set('c', '3');
  assert.equal(lru.get('b'), undefined);
  assert.equal(lru.get('a'), '1');
  const weighed = new Lru<string, string>(100, { maxWeight: 5, weigh: (v) => v.length });
  weighed.set('x', 'abc');
  weighed.set('y', 'de');
  weighed.set('z', 'f');
  assert.equal(weighed.get('x'), undefined);
  assert.equal(weighed.weight, 3);
  weighed.set('huge', 'abcdefgh');
  assert.equal(weighed.get('huge'), undefined, 'an entry over the whole budget is not kept');
  assert.equal(weighed.get('y'), 'de');
});

test('single flight runs concurrent work for one key once, and again once it settled', async () => {
  const flights = new SingleFlight<number>();
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const work = async () => {
    runs++;
    await gate;
    return runs;
  };
  const a = flights.run('k', work);
  const b = flights.run('k', work);
  const c = flights.run('other', async () => 7);
  assert.equal(a.leader, true);
  assert.equal(b.leader, false);
  assert.equal(c.leader, true);
  release();
  assert.deepEqual(await Promise.all([a.result, b.result, c.result]), [1, 1, 7]);
  assert.equal(flights.size, 0);
  const d = flights.run('k', work);
  assert.equal(d.leader, true);
  assert.equal(await d.result, 2);
});

test('a failed flight is shared as a failure and then forgotten', async () => {
  const flights = new SingleFlight<number>();
  const a = flights.run('k', async () => {
    throw new Error('boom');
  });
  const b = flights.run('k', async () => 1);
  await assert.rejects(a.result, /boom/);
  await assert.rejects(b.result, /boom/);
  assert.equal(await flights.run('k', async () => 2).result, 2);
});

test('a waiter with a deadline gets the fallback if the work is slower', async () => {
  const never = new Promise<string>(() => {});
  assert.equal(await withDeadline(never, 10, () => 'late'), 'late');
  assert.equal(await withDeadline(Promise.resolve('now'), 1000, () => 'late'), 'now');
  await assert.rejects(withTimeout(never, 10, 'too slow'), /too slow/);
  assert.equal(await withTimeout(Promise.resolve('now'), 1000, 'too slow'), 'now');
});

/** A Map-backed stand-in for the Workers Cache API that honours max-age like it. */
class FakeCache implements ResponseCache {
  readonly entries = new Map<string, { body: Uint8Array; headers: Headers }>();
  async match(key: string): Promise<Response | undefined> {
    const hit = this.entries.get(key);
    return hit === undefined ? undefined : new Response(hit.body.slice(), { headers: hit.headers });
  }
  async put(key: string, response: Response): Promise<void> {
    this.entries.set(key, { body: new Uint8Array(await response.arrayBuffer()), headers: new Headers(response.headers) });
  }
  async delete(key: string): Promise<boolean> {
    return this.entries.delete(key);
  }
}

async function entry(text: string): Promise<ManifestEntry> {
  const bytes = new TextEncoder().encode(text);
  return { digest: await sha256Digest(bytes), mediaType: MEDIA.dockerManifest, bytes };
}

function cacheWith(shared: FakeCache, tagTtlSeconds = 60): ManifestCache {
  return new ManifestCache({ tagTtlSeconds, staleTtlSeconds: 600, digestTtlSeconds: 3600, negativeTtlSeconds: 10, cache: async () => shared });
}

const ORIGIN = 'https://registry.example';

test('a stored tag is fresh in memory, then stale after its TTL, and its digest is served on its own', async () => {
  const shared = new FakeCache();
  const cache = cacheWith(shared);
  const tag: ManifestKey = { kind: 'tag', format: 'docker', image: 'amd64/hello', tag: 'latest' };
  const manifest = await entry('{"v":1}');
  await cache.store(tag, manifest, ORIGIN, 1_000_000);
  const fresh = await cache.lookup(tag, ORIGIN, 1_030_000);
  assert.equal(fresh?.source, 'memory');
  assert.equal(cache.isFresh(fresh!, 1_030_000), true);
  const stale = await cache.lookup(tag, ORIGIN, 1_061_000);
  assert.ok(stale !== null);
  assert.equal(cache.isFresh(stale, 1_061_000), false);
  const byDigest = await cache.lookup({ kind: 'digest', digest: manifest.digest }, ORIGIN, 9_999_999_999);
  assert.equal(byDigest?.source, 'memory');
  assert.equal(cache.isFresh(byDigest!, 9_999_999_999), true);
});

test('the Cache API copy carries both keys, lifetimes from the configuration, and fills a new isolate’s memory', async () => {
  const shared = new FakeCache();
  const tag: ManifestKey = { kind: 'tag', format: 'oci', image: 'amd64/hello', tag: 'latest' };
  const manifest = await entry('{"v":2}');
  await cacheWith(shared).store(tag, manifest, ORIGIN, 5_000);
  assert.deepEqual([...shared.entries.keys()].sort(), [cacheUrl(ORIGIN, { kind: 'digest', digest: manifest.digest }), cacheUrl(ORIGIN, tag)].sort());
  assert.equal(shared.entries.get(cacheUrl(ORIGIN, tag))!.headers.get('cache-control'), 'public, max-age=660');
  assert.equal(shared.entries.get(cacheUrl(ORIGIN, { kind: 'digest', digest: manifest.digest }))!.headers.get('cache-control'), 'public, max-age=3600');

  const other = cacheWith(shared);
  const fromShared = await other.lookup(tag, ORIGIN, 6_000);
  assert.equal(fromShared?.source, 'cache');
  assert.equal(fromShared?.storedAt, 5_000);
  assert.deepEqual(fromShared?.entry, manifest);
  assert.equal((await other.lookup(tag, ORIGIN, 6_000))?.source, 'memory');
});

test('a stale memory copy gives way to a fresher one another isolate stored', async () => {
  const shared = new FakeCache();
  const tag: ManifestKey = { kind: 'tag', format: 'docker', image: 'amd64/jq', tag: 'latest' };
  const mine = cacheWith(shared, 10);
  await mine.store(tag, await entry('{"old":1}'), ORIGIN, 0);
  const theirs = cacheWith(shared, 10);
  const newer = await entry('{"new":1}');
  await theirs.store(tag, newer, ORIGIN, 20_000);
  const seen = await mine.lookup(tag, ORIGIN, 25_000);
  assert.equal(seen?.entry.digest, newer.digest);
  assert.equal(mine.isFresh(seen!, 25_000), true);
});

test('tag and format are both part of a tag’s key; a digest’s key has neither', () => {
  const docker = cacheUrl(ORIGIN, { kind: 'tag', format: 'docker', image: 'amd64/hello', tag: 'latest' });
  const oci = cacheUrl(ORIGIN, { kind: 'tag', format: 'oci', image: 'amd64/hello', tag: 'latest' });
  assert.notEqual(docker, oci);
  assert.equal(cacheUrl(ORIGIN, { kind: 'digest', digest: `sha256:${'a'.repeat(64)}` }), `${ORIGIN}/.nixery-edge/manifests/digest/sha256:${'a'.repeat(64)}`);
});

test('remembered failures expire, and a success forgets them', async () => {
  const cache = cacheWith(new FakeCache());
  const tag: ManifestKey = { kind: 'tag', format: 'docker', image: 'amd64/nope', tag: 'latest' };
  cache.rememberFailure(tag, { status: 404, contentType: 'application/json', body: new Uint8Array() }, 0);
  assert.equal(cache.failure(tag, 9_999)?.status, 404);
  assert.equal(cache.failure(tag, 10_000), null);
  cache.rememberFailure(tag, { status: 404, contentType: 'application/json', body: new Uint8Array() }, 20_000);
  await cache.store(tag, await entry('{}'), ORIGIN, 20_001);
  assert.equal(cache.failure(tag, 20_002), null);
});

/** A Map-backed stand-in for a Workers KV namespace (the real one runs in test/unit/edge-worker.test.ts, in workerd). */
class FakeKv implements GlobalStore {
  readonly entries = new Map<string, { value: Uint8Array; metadata: unknown; ttl: number | undefined }>();
  writes = 0;
  async getWithMetadata<M>(key: string): Promise<{ value: ArrayBuffer | null; metadata: M | null }> {
    const hit = this.entries.get(key);
    return hit === undefined ? { value: null, metadata: null } : { value: hit.value.slice().buffer, metadata: hit.metadata as M };
  }
  async put(key: string, value: ArrayBuffer | ArrayBufferView | string, options?: { expirationTtl?: number; metadata?: unknown }): Promise<void> {
    this.writes++;
    const bytes = typeof value === 'string' ? new TextEncoder().encode(value) : new Uint8Array(ArrayBuffer.isView(value) ? value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength) : value);
    this.entries.set(key, { value: bytes, metadata: options?.metadata ?? null, ttl: options?.expirationTtl });
  }
  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }
}

function regionWith(kv: FakeKv, tagTtlSeconds = 60): ManifestCache {
  return new ManifestCache({ tagTtlSeconds, staleTtlSeconds: 600, digestTtlSeconds: 3600, negativeTtlSeconds: 10, cache: async () => new FakeCache(), global: new GlobalTier(kv) });
}

test('the global tier answers a region that never saw a key, judges a tag by the time the origin answered, and writes a digest once', async () => {
  const kv = new FakeKv();
  const here = regionWith(kv);
  const there = regionWith(kv);
  const tag: ManifestKey = { kind: 'tag', format: 'docker', image: 'amd64/hello', tag: 'latest' };
  const v1 = await entry('{"v":1}');
  await here.store(tag, v1, ORIGIN, 1_000);
  assert.equal(kv.writes, 2, 'the digest and the tag');
  assert.equal(kv.entries.get(globalKey(tag))!.ttl, 660, 'kept for the TTL and the stale TTL');
  const background: Promise<unknown>[] = [];
  const found = await there.lookup(tag, ORIGIN, 30_000, (p) => background.push(p));
  assert.equal(found?.source, 'global');
  assert.equal(found?.storedAt, 1_000, 'the origin’s time, not the time it was read');
  assert.equal(there.isFresh(found!, 30_000), true);
  assert.equal(there.isFresh(found!, 61_000), false);
  assert.equal(background.length, 1, 'copied into the local Cache API in the background');
  assert.equal((await there.lookup(tag, ORIGIN, 30_000))?.source, 'memory');
  const byDigest = await regionWith(kv).lookup({ kind: 'digest', digest: v1.digest }, ORIGIN, 0);
  assert.equal(byDigest?.source, 'global');
  assert.deepEqual(byDigest?.entry.bytes, v1.bytes);
  // A revalidation with the same digest writes the tag again, not the immutable digest record.
  await here.store(tag, v1, ORIGIN, 70_000);
  assert.equal(kv.writes, 3);
});

test('a global record older than the local copy is not taken, and one whose bytes do not match its digest is ignored', async () => {
  const kv = new FakeKv();
  const region = regionWith(kv);
  const tag: ManifestKey = { kind: 'tag', format: 'docker', image: 'amd64/hello', tag: 'latest' };
  await regionWith(kv).store(tag, await entry('{"v":1}'), ORIGIN, 1_000);
  await region.store(tag, await entry('{"v":2}'), ORIGIN, 2_000);
  const stale = await region.lookup(tag, ORIGIN, 500_000);
  assert.equal(stale?.source, 'memory');
  assert.equal(new TextDecoder().decode(stale!.entry.bytes), '{"v":2}');

  const other: ManifestKey = { kind: 'tag', format: 'docker', image: 'amd64/other', tag: 'latest' };
  await regionWith(kv).store(other, await entry('{"other":1}'), ORIGIN, 1_000);
  kv.entries.get(globalKey(other))!.value = new TextEncoder().encode('{"other":"tampered"}');
  assert.equal(await regionWith(kv).lookup(other, ORIGIN, 2_000), null);
});

test('records of another layout, or a digest key holding another digest, are not read', () => {
  const key: ManifestKey = { kind: 'digest', digest: `sha256:${'a'.repeat(64)}` };
  const bytes = new ArrayBuffer(2);
  assert.equal(decodeRecord(key, bytes, { v: 2, digest: key.digest, mediaType: 'x', storedAt: null } as never), null);
  assert.equal(decodeRecord(key, bytes, { v: 1, digest: `sha256:${'b'.repeat(64)}`, mediaType: 'x', storedAt: null }), null);
  const tag: ManifestKey = { kind: 'tag', format: 'oci', image: 'amd64/hello', tag: 'latest' };
  assert.equal(decodeRecord(tag, bytes, { v: 1, digest: key.digest, mediaType: 'x', storedAt: null })?.storedAt, 0, 'a tag without a time is stale');
});

test('a forgotten digest is gone from memory, the Cache API and the global tier, tag copies naming it are ignored, and an origin answer brings it back', async () => {
  const kv = new FakeKv();
  const shared = new FakeCache();
  const region = new ManifestCache({ tagTtlSeconds: 60, staleTtlSeconds: 600, digestTtlSeconds: 3600, negativeTtlSeconds: 10, cache: async () => shared, global: new GlobalTier(kv) });
  const tag: ManifestKey = { kind: 'tag', format: 'docker', image: 'amd64/hello', tag: 'latest' };
  const dead = await entry('{"dead":1}');
  const byDigest: ManifestKey = { kind: 'digest', digest: dead.digest };
  await region.store(tag, dead, ORIGIN, 1_000);
  assert.equal((await region.lookup(byDigest, ORIGIN, 2_000))?.source, 'memory');

  await region.forget(dead.digest, ORIGIN, 2_000, 86_400);
  assert.equal(shared.entries.has(cacheUrl(ORIGIN, byDigest)), false, 'deleted from the Cache API');
  assert.equal(kv.entries.has(globalKey(byDigest)), false, 'deleted from the global tier');
  assert.equal(shared.entries.has(cacheUrl(ORIGIN, tag)), true, 'the tag’s Cache API copy cannot be found by digest');
  assert.equal(await region.lookup(byDigest, ORIGIN, 3_000), null);
  assert.equal(await region.lookup(tag, ORIGIN, 3_000), null, 'the tag’s copies in the Cache API and KV name a gone digest: ignored');
  // Another data centre's KV cache may still hand the record out; this isolate does not take it.
  await new GlobalTier(kv).write(byDigest, dead, null, 3600);
  assert.equal(await region.lookup(byDigest, ORIGIN, 4_000), null);
  // Past the mark, copies count again (KV's cached reads have expired by then).
  assert.equal((await region.lookup(byDigest, ORIGIN, 2_000 + 86_400_000))?.source, 'global');

  await region.forget(dead.digest, ORIGIN, 5_000, 86_400);
  await region.store(byDigest, dead, ORIGIN, 6_000);
  assert.equal((await region.lookup(byDigest, ORIGIN, 7_000))?.source, 'memory', 'the origin served it again: no longer gone');
});

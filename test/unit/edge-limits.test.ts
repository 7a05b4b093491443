// The edge's side of a bounded registry: rate limiting of requests that
// reach the origin, and reading the origin's remembered failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryError } from '../../shared/errors.ts';
import { edgeClient, limitOriginRequest, type OriginRateLimiter } from '../../edge/rate-limit.ts';
import { isImageFailure, rememberFor } from '../../edge/remembered-errors.ts';
import { classify } from '../../edge/origin.ts';
import { ManifestCache } from '../../edge/manifest-cache.ts';

/** A stand-in for the binding with a fixed budget per key (the real one runs in the edge tests). */
function budget(limit: number): OriginRateLimiter & { keys: string[] } {
  const used = new Map<string, number>();
  const keys: string[] = [];
  return {
    keys,
    async limit({ key }) {
      keys.push(key);
      used.set(key, (used.get(key) ?? 0) + 1);
      return { success: used.get(key)! <= limit };
    },
  };
}

test('a client past its budget gets 429 TOOMANYREQUESTS with Retry-After of the period; others do not', async () => {
  const limiter = budget(2);
  const policy = { limiter, periodSeconds: 60 };
  assert.equal(await limitOriginRequest(policy, '203.0.113.1'), null);
  assert.equal(await limitOriginRequest(policy, '203.0.113.1'), null);
  const refused = await limitOriginRequest(policy, '203.0.113.1');
  assert.ok(refused instanceof RegistryError);
  assert.equal(refused.status, 429);
  assert.equal(refused.code, 'TOOMANYREQUESTS');
  assert.equal(refused.headers['Retry-After'], '60');
  assert.equal(await limitOriginRequest(policy, '203.0.113.2'), null);
  assert.deepEqual(limiter.keys.slice(-1), ['origin:203.0.113.2']);
});

test('no binding, or a failing one, limits nothing', async () => {
  assert.equal(await limitOriginRequest({ limiter: null, periodSeconds: 60 }, 'x'), null);
  const broken: OriginRateLimiter = { limit: () => Promise.reject(new Error('binding down')) };
  const errors = console.error;
  console.error = () => undefined;
  try {
    assert.equal(await limitOriginRequest({ limiter: broken, periodSeconds: 60 }, 'x'), null);
  } finally {
    console.error = errors;
  }
});

test('the client is CF-Connecting-IP, IPv6 by its /64; a forged value is no key', () => {
  const request = (ip?: string) => new Request('https://r.example/v2/', ip === undefined ? {} : { headers: { 'CF-Connecting-IP': ip } });
  assert.equal(edgeClient(request('198.51.100.9')), '198.51.100.9');
  assert.equal(edgeClient(request('2001:db8:a:b:1:2:3:4')), '2001:db8:a:b::/64');
  assert.equal(edgeClient(request('not an address')), null);
  assert.equal(edgeClient(request()), null);
});

test('an origin error marked with max-age is the image’s own: passed on, remembered that long', () => {
  const answer = (status: number, cacheControl?: string) => ({
    status,
    headers: new Headers({ 'Content-Type': 'application/json', ...(cacheControl ? { 'Cache-Control': cacheControl } : {}) }),
    body: new TextEncoder().encode('{"errors":[{"code":"UNKNOWN","message":"nix build failed","detail":null}]}'),
  });
  assert.equal(rememberFor(answer(500, 'public, max-age=30')), 30);
  assert.equal(rememberFor(answer(500, 'public, max-age=0')), 0);
  assert.equal(rememberFor(answer(500, 'public, max-age=999999')), 3600);
  assert.equal(rememberFor(answer(500)), null);
  // Refusals and a draining origin are its state, whatever they say.
  assert.equal(rememberFor(answer(429, 'max-age=30')), null);
  assert.equal(rememberFor(answer(503, 'max-age=30')), null);
  assert.equal(rememberFor(answer(200, 'max-age=30')), null);
  assert.equal(classify(answer(500, 'public, max-age=30'))?.kind, 'refused');
  assert.equal(classify(answer(500))?.kind, 'failed');
  // A limit (403 DENIED with max-age) is the client's answer; 403 without is the origin refusing the edge.
  assert.equal(classify(answer(403, 'public, max-age=30'))?.kind, 'refused');
  assert.equal(classify(answer(403))?.kind, 'failed');
  assert.equal(isImageFailure(answer(404, 'public, max-age=5')), true);
});

test('the negative cache keeps a failure for the origin’s seconds, else NEGATIVE_TTL; NEGATIVE_TTL=0 keeps none', () => {
  const key = { kind: 'tag' as const, format: 'oci' as const, image: 'brokenPackage', tag: 'latest' };
  const failure = { status: 500, contentType: 'application/json', body: new Uint8Array() };
  const cache = new ManifestCache({ tagTtlSeconds: 60, staleTtlSeconds: 0, digestTtlSeconds: 60, negativeTtlSeconds: 10, cache: async () => null });
  cache.rememberFailure(key, failure, 0, 30);
  assert.notEqual(cache.failure(key, 29_000), null);
  assert.equal(cache.failure(key, 30_000), null);
  cache.rememberFailure(key, failure, 0);
  assert.notEqual(cache.failure(key, 9_000), null);
  assert.equal(cache.failure(key, 10_000), null);
  cache.rememberFailure(key, failure, 0, 0);
  assert.equal(cache.failure(key, 1), null);
  const off = new ManifestCache({ tagTtlSeconds: 60, staleTtlSeconds: 0, digestTtlSeconds: 60, negativeTtlSeconds: 0, cache: async () => null });
  off.rememberFailure(key, failure, 0, 30);
  assert.equal(off.failure(key, 1), null);
});

// Protocol edges the OCI distribution-spec conformance suite checks, asked of
// the origin and of the edge in front of it: both must answer alike.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { startEdge, type RunningTestEdge } from '../support/edge.ts';
import { ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';

const SECRET = 'protocol-test-secret';
let origin: RunningOrigin;
let edge: RunningTestEdge;
/** The two sides, each as a client reaches it. */
let sides: { name: string; get: (path: string, init?: RequestInit) => Promise<Response> }[];

before(async () => {
  origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
  edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
  sides = [
    { name: 'origin', get: (path, init) => fetch(`${origin.url}${path}`, { ...init, headers: { [ORIGIN_SECRET_HEADER]: SECRET, ...init?.headers } }) },
    { name: 'edge', get: (path, init) => fetch(`${edge.url}${path}`, init) },
  ];
});
after(async () => {
  await edge?.stop();
  await origin?.stop();
});

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { errors: { code: string }[] }).errors[0]!.code;
}

test('the tag list honours n=0 (an empty list), n and last, with no Link when nothing follows', async () => {
  for (const side of sides) {
    const all = await side.get('/v2/hello/tags/list');
    assert.equal(all.status, 200, side.name);
    assert.deepEqual(await all.json(), { name: 'hello', tags: ['latest'] }, side.name);
    assert.equal(all.headers.get('link'), null, side.name);

    const none = await side.get('/v2/hello/tags/list?n=0');
    assert.deepEqual(await none.json(), { name: 'hello', tags: [] }, side.name);
    const after = await side.get('/v2/hello/tags/list?last=latest');
    assert.deepEqual(await after.json(), { name: 'hello', tags: [] }, side.name);
    const bad = await side.get('/v2/hello/tags/list?n=-1');
    assert.equal(bad.status, 400, side.name);
    assert.equal(await errorCode(bad), 'PAGINATION_NUMBER_INVALID', side.name);
  }
});

test('referrers: an empty OCI index for a well-formed digest (never 404), 400 for a malformed one', async () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  for (const side of sides) {
    const res = await side.get(`/v2/hello/referrers/${digest}`);
    assert.equal(res.status, 200, side.name);
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json', side.name);
    assert.deepEqual(await res.json(), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }, side.name);
    const filtered = await side.get(`/v2/hello/referrers/${digest}?artifactType=application%2Fspdx%2Bjson`);
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType', side.name);
    await filtered.arrayBuffer();
    const head = await side.get(`/v2/hello/referrers/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200, side.name);

    const malformed = await side.get('/v2/hello/referrers/sha256:nothex');
    assert.equal(malformed.status, 400, side.name);
    assert.equal(await errorCode(malformed), 'DIGEST_INVALID', side.name);
  }
});

test('a tag the local package set cannot have is 404 MANIFEST_UNKNOWN on both sides', async () => {
  for (const side of sides) {
    const res = await side.get('/v2/hello/manifests/missing-7336nswwaxneuubcd4fs');
    assert.equal(res.status, 404, side.name);
    assert.equal(await errorCode(res), 'MANIFEST_UNKNOWN', side.name);
  }
});

test('a malformed percent-encoding is refused alike: 400 NAME_INVALID, no server error', async () => {
  for (const side of sides) {
    for (const path of ['/v2/hello/manifests/%', '/v2/hello/blobs/%zz', '/v2/%/tags/list']) {
      const res = await side.get(path);
      assert.equal(res.status, 400, `${side.name} ${path}`);
      assert.equal(await errorCode(res), 'NAME_INVALID', `${side.name} ${path}`);
    }
  }
  assert.ok(!origin.logs.some((l) => l.level === 50), 'the origin logged no error');
});

// Last use of images, end to end: the real Worker (workerd via miniflare)
// in front of a real origin building the bundled package set. A manifest
// answered from the edge's own tiers never reaches the origin, so the edge
// reports it; the origin records the image's use in storage, and answers
// which digests it can no longer serve, which the edge then drops.
// Reports are seen in the origin's request log (POST /edge/hits).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { startEdge, originRequests, type RunningTestEdge } from '../support/edge.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';
import { ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';
import { HIT_REPORT_LIMITS, HIT_REPORT_PATH } from '../../shared/hit-report.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { ImageRecord } from '../../origin/image/image-store.ts';

const SECRET = 'last-use-secret';
const EDGE_CACHE = 'x-nixery-edge-cache';
/** Short enough that a report lands within a test, long enough that hits close together share one. */
const DELAY_MS = 300;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const hex = (digest: string) => digest.slice('sha256:'.length);

async function get(url: string): Promise<{ status: number; digest: string | null; source: string | null; code: string | null }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  const text = await res.text();
  const code = res.status >= 400 ? ((JSON.parse(text) as { errors: { code: string }[] }).errors[0]?.code ?? null) : null;
  return { status: res.status, digest: res.headers.get('docker-content-digest'), source: res.headers.get(EDGE_CACHE), code };
}

describe('the edge reports manifest hits to a running origin', () => {
  let origin: RunningOrigin;

  before(async () => {
    // Usage is written at most once a second per image, so a test can see a second write.
    origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET, USAGE_WRITE_INTERVAL: '1' } });
  });
  after(async () => {
    await origin?.stop();
  });

  const reports = () => originRequests(origin.logs, HIT_REPORT_PATH);
  const storagePath = (key: string) => join(origin.storagePath, ...key.split('/'));
  async function imageKeyOf(digest: string): Promise<string> {
    return (JSON.parse(await readFile(storagePath(STORAGE_KEYS.imageSource(hex(digest))), 'utf8')) as { image: string }).image;
  }
  async function lastUsed(imageKey: string): Promise<number> {
    return (JSON.parse(await readFile(storagePath(STORAGE_KEYS.usage(imageKey)), 'utf8')) as { lastUsed: number }).lastUsed;
  }

  test('a manifest answered from the edge’s memory is reported, and the origin records its image’s use', async (t) => {
    const defer = deferrer(t);
    const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET, USAGE_REPORT_DELAY_MS: String(DELAY_MS) } });
    defer(() => edge.stop());
    const miss = await get(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal(miss.status, 200);
    assert.equal(miss.source, 'miss');
    const key = await imageKeyOf(miss.digest!);
    // The origin counted its own answer.
    await eventually(() => originRequests(origin.logs, '/manifests/latest').length > 0, 'the origin’s answer');
    await sleep(1_100);
    const before = origin.logs.length;
    const hitAt = Date.now();
    const hit = await get(`${edge.url}/v2/hello/manifests/${miss.digest}`);
    assert.equal(hit.source, 'memory');
    await eventually(() => originRequests(origin.logs.slice(before), HIT_REPORT_PATH).length === 1, 'the edge’s report', 10_000);
    assert.equal(originRequests(origin.logs.slice(before), '/manifests/').length, 0, 'the hit itself never reached the origin');
    const report = originRequests(origin.logs.slice(before), HIT_REPORT_PATH)[0]!;
    assert.equal(report.method, 'POST');
    assert.equal(report.status, 200);
    assert.ok((await lastUsed(key)) >= hitAt - 5, 'the image’s last use is the edge’s hit');
  });

  test('repeated hits of one manifest within the interval, by tag and by digest, send one report', async (t) => {
    const defer = deferrer(t);
    const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET, USAGE_REPORT_DELAY_MS: String(DELAY_MS) } });
    defer(() => edge.stop());
    const before = origin.logs.length;
    const { digest } = await get(`${edge.url}/v2/hello/manifests/latest`);
    for (let i = 0; i < 10; i++) {
      assert.equal((await get(`${edge.url}/v2/hello/manifests/latest`)).source, 'memory');
      assert.equal((await get(`${edge.url}/v2/hello/manifests/${digest}`)).source, 'memory');
    }
    await eventually(() => originRequests(origin.logs.slice(before), HIT_REPORT_PATH).length === 1, 'the edge’s report', 10_000);
    await sleep(3 * DELAY_MS);
    for (let i = 0; i < 5; i++) await get(`${edge.url}/v2/hello/manifests/${digest}`);
    await sleep(3 * DELAY_MS);
    assert.equal(originRequests(origin.logs.slice(before), HIT_REPORT_PATH).length, 1);
  });

  test('with USAGE_REPORT_INTERVAL=0 the edge reports nothing', async (t) => {
    const defer = deferrer(t);
    const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET, USAGE_REPORT_INTERVAL: '0', USAGE_REPORT_DELAY_MS: '0' } });
    defer(() => edge.stop());
    const before = origin.logs.length;
    const { digest } = await get(`${edge.url}/v2/hello/manifests/latest`);
    assert.equal((await get(`${edge.url}/v2/hello/manifests/${digest}`)).source, 'memory');
    await sleep(3 * DELAY_MS);
    assert.equal(originRequests(origin.logs.slice(before), HIT_REPORT_PATH).length, 0);
  });

  test('a report with a malformed digest, too many digests or too big a body is refused in the registry’s format, and only the edge may send one', async () => {
    const post = async (body: string, headers: Record<string, string> = { [ORIGIN_SECRET_HEADER]: SECRET }) => {
      const res = await fetch(`${origin.url}${HIT_REPORT_PATH}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
      const json = (await res.json()) as { errors?: { code: string }[]; unknown?: string[] };
      return { status: res.status, code: json.errors?.[0]?.code ?? null, json };
    };
    const valid = `sha256:${'0'.repeat(64)}`;
    assert.deepEqual(await post(JSON.stringify({ digests: [valid] })), { status: 200, code: null, json: { unknown: [valid] } });
    assert.deepEqual(await post(JSON.stringify({ digests: [valid, 'sha256:abc'] })).then((r) => [r.status, r.code]), [400, 'DIGEST_INVALID']);
    const tooMany = Array.from({ length: HIT_REPORT_LIMITS.maxDigests + 1 }, (_, i) => `sha256:${i.toString(16).padStart(64, '0')}`);
    assert.deepEqual(await post(JSON.stringify({ digests: tooMany })).then((r) => [r.status, r.code]), [400, 'QUERY_INVALID']);
    assert.deepEqual(await post(' '.repeat(HIT_REPORT_LIMITS.maxBodyBytes + 1)).then((r) => [r.status, r.code]), [400, 'QUERY_INVALID']);
    assert.deepEqual(await post('{"digests":').then((r) => [r.status, r.code]), [400, 'QUERY_INVALID']);
    assert.deepEqual(await post(JSON.stringify({ digests: [valid] }), {}).then((r) => [r.status, r.code]), [403, 'DENIED']);
    const viaGet = await fetch(`${origin.url}${HIT_REPORT_PATH}`, { headers: { [ORIGIN_SECRET_HEADER]: SECRET } });
    assert.equal(viaGet.status, 405);
  });

  test('a client cannot reach the report endpoint through the edge', async (t) => {
    const defer = deferrer(t);
    const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
    defer(() => edge.stop());
    const before = origin.logs.length;
    const res = await fetch(`${edge.url}${HIT_REPORT_PATH}`, { method: 'POST', body: JSON.stringify({ digests: [] }) });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code, 'NAME_UNKNOWN');
    assert.equal(originRequests(origin.logs.slice(before), '').length, 0);
  });

  test('a manifest whose image the origin no longer has is dropped by the edge after a report: by digest the origin then answers 404, by tag it builds the image again', async (t) => {
    const defer = deferrer(t);
    // Every digest may be reported again after a second, as an hour would allow in production.
    const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET, USAGE_REPORT_INTERVAL: '1', USAGE_REPORT_DELAY_MS: String(DELAY_MS) } });
    defer(() => edge.stop());
    const first = await get(`${edge.url}/v2/jq/manifests/latest`);
    assert.equal(first.status, 200);
    const digest = first.digest!;
    let before = origin.logs.length;
    assert.equal((await get(`${edge.url}/v2/jq/manifests/${digest}`)).source, 'memory');
    await eventually(() => originRequests(origin.logs.slice(before), HIT_REPORT_PATH).length === 1, 'the first report', 10_000);

    // What retention does to an image nobody used: its record, its manifests, their index entries.
    const key = await imageKeyOf(digest);
    const record = JSON.parse(await readFile(storagePath(STORAGE_KEYS.image(key)), 'utf8')) as ImageRecord;
    for (const m of Object.values(record.manifests)) {
      await rm(storagePath(STORAGE_KEYS.manifest(hex(m.digest))), { force: true });
      await rm(storagePath(STORAGE_KEYS.imageSource(hex(m.digest))), { force: true });
    }
    await rm(storagePath(STORAGE_KEYS.image(key)));
    await sleep(1_100);

    // Still in the edge's memory: served once more, and reported, which is how the edge learns.
    before = origin.logs.length;
    const dead = await get(`${edge.url}/v2/jq/manifests/${digest}`);
    assert.equal(dead.status, 200);
    assert.equal(dead.source, 'memory');
    await eventually(() => originRequests(origin.logs.slice(before), HIT_REPORT_PATH).length === 1, 'the report that learns it is gone', 10_000);
    assert.ok(origin.logs.slice(before).some((l) => l.msg === 'the edge reported manifests this origin can no longer serve'));
    // The edge drops it after reading the answer, in the same waitUntil.
    await sleep(200);

    const after = await get(`${edge.url}/v2/jq/manifests/${digest}`);
    assert.equal(after.status, 404);
    assert.equal(after.code, 'MANIFEST_UNKNOWN');
    assert.equal(originRequests(origin.logs.slice(before), `/manifests/${digest}`).length, 1, 'the request went to the origin');

    // By tag, the origin builds the image again (its replica forgets the record it still held in
    // memory): the same bytes, so the same digest, served again by digest too.
    const rebuilt = await get(`${edge.url}/v2/jq/manifests/latest`);
    assert.equal(rebuilt.status, 200);
    assert.equal(rebuilt.source, 'miss');
    assert.equal(rebuilt.digest, digest);
    assert.equal(await imageKeyOf(digest), key);
    assert.equal((await get(`${edge.url}/v2/jq/manifests/${digest}`)).status, 200);
  });
});

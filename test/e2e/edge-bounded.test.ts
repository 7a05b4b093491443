// The edge keeps strangers off the origin: requests that would reach it are
// rate limited per client by the real Rate Limiting binding (workerd, via
// miniflare), cache hits never are; a broken image reaches the client as
// the origin's own error and is remembered as long as the origin says; the
// client's address reaches the origin's fair shares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { startOrigin } from '../support/origin.ts';
import { startOpsOrigin, until } from '../support/ops.ts';
import { startEdge, originRequests } from '../support/edge.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';

const SECRET = 'edge-bounded-secret';

interface Answer {
  status: number;
  headers: Headers;
  error: { code: string; message: string; detail: Record<string, unknown> | null } | null;
}

async function pull(url: string, name: string, client: string, tag = 'latest'): Promise<Answer> {
  const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, {
    headers: { 'CF-Connecting-IP': client, Accept: 'application/vnd.oci.image.manifest.v1+json' },
    signal: AbortSignal.timeout(90_000),
  });
  const text = await res.text();
  const error = res.status >= 400 ? ((JSON.parse(text) as { errors: Answer['error'][] }).errors[0] ?? null) : null;
  return { status: res.status, headers: res.headers, error };
}

test('requests that reach the origin are limited per client; cache hits never are', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
  defer(() => origin.stop());
  const edge = await startEdge(origin.url, {
    bindings: { ORIGIN_SECRET: SECRET, ORIGIN_RATE_LIMIT_PERIOD: '60' },
    ratelimits: { ORIGIN_RATE_LIMITER: { simple: { limit: 3, period: 60 } } },
  });
  defer(() => edge.stop());

  const a = '203.0.113.10';
  assert.equal((await pull(edge.url, 'hello', a)).status, 200); // 1: a miss
  assert.equal((await pull(edge.url, 'nope1', a)).status, 404); // 2
  assert.equal((await pull(edge.url, 'nope2', a)).status, 404); // 3
  const limited = await pull(edge.url, 'nope3', a);
  assert.equal(limited.status, 429);
  assert.equal(limited.error?.code, 'TOOMANYREQUESTS');
  assert.equal(limited.headers.get('retry-after'), '60');
  // The origin's log lines come through a pipe, its answers through a socket: wait for a line,
  // then count exactly. Lines arrive in the order the origin answered, and each request here
  // waits for the one before, so once a request's line is in, no earlier line is still on its way.
  const manifestRequests = () => originRequests(origin.logs, '/manifests/').length;
  await eventually(() => manifestRequests() >= 3, 'the origin’s log lines of the three requests within the budget');
  const reached = manifestRequests();
  assert.equal(reached, 3, 'the limited request did not reach the origin');
  // Cache hits (the image, the remembered unknown name) are answered whatever the budget.
  for (let i = 0; i < 10; i++) assert.equal((await pull(edge.url, 'hello', a)).status, 200);
  assert.equal((await pull(edge.url, 'nope1', a)).status, 404);
  // A tag list always reaches the origin (its query pages it): it counts too.
  const tags = await fetch(`${edge.url}/v2/hello/tags/list`, { headers: { 'CF-Connecting-IP': a } });
  assert.equal(tags.status, 429);
  assert.equal(tags.headers.get('retry-after'), '60');
  // Another client has its own budget.
  assert.equal((await pull(edge.url, 'nope3', '203.0.113.11')).status, 404);
  await eventually(() => manifestRequests() >= reached + 1, 'the origin’s log line of the other client’s request');
  assert.equal(manifestRequests(), reached + 1, 'only the other client’s request reached the origin');
  assert.equal(originRequests(origin.logs, '/tags/list').length, 0, 'the limited tag list did not reach the origin');
  const otherTags = await fetch(`${edge.url}/v2/hello/tags/list`, { headers: { 'CF-Connecting-IP': '203.0.113.11' } });
  assert.equal(otherTags.status, 200);
  assert.deepEqual(((await otherTags.json()) as { tags: string[] }).tags, ['latest']);
});

test('a broken image reaches the client as the origin’s error with Nix’s words, remembered for the origin’s max-age', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET, FAILURE_TTL: '60' } });
  defer(() => origin.stop());
  // NEGATIVE_TTL (for answers the origin does not mark) of 1 s: the origin's 60 s must win.
  const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET, NEGATIVE_TTL: '1' } });
  defer(() => edge.stop());

  const broken = await pull(edge.url, 'brokenpackage', '203.0.113.20');
  assert.equal(broken.status, 500);
  assert.equal(broken.error?.code, 'UNKNOWN');
  assert.match(broken.error!.message, /nix build failed/);
  assert.match(String(broken.error!.detail?.nix), /brokenPackage: this package is broken on purpose/);
  for (let i = 0; i < 5; i++) {
    if (i === 4) await new Promise((resolve) => setTimeout(resolve, 1_500));
    const again = await pull(edge.url, 'brokenpackage', '203.0.113.20');
    assert.equal(again.status, 500);
    assert.equal(again.headers.get('x-nixery-edge-cache'), 'negative');
  }
  assert.equal(originRequests(origin.logs, '/manifests/').length, 1);
});

test('an origin that is down is still 503 UNAVAILABLE', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const edge = await startEdge('http://127.0.0.1:9', { bindings: { ORIGIN_TIMEOUT_MS: '2000' } });
  defer(() => edge.stop());
  const down = await pull(edge.url, 'hello', '203.0.113.30');
  assert.equal(down.status, 503);
  assert.equal(down.error?.code, 'UNAVAILABLE');
});

test('the edge passes the client’s address to the origin, whose shares hold per client behind one edge', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOpsOrigin({ ORIGIN_SECRET: SECRET, NIX_MAX_BUILDS: '1', NIX_QUEUE_LENGTH: '4', NIX_CLIENT_SHARE: '1', NIX_QUEUE_WAIT: '100' });
  defer(() => origin.cleanup());
  const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
  defer(() => edge.stop());
  const gauge = async (name: string) => {
    const text = await (await fetch(`${origin.url}/metrics`)).text();
    return Number(text.split('\n').find((l) => l.startsWith(`nixery_origin_nix_queue_${name}{queue="build"}`))?.split(' ').pop());
  };
  const first = pull(edge.url, 'slow', '198.51.100.1');
  await until(async () => (await gauge('running')) === 1, 'the first build', 60_000);
  const second = pull(edge.url, 'slow/base', '198.51.100.1');
  await until(async () => (await gauge('waiting')) === 1, 'the second build to wait', 60_000);
  const greedy = await pull(edge.url, 'slow/hello', '198.51.100.1');
  assert.equal(greedy.status, 429);
  assert.equal(greedy.error?.detail?.reason, 'client-share');
  assert.match(greedy.headers.get('retry-after') ?? '', /^\d+$/);
  const other = pull(edge.url, 'slow/hello', '198.51.100.2');
  await until(async () => (await gauge('waiting')) === 2, 'the other client’s build to wait', 60_000);
  await writeFile(origin.gate, '');
  for (const answer of await Promise.all([first, second, other])) assert.equal(answer.status, 200);
});

test('an image over a limit reaches the client as the origin’s refusal naming the limit, not as a 503', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET, MAX_IMAGE_PACKAGES: '2', MAX_CLOSURE_MIB: '30' } });
  defer(() => origin.stop());
  const edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET } });
  defer(() => edge.stop());
  const many = await pull(edge.url, 'hello/jq/git', '203.0.113.40');
  assert.equal(many.status, 400);
  assert.equal(many.error?.code, 'NAME_INVALID');
  assert.deepEqual(many.error?.detail, { limit: 'packages', max: 2, actual: 3 });
  // A 403 from the origin is otherwise "the origin refused the edge's secret" (a 503); a limit is the image's.
  const big = await pull(edge.url, 'bigpackage', '203.0.113.40');
  assert.equal(big.status, 403);
  assert.equal(big.error?.code, 'DENIED');
  assert.equal(big.error?.detail?.limit, 'closureBytes');
  const again = await pull(edge.url, 'bigpackage', '203.0.113.40');
  assert.equal(again.status, 403);
  assert.equal(again.headers.get('x-nixery-edge-cache'), 'negative');
});

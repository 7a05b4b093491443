// A public origin strangers cannot exhaust: Nix builds capped and queued,
// each client held to its share of the queue, waits bounded, failures
// remembered, and images held to limits, each refusal in the registry's
// error format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startOpsOrigin, until, listFiles } from '../support/ops.ts';
import { startOrigin } from '../support/origin.ts';
import { recordProcesses } from '../support/sources.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';
import { CLIENT_ADDRESS_HEADER, ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';

interface Answer {
  status: number;
  headers: Headers;
  error: { code: string; message: string; detail: Record<string, unknown> | null } | null;
}

async function pull(url: string, name: string, headers: Record<string, string> = {}, tag = 'latest'): Promise<Answer> {
  const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, { headers, signal: AbortSignal.timeout(90_000) });
  const text = await res.text();
  const error = res.status >= 400 ? ((JSON.parse(text) as { errors: Answer['error'][] }).errors[0] ?? null) : null;
  return { status: res.status, headers: res.headers, error };
}

async function metric(url: string, line: RegExp): Promise<number | null> {
  const text = await (await fetch(`${url}/metrics`)).text();
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (m) return Number(l.split(' ').pop());
  }
  return null;
}

test('builds past NIX_MAX_BUILDS wait; a full queue and a client past its share get 429 with Retry-After', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOpsOrigin({
    ORIGIN_SECRET: 'edge-secret',
    NIX_MAX_BUILDS: '1',
    NIX_QUEUE_LENGTH: '2',
    NIX_CLIENT_SHARE: '1',
    NIX_QUEUE_WAIT: '100',
  });
  defer(() => origin.cleanup());
  const as = (client: string) => ({ [ORIGIN_SECRET_HEADER]: 'edge-secret', [CLIENT_ADDRESS_HEADER]: client });
  const buildsRunning = () => metric(origin.url, /^nixery_origin_nix_queue_running\{queue="build"\}/);
  const buildsWaiting = () => metric(origin.url, /^nixery_origin_nix_queue_waiting\{queue="build"\}/);

  // Client X's build holds the only build slot (the gate keeps `slow` building).
  const first = pull(origin.url, 'slow', as('198.51.100.1'));
  await until(async () => (await buildsRunning()) === 1, 'the first build to run', 60_000);
  // X's second image waits: its one place in the queue.
  const second = pull(origin.url, 'slow/base', as('198.51.100.1'));
  await until(async () => (await buildsWaiting()) === 1, 'the second build to wait', 60_000);
  // A third from X is past its share, while the queue still has room.
  const share = await pull(origin.url, 'slow/hello', as('198.51.100.1'));
  assert.equal(share.status, 429);
  assert.equal(share.error?.code, 'TOOMANYREQUESTS');
  assert.match(share.error!.message, /the most one client may queue/);
  assert.match(share.headers.get('retry-after') ?? '', /^\d+$/);
  // Another client has a share of its own...
  const other = pull(origin.url, 'slow/hello', as('198.51.100.2'));
  await until(async () => (await buildsWaiting()) === 2, 'the other client’s build to wait', 60_000);
  // ...and once the queue is full, everyone is refused.
  const full = await pull(origin.url, 'slow/base/hello', as('198.51.100.3'));
  assert.equal(full.status, 429);
  assert.equal(full.error?.detail?.reason, 'queue-full');
  assert.ok(Number(full.headers.get('retry-after')) >= 1);
  assert.equal(await buildsRunning(), 1, 'never more builds than NIX_MAX_BUILDS');

  await writeFile(origin.gate, '');
  for (const answer of await Promise.all([first, second, other])) assert.equal(answer.status, 200);
  assert.equal(await metric(origin.url, /^nixery_origin_nix_queue_refused_total\{queue="build",reason="client-share"\}/), 1);
  assert.equal(await metric(origin.url, /^nixery_origin_nix_queue_refused_total\{queue="build",reason="queue-full"\}/), 1);
  assert.ok((await metric(origin.url, /^nixery_origin_nix_queue_wait_seconds_count\{queue="build"\}/))! >= 3);
});

test('a client address is believed only beside the edge’s secret; without a secret, the socket’s address counts', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  // No secret: anyone may claim any address, so every claim below is the same client (127.0.0.1).
  const origin = await startOpsOrigin({ NIX_MAX_BUILDS: '1', NIX_QUEUE_LENGTH: '4', NIX_CLIENT_SHARE: '1', NIX_QUEUE_WAIT: '100' });
  defer(() => origin.cleanup());
  const first = pull(origin.url, 'slow', { [CLIENT_ADDRESS_HEADER]: '198.51.100.1' });
  await until(async () => (await metric(origin.url, /^nixery_origin_nix_queue_running\{queue="build"\}/)) === 1, 'the first build', 60_000);
  const second = pull(origin.url, 'slow/base', { [CLIENT_ADDRESS_HEADER]: '198.51.100.2' });
  await until(async () => (await metric(origin.url, /^nixery_origin_nix_queue_waiting\{queue="build"\}/)) === 1, 'the second build to wait', 60_000);
  const forged = await pull(origin.url, 'slow/hello', { [CLIENT_ADDRESS_HEADER]: '198.51.100.3' });
  assert.equal(forged.status, 429, 'a made-up address does not buy another share');
  assert.equal(forged.error?.detail?.reason, 'client-share');
  await writeFile(origin.gate, '');
  assert.equal((await first).status, 200);
  assert.equal((await second).status, 200);
});

test('work that waits past NIX_QUEUE_WAIT is refused with 429', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOpsOrigin({ NIX_MAX_BUILDS: '1', NIX_QUEUE_LENGTH: '4', NIX_QUEUE_WAIT: '1' });
  defer(() => origin.cleanup());
  const first = pull(origin.url, 'slow');
  await until(async () => (await metric(origin.url, /^nixery_origin_nix_queue_running\{queue="build"\}/)) === 1, 'the first build', 60_000);
  const started = performance.now();
  const late = await pull(origin.url, 'slow/base');
  assert.equal(late.status, 429);
  assert.equal(late.error?.detail?.reason, 'wait-timeout');
  assert.ok(performance.now() - started < 20_000);
  await writeFile(origin.gate, '');
  assert.equal((await first).status, 200);
});

test('a broken build and an unknown package are remembered: asked again, no Nix runs', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const recorder = await recordProcesses();
  defer(() => recorder.remove());
  const origin = await startOrigin({ env: { ...recorder.env, FAILURE_TTL: '60' } });
  defer(() => origin.stop());
  await recorder.clear();

  const broken = await pull(origin.url, 'brokenpackage', { 'X-Request-Id': 'broken-0001' });
  assert.equal(broken.status, 500);
  // A fault is logged as an error, under the request's id, with where it was made.
  const faultLine = (id: string) => origin.logs.find((l) => l.level === 50 && l.requestId === id);
  await eventually(() => faultLine('broken-0001') !== undefined, 'the failure logged under the request id');
  const logged = faultLine('broken-0001')!;
  assert.match(String((logged.err as { stack?: unknown } | undefined)?.stack), /nix build failed[^]*\n    at /);
  assert.match(broken.error!.message, /nix build failed/);
  assert.match(String(broken.error!.detail?.nix), /brokenPackage: this package is broken on purpose/);
  assert.equal(broken.headers.get('cache-control'), 'public, max-age=60');
  // A local package set has one version, latest (sources/path.ts): the memory is keyed by what is built.
  const again = await Promise.all(['latest', 'latest', 'latest'].map((tag) => pull(origin.url, 'brokenpackage', {}, tag)));
  for (const answer of again) {
    assert.equal(answer.status, 500);
    assert.deepEqual(answer.error, broken.error);
    assert.match(answer.headers.get('cache-control') ?? '', /^public, max-age=(60|59)$/);
  }
  const unknown = await pull(origin.url, 'hello/nosuchpackage', { 'X-Request-Id': 'unknown-0001' });
  assert.equal(unknown.status, 404);
  // The request line is written when the answer is, after any error line would have been.
  await eventually(() => origin.logs.some((l) => l.msg === 'request' && l.requestId === 'unknown-0001'), 'the request line');
  assert.equal(faultLine('unknown-0001'), undefined, "a client's error is an answer, not a fault to log");
  assert.equal((await pull(origin.url, 'hello/nosuchpackage')).status, 404);
  const commands = await recorder.commands();
  assert.equal(commands.filter((c) => c.startsWith('nix-build')).length, 1, commands.join('\n'));
  assert.equal(commands.filter((c) => c.startsWith('nix-instantiate')).length, 2, 'one evaluation per name');
  assert.equal(await metric(origin.url, /^nixery_origin_failures_recalled_total /), 4);
});

test('images past MAX_IMAGE_PACKAGES, MAX_CLOSURE_MIB or MAX_LAYER_MIB are refused naming the limit, with nothing stored', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const recorder = await recordProcesses();
  defer(() => recorder.remove());
  const origin = await startOrigin({ env: { ...recorder.env, MAX_IMAGE_PACKAGES: '2', MAX_CLOSURE_MIB: '30', MAX_LAYER_MIB: '20' } });
  defer(() => origin.stop());
  await recorder.clear();

  const many = await pull(origin.url, 'hello/jq/git');
  assert.equal(many.status, 400);
  assert.equal(many.error?.code, 'NAME_INVALID');
  assert.deepEqual(many.error?.detail, { limit: 'packages', max: 2, actual: 3 });
  assert.deepEqual(await recorder.commands(), [], 'refused before any Nix ran');

  // bigPackage holds 34 MiB: over the closure limit. With the closure limit raised, over the layer limit.
  const big = await pull(origin.url, 'bigpackage');
  assert.equal(big.status, 403);
  assert.equal(big.error?.code, 'DENIED');
  assert.equal(big.error?.detail?.limit, 'closureBytes');
  assert.match(big.error!.message, /MAX_CLOSURE_MIB/);
  assert.deepEqual(await listFiles(join(origin.storagePath)), [], 'nothing of the refused image was stored');
  assert.equal((await pull(origin.url, 'hello')).status, 200);
});

test('a layer past MAX_LAYER_MIB is refused with the limit named', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ env: { MAX_LAYER_MIB: '20' } });
  defer(() => origin.stop());
  const big = await pull(origin.url, 'bigpackage');
  assert.equal(big.status, 403);
  assert.equal(big.error?.detail?.limit, 'layerBytes');
  assert.match(big.error!.message, /MAX_LAYER_MIB/);
  assert.deepEqual(await listFiles(origin.storagePath), []);
});

test('a lost blob is rebuilt in the build queue: while the builds fill it, a request for it is refused with 429, and answered once a slot is free', { timeout: 120_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOpsOrigin({ NIX_MAX_BUILDS: '1', NIX_QUEUE_LENGTH: '0' });
  defer(() => origin.cleanup());
  const buildsRunning = () => metric(origin.url, /^nixery_origin_nix_queue_running\{queue="build"\}/);
  const built = await fetch(`${origin.url}/v2/hello/manifests/latest`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(built.status, 200);
  const layer = ((await built.json()) as { layers: { digest: string; size: number }[] }).layers[0]!;
  await rm(join(origin.storagePath, ...STORAGE_KEYS.blob(layer.digest.slice('sha256:'.length)).split('/')));

  const slow = pull(origin.url, 'slow');
  await until(async () => (await buildsRunning()) === 1, 'the slow build to hold the only slot', 60_000);
  const refused = await fetch(`${origin.url}/v2/hello/blobs/${layer.digest}`);
  assert.equal(refused.status, 429);
  assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
  assert.equal(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code, 'TOOMANYREQUESTS');
  // A digest no layer record knows is unknown at once: it takes no place in the queue.
  const madeUp = await fetch(`${origin.url}/v2/hello/blobs/sha256:${'e'.repeat(64)}`);
  assert.equal(madeUp.status, 404);
  assert.equal(((await madeUp.json()) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UNKNOWN');

  await writeFile(origin.gate, '');
  assert.equal((await slow).status, 200);
  const rebuilt = await fetch(`${origin.url}/v2/hello/blobs/${layer.digest}`);
  assert.equal(rebuilt.status, 200);
  const bytes = new Uint8Array(await rebuilt.arrayBuffer());
  assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, layer.digest);
});

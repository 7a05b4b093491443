// The origin's structured logs: one JSON line per request (with the request
// id the edge forwards), one per build, and the progress of a build before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startOpsOrigin, waitForLog } from '../support/ops.ts';

type Log = Record<string, unknown>;

test('a request is logged once as a JSON line with its method, route kind, status, duration and the request id the edge sent', async () => {
  const origin = await startOpsOrigin();
  try {
    const res = await fetch(`${origin.url}/v2/`, { headers: { 'X-Request-Id': 'edge-request-0001' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-request-id'), 'edge-request-0001');
    const line = await waitForLog(origin, (l) => l.requestId === 'edge-request-0001' && l.msg === 'request', 'the request line');
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/v2/');
    assert.equal(line.route, 'base');
    assert.equal(line.status, 200);
    assert.equal(typeof line.ms, 'number');
    assert.equal(line.level, 30);
    assert.equal(typeof line.time, 'string');
    assert.equal(origin.logs.filter((l) => l.requestId === 'edge-request-0001').length, 1);
  } finally {
    await origin.cleanup();
  }
});

test('a request without a request id gets one, returned in X-Request-Id and logged with it', async () => {
  const origin = await startOpsOrigin();
  try {
    const res = await fetch(`${origin.url}/v2/hello/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(res.status, 404);
    const id = res.headers.get('x-request-id');
    assert.ok(id && id.length >= 16, 'an id was made');
    const line = await waitForLog(origin, (l) => l.requestId === id && l.msg === 'request', 'the request line');
    assert.equal(line.route, 'blob');
    assert.equal(line.status, 404);
  } finally {
    await origin.cleanup();
  }
});

test('a build is logged with its packages, closure size, layer count, bytes written and duration, after Nix progress and one line per layer written', async () => {
  const origin = await startOpsOrigin();
  try {
    const res = await fetch(`${origin.url}/v2/hello/manifests/latest`, { headers: { 'X-Request-Id': 'build-0001' } });
    assert.equal(res.status, 200);
    const manifest = (await res.json()) as { layers: { size: number }[] };
    const built = await waitForLog(origin, (l) => l.msg === 'image built', 'the build line');
    await waitForLog(origin, (l) => l.requestId === 'build-0001' && l.msg === 'request', 'the request line');

    assert.deepEqual(built.packages, ['hello']);
    assert.equal(built.image, 'amd64/hello');
    assert.equal(typeof built.closureBytes, 'number');
    assert.ok((built.closureBytes as number) > 0);
    assert.equal(built.closurePaths, 2, 'hello and the base it refers to');
    assert.equal(built.layers, manifest.layers.length);
    // A fresh salt and fresh storage: every layer was written by this build.
    assert.equal(built.bytesWritten, manifest.layers.reduce((sum, l) => sum + l.size, 0));
    assert.equal(typeof built.ms, 'number');

    const at = (match: (l: Log) => boolean) => origin.logs.findIndex(match);
    const buildLine = at((l) => l.msg === 'image built');
    const progress = origin.logs.filter((l) => l.msg === 'nix progress');
    assert.ok(progress.some((l) => /^building '\/nix\/store\/[a-z0-9]{32}-ops-hello-1\.0\.drv'/.test(String(l.nix))), 'Nix said what it was building');
    assert.ok(progress.every((l) => l.image === 'amd64/hello'), 'progress lines name their image');
    assert.ok(at((l) => l.msg === 'nix progress') < buildLine);
    const layerLines = origin.logs.filter((l) => l.msg === 'layer written');
    assert.equal(layerLines.length, manifest.layers.length);
    assert.ok(at((l) => l.msg === 'layer written') < buildLine);
    assert.ok(buildLine < at((l) => l.requestId === 'build-0001' && l.msg === 'request'));
  } finally {
    await origin.cleanup();
  }
});

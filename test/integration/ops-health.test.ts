// /healthz and /readyz: outside /v2/, answered without the edge's secret,
// and readiness that follows storage and Nix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { startOpsOrigin, waitForLog } from '../support/ops.ts';

interface ReadyBody {
  status: string;
  checks: { storage: { ok: boolean; error?: string }; nix: { ok: boolean; version?: string; error?: string } };
}

test('/healthz answers 200 and /readyz reports storage and Nix working, without the secret the registry asks for', async () => {
  const origin = await startOpsOrigin({ ORIGIN_SECRET: 'only-the-edge-knows' });
  try {
    const health = await fetch(`${origin.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });

    const ready = await fetch(`${origin.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(ready.headers.get('cache-control'), 'no-store');
    const body = (await ready.json()) as ReadyBody;
    assert.equal(body.status, 'ready');
    assert.equal(body.checks.storage.ok, true);
    assert.equal(body.checks.nix.ok, true);
    assert.match(body.checks.nix.version ?? '', /Nix/);

    assert.equal((await fetch(`${origin.url}/v2/`)).status, 403, 'the registry itself still refuses requests without the secret');
  } finally {
    await origin.cleanup();
  }
});

test('/readyz answers 503 naming storage once the storage directory is gone, while /healthz stays 200', async () => {
  const origin = await startOpsOrigin();
  try {
    await rm(origin.storagePath, { recursive: true, force: true });
    const ready = await fetch(`${origin.url}/readyz`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as ReadyBody;
    assert.equal(body.status, 'not ready');
    assert.equal(body.checks.storage.ok, false);
    assert.match(body.checks.storage.error ?? '', /ENOENT/);
    assert.equal(body.checks.nix.ok, true);
    assert.equal((await fetch(`${origin.url}/healthz`)).status, 200);
    const line = await waitForLog(origin, (l) => l.msg === 'not ready', 'the "not ready" log line');
    assert.equal(line.level, 40);
  } finally {
    await origin.cleanup();
  }
});

test('/readyz answers 503 naming Nix when Nix cannot be run', async () => {
  const origin = await startOpsOrigin({ PATH: '/nonexistent' });
  try {
    const ready = await fetch(`${origin.url}/readyz`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as ReadyBody;
    assert.equal(body.checks.nix.ok, false);
    assert.match(body.checks.nix.error ?? '', /nix-build is not on PATH/);
    assert.equal(body.checks.storage.ok, true);
  } finally {
    await origin.cleanup();
  }
});

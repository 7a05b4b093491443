// NIX_TIMEOUT: a build that runs past it is stopped, the client gets a 500
// whose detail carries Nix's own output, and the origin keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startOpsOrigin } from '../support/ops.ts';

test('a build past NIX_TIMEOUT answers 500 with Nix’s output, and other images are still served', async () => {
  // The gate file is never created: `slow` would build for minutes.
  const origin = await startOpsOrigin({ NIX_TIMEOUT: '2' });
  try {
    const res = await fetch(`${origin.url}/v2/slow/manifests/latest`);
    assert.equal(res.status, 500);
    const body = (await res.json()) as { errors: { code: string; message: string; detail: { nix: string } }[] };
    assert.equal(body.errors[0]!.code, 'UNKNOWN');
    assert.match(body.errors[0]!.message, /nix build timed out: nix-build timed out after 2 s/);
    assert.match(body.errors[0]!.detail.nix, /slow: waiting/);
    assert.equal((await fetch(`${origin.url}/v2/hello/manifests/latest`)).status, 200);
  } finally {
    await origin.cleanup();
  }
});

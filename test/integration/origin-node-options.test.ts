// The origin started with V8 options, as a pod with a memory limit may start
// it (`node --max-old-space-size=1536 origin/main.ts`): its worker threads
// (the deflate pool, the process launcher) start, and it builds and serves an
// image with real Nix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin } from '../support/origin.ts';
import { deferrer } from '../support/cleanup.ts';

test('an origin started under node --max-old-space-size and --stack-size builds and serves hello', { timeout: 180_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ wrap: (command, args) => ({ command, args: ['--max-old-space-size=1536', '--stack-size=900', ...args] }) });
  defer(() => origin.stop());
  const manifest = await fetch(`${origin.url}/v2/hello/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' }, signal: AbortSignal.timeout(150_000) });
  assert.equal(manifest.status, 200);
  const body = (await manifest.json()) as { layers: { digest: string }[] };
  assert.ok(body.layers.length > 0);
  const blob = await fetch(`${origin.url}/v2/hello/blobs/${body.layers[0]!.digest}`);
  assert.equal(blob.status, 200);
  assert.ok((await blob.arrayBuffer()).byteLength > 0);
});

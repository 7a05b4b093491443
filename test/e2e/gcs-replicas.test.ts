// Two origin replicas share one bucket on a real GCS API server (the
// storage emulator): an image built by the first is pulled through the
// second without a build, skopeo following the signed-URL redirects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin } from '../support/origin.ts';
import { gcsOriginEnv, startGcsEmulator, verifySignedUrl } from '../support/gcs-emulator.ts';
import { pullAndUnpack, runInRootfs } from '../support/clients.ts';
import { eventually } from '../support/eventually.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';
import { deferrer } from '../support/cleanup.ts';

test('an image built by one origin is pulled through another sharing the bucket, without a build, by signed URL', async (t) => {
  const defer = deferrer(t);
  const emulator = await startGcsEmulator();
  defer(() => emulator.stop());
  const keys = serviceAccountKeys();
  const env = gcsOriginEnv(emulator, 'nixery-edge-replicas', keys.privateKey);
  const first = await startOrigin({ env });
  defer(() => first.stop());
  const second = await startOrigin({ env });
  defer(() => second.stop());
  {
    const built = await fetch(`${first.url}/v2/shell/hello/manifests/latest`);
    assert.equal(built.status, 200, await built.clone().text());
    const manifest = (await built.json()) as { layers: { digest: string; size: number }[] };
    await eventually(() => first.logs.some((l) => l.msg === 'image built'), 'the first build');

    // Blobs are redirects to signed URLs that verify with the signing key's public half.
    const blob = await fetch(`${second.url}/v2/shell/hello/blobs/${manifest.layers[0]!.digest}`, { redirect: 'manual' });
    assert.equal(blob.status, 307);
    const location = blob.headers.get('location')!;
    assert.ok(location.startsWith(emulator.url), location);
    assert.ok(verifySignedUrl(location, keys.publicKey));

    // A HEAD is answered from the object's metadata: its real length and digest, not a redirect's empty body.
    const layer = manifest.layers[0]!;
    const head = await fetch(`${second.url}/v2/shell/hello/blobs/${layer.digest}`, { method: 'HEAD', redirect: 'manual' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.size));
    assert.equal(head.headers.get('docker-content-digest'), layer.digest);

    const image = await pullAndUnpack(`127.0.0.1:${second.port}`, 'hello/shell:latest');
    try {
      assert.equal((await runInRootfs(image.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    } finally {
      await image.remove();
    }
    await eventually(() => second.logs.some((l) => l.msg === 'request' && String(l.path).includes('/blobs/')), 'blob requests on the second origin');
    assert.equal(second.logs.filter((l) => l.msg === 'image built').length, 0, 'the second replica built nothing');
    assert.equal(second.logs.filter((l) => l.msg === 'layer written').length, 0, 'and wrote no layer');
  }
});

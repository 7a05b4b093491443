// The origin remembers what it built: layers are written once across images
// and restarts, and a known image is answered from storage without a build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { eventually } from '../support/eventually.ts';
import { deferrer } from '../support/cleanup.ts';

const count = (origin: RunningOrigin, msg: string) => origin.logs.filter((l) => l.msg === msg).length;

async function manifestDigest(origin: RunningOrigin, name: string): Promise<{ digest: string; layers: string[] }> {
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`);
  const body = (await res.json()) as { layers: { digest: string }[] };
  assert.equal(res.status, 200, JSON.stringify(body));
  await eventually(() => origin.logs.some((l) => l.msg === 'request' && String(l.path).includes(name)), 'the request log line');
  return { digest: res.headers.get('docker-content-digest')!, layers: body.layers.map((l) => l.digest) };
}

test('a restarted origin serves a known image without building or writing, and a third image writes only its new layers', async (t) => {
  const defer = deferrer(t);
  const storagePath = await mkdtemp(join(tmpdir(), 'caching-'));
  defer(() => rm(storagePath, { recursive: true, force: true }));
  const before = await startOrigin({ storagePath });
  defer(() => before.stop());
  const first = await manifestDigest(before, 'shell/hello');
  assert.equal(count(before, 'image built'), 1);
  assert.equal(count(before, 'layer written'), first.layers.length, 'every layer written once');
  await before.stop();

  {
    const origin = await startOrigin({ storagePath });
    defer(() => origin.stop());
    {
      const again = await manifestDigest(origin, 'hello/shell');
      assert.equal(again.digest, first.digest);
      assert.equal(count(origin, 'image built'), 0, 'no build after a restart');
      assert.equal(count(origin, 'layer written'), 0, 'no tarball after a restart');

      const third = await manifestDigest(origin, 'shell/htop');
      const shared = third.layers.filter((l) => first.layers.includes(l));
      assert.ok(shared.length > 0, 'shell/htop shares layers with shell/hello');
      assert.equal(count(origin, 'image built'), 1);
      assert.equal(count(origin, 'layer written'), third.layers.length - shared.length, 'only the new layers are written');

      // Every blob was written once: storage holds exactly the distinct layers and configs.
      const blobs = await readdir(join(storagePath, 'blobs/sha256'));
      const distinct = new Set([...first.layers, ...third.layers]);
      assert.equal(blobs.length, distinct.size + 2);
    }
  }
});

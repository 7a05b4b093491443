// A layer blob is a cache entry: deleted or truncated in storage, it is
// rebuilt from its layer record on the next pull, with the same digest, and
// skopeo (which checks every digest) pulls the image as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm, truncate, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startOrigin } from '../support/origin.ts';
import { pullAndUnpack } from '../support/clients.ts';
import { deferrer } from '../support/cleanup.ts';
import { MEDIA } from '../../shared/media-types.ts';

const IMAGES = ['hello', 'shell/hello'];

test('deleted and truncated layer blobs are rebuilt with their digests, and every image pulls again', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin();
  defer(() => origin.stop());
  const host = `127.0.0.1:${origin.port}`;

  const before = new Map<string, string>();
  for (const name of IMAGES) {
    const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept: MEDIA.dockerManifest } });
    assert.equal(res.status, 200, await res.clone().text());
    before.set(name, await res.text());
  }

  const sources = await readdir(join(origin.storagePath, 'blob-sources/sha256'));
  const layerHexes = sources.map((f) => f.replace(/\.json$/, ''));
  assert.ok(layerHexes.length >= 3, `expected indexed layers, got ${layerHexes.length}`);
  // Every layer of every image is indexed: each can be found again.
  for (const body of before.values()) {
    for (const layer of (JSON.parse(body) as { layers: { digest: string }[] }).layers) assert.ok(layerHexes.includes(layer.digest.slice('sha256:'.length)), layer.digest);
  }
  // Damage: truncate one blob, delete all the others.
  const [truncated, ...deleted] = layerHexes;
  const truncatedPath = join(origin.storagePath, 'blobs/sha256', truncated!);
  const fullSize = (await stat(truncatedPath)).size;
  await truncate(truncatedPath, Math.floor(fullSize / 2));
  for (const hex of deleted) await rm(join(origin.storagePath, 'blobs/sha256', hex));

  for (const name of IMAGES) {
    const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept: MEDIA.dockerManifest } });
    assert.equal(await res.text(), before.get(name), `${name}: same manifest as before`);
    const image = await pullAndUnpack(host, `${name}:latest`);
    await image.remove();
  }
  assert.equal((await stat(truncatedPath)).size, fullSize);
  for (const hex of deleted) await stat(join(origin.storagePath, 'blobs/sha256', hex));
  const rebuilt = origin.logs.filter((l) => l.msg === 'lost blob rebuilt from its layer record').length;
  assert.equal(rebuilt, layerHexes.length);
});

test('a lost layer blob whose record is gone too answers 404 BLOB_UNKNOWN', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin();
  defer(() => origin.stop());
  const res = await fetch(`${origin.url}/v2/hello/manifests/latest`, { headers: { accept: MEDIA.dockerManifest } });
  const layer = (JSON.parse(await res.text()) as { layers: { digest: string }[] }).layers[0]!.digest;
  const hex = layer.slice('sha256:'.length);
  await rm(join(origin.storagePath, 'blobs/sha256', hex));
  await rm(join(origin.storagePath, 'blob-sources/sha256', `${hex}.json`));
  const blob = await fetch(`${origin.url}/v2/hello/blobs/${layer}`);
  assert.equal(blob.status, 404);
  const body = (await blob.json()) as { errors: { code: string }[] };
  assert.equal(body.errors[0]!.code, 'BLOB_UNKNOWN');
});

// Every blob is a cache entry: layer blobs, configs and manifests deleted or
// truncated in storage (filesystem and the GCS emulator alike) are made again
// on the next request from the records that remain, with the same digests,
// and skopeo (which checks every digest) pulls every image as before. With
// records deleted at random too, the scrub (`npm run gc -- --verify`) makes
// what it can whole and drops what it cannot, and every image pulls again.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { gcsOriginEnv, startGcsEmulator } from '../support/gcs-emulator.ts';
import { pullAndUnpack } from '../support/clients.ts';
import { deferrer } from '../support/cleanup.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { runGc } from '../support/gc-cli.ts';

const IMAGES = ['hello', 'shell/hello'];

/** What the test does to storage behind the origin's back. */
interface Objects {
  list(prefix: string): Promise<string[]>;
  read(key: string): Promise<Uint8Array>;
  write(key: string, bytes: Uint8Array): Promise<void>;
  remove(key: string): Promise<void>;
}

function filesystemObjects(origin: { storagePath: string }): Objects {
  const path = (key: string) => join(origin.storagePath, ...key.split('/'));
  return {
    list: async (prefix) => (await readdir(path(prefix)).catch(() => [])).map((f) => `${prefix}/${f}`),
    read: async (key) => new Uint8Array(await readFile(path(key))),
    write: (key, bytes) => writeFile(path(key), bytes),
    remove: (key) => rm(path(key)),
  };
}

/** A small seeded generator (mulberry32), so a failing damage pattern can be run again with DAMAGE_SEED. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const DAMAGED_FAMILIES = ['blobs/sha256', 'manifests/sha256', 'images', 'layers', 'blob-sources/sha256', 'image-sources/sha256'];

/**
 * Deletes about a third of every family of objects and records (at least one
 * of each), chosen by a seeded generator; scrubs with the CLI; starts a fresh
 * origin over the same storage (one that remembers records in memory serves
 * them for a while, docs/operations.md); pulls every image with skopeo and
 * checks the manifests are the ones from before; scrubs again, finding
 * nothing wrong.
 */
async function randomDamageScrubAndPull(t: TestContext, start: () => Promise<RunningOrigin>, objects: Objects, gcEnv: Record<string, string>): Promise<void> {
  let origin = await start();
  try {
    const before = await manifestsByTag(origin);
    const seed = Number(process.env.DAMAGE_SEED ?? 20261206);
    const random = seeded(seed);
    const deleted: string[] = [];
    for (const family of DAMAGED_FAMILIES) {
      const keys = await objects.list(family);
      assert.ok(keys.length > 0, `${family} has objects`);
      const chosen = keys.filter(() => random() < 0.35);
      if (chosen.length === 0) chosen.push(keys[Math.floor(random() * keys.length)]!);
      for (const key of chosen) await objects.remove(key);
      deleted.push(...chosen);
    }
    t.diagnostic(`seed ${seed}: deleted ${deleted.length} objects: ${deleted.join(' ')}`);

    const scrubbed = await runGc(['--verify'], gcEnv);
    t.diagnostic(scrubbed.stdout);
    assert.ok(scrubbed.exitCode === 0 || scrubbed.exitCode === 1, scrubbed.stderr);
    // Exit 1 exactly when some image could not be made whole and lost its record.
    assert.equal(scrubbed.exitCode === 1, /^dropped image record /m.test(scrubbed.stdout), scrubbed.stdout);

    await origin.stop({ keepStorage: true });
    origin = await start();
    for (const name of IMAGES) await (await pullAndUnpack(`127.0.0.1:${origin.port}`, `${name}:latest`)).remove();
    assert.deepEqual(await manifestsByTag(origin), before);
    const again = await runGc(['--verify'], gcEnv);
    assert.equal(again.exitCode, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /; 0 damaged \(0 made again\), 0 missing \(0 made again\), 0 image-sources entries restored, 0 image records dropped$/m);
  } finally {
    await origin.stop({ keepStorage: true });
  }
}

function gcsObjects(endpoint: string, bucket: string): Objects {
  const object = (key: string) => `${endpoint}/storage/v1/b/${bucket}/o/${encodeURIComponent(key)}`;
  return {
    list: async (prefix) => {
      const res = await fetch(`${endpoint}/storage/v1/b/${bucket}/o?prefix=${encodeURIComponent(prefix + '/')}`);
      const body = (await res.json()) as { items?: { name: string }[] };
      return (body.items ?? []).map((i) => i.name);
    },
    read: async (key) => new Uint8Array(await (await fetch(`${object(key)}?alt=media`)).arrayBuffer()),
    write: async (key, bytes) => {
      const res = await fetch(`${endpoint}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=${encodeURIComponent(key)}`, { method: 'POST', body: bytes });
      assert.ok(res.ok, await res.text());
    },
    remove: async (key) => {
      const res = await fetch(object(key), { method: 'DELETE' });
      assert.ok(res.ok || res.status === 404, await res.text());
    },
  };
}

async function manifestsByTag(origin: RunningOrigin): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of IMAGES) {
    for (const accept of [MEDIA.dockerManifest, MEDIA.ociManifest]) {
      const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept } });
      const body = await res.text();
      assert.equal(res.status, 200, body);
      out.set(`${name} ${accept}`, body);
    }
  }
  return out;
}

async function damageAndPullAgain(t: TestContext, origin: RunningOrigin, objects: Objects): Promise<void> {
  const before = await manifestsByTag(origin);
  const digests = new Map<string, string>();
  for (const [id, body] of before) digests.set(id, (await fetch(`${origin.url}/v2/${id.split(' ')[0]}/manifests/latest`, { method: 'HEAD', headers: { accept: id.split(' ')[1]! } })).headers.get('docker-content-digest')!);

  const blobs = await objects.list('blobs/sha256');
  const manifests = await objects.list('manifests/sha256');
  assert.ok(blobs.length >= 4 && manifests.length >= 4, `${blobs.length} blobs, ${manifests.length} manifests`);
  // Truncate one blob and one manifest; delete every other blob and manifest.
  const [truncatedBlob, ...deletedBlobs] = blobs;
  const [truncatedManifest, ...deletedManifests] = manifests;
  for (const key of [truncatedBlob!, truncatedManifest!]) {
    const bytes = await objects.read(key);
    await objects.write(key, bytes.slice(0, Math.floor(bytes.length / 2)));
  }
  for (const key of [...deletedBlobs, ...deletedManifests]) await objects.remove(key);
  t.diagnostic(`damaged ${blobs.length} blobs and ${manifests.length} manifests`);

  // By digest first (what the edge asks for), then by tag with skopeo.
  for (const [id, body] of before) {
    const [name] = id.split(' ');
    const res = await fetch(`${origin.url}/v2/${name}/manifests/${digests.get(id)}`);
    assert.equal(await res.text(), body, `${id} by digest`);
  }
  assert.deepEqual(await manifestsByTag(origin), before);
  for (const name of IMAGES) {
    const image = await pullAndUnpack(`127.0.0.1:${origin.port}`, `${name}:latest`);
    await image.remove();
  }
  assert.deepEqual((await objects.list('blobs/sha256')).sort(), [...blobs].sort());
  assert.deepEqual((await objects.list('manifests/sha256')).sort(), [...manifests].sort());
  for (const key of [truncatedBlob!, truncatedManifest!]) {
    const bytes = await objects.read(key);
    assert.equal(`sha256:${Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex')}`, `sha256:${key.split('/').at(-1)}`, `${key} is whole again`);
  }
}

test('filesystem: deleted and truncated blobs and manifests are rebuilt with their digests, and every image pulls again', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin();
  defer(() => origin.stop());
  await damageAndPullAgain(t, origin, filesystemObjects(origin));
  assert.ok(origin.logs.some((l) => l.msg === 'lost blob rebuilt from its layer record'));
  assert.ok(origin.logs.some((l) => l.msg === 'lost manifest or config re-derived from its image record'));
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  const rebuilt = Number(/^nixery_origin_blobs_rebuilt_total (\d+)$/m.exec(metrics)?.[1]);
  assert.equal(rebuilt, origin.logs.filter((l) => l.msg === 'lost blob rebuilt from its layer record').length);
  assert.ok(rebuilt > 0);
  assert.ok(Number(/^nixery_origin_manifests_rederived_total (\d+)$/m.exec(metrics)?.[1]) > 0);
});

test('GCS: deleted and truncated blobs and manifests are rebuilt with their digests, and every image pulls again', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const emulator = await startGcsEmulator();
  defer(() => emulator.stop());
  const keys = serviceAccountKeys();
  const bucket = 'nixery-edge-recovery';
  const origin = await startOrigin({ env: gcsOriginEnv(emulator, bucket, keys.privateKey) });
  defer(() => origin.stop());
  await damageAndPullAgain(t, origin, gcsObjects(emulator.url, bucket));
});

test('a lost layer blob whose index entry is gone too answers 404 BLOB_UNKNOWN', { timeout: 600_000 }, async (t) => {
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

test('a config cut short is as good as missing: asked for, it is derived again with its digest', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin();
  defer(() => origin.stop());
  const res = await fetch(`${origin.url}/v2/hello/manifests/latest`, { headers: { accept: MEDIA.ociManifest } });
  const config = (JSON.parse(await res.text()) as { config: { digest: string; size: number } }).config;
  const path = join(origin.storagePath, 'blobs/sha256', config.digest.slice('sha256:'.length));
  const whole = await readFile(path);
  assert.equal(whole.length, config.size);
  await writeFile(path, whole.subarray(0, whole.length - 10));
  const blob = await fetch(`${origin.url}/v2/hello/blobs/${config.digest}`);
  assert.equal(blob.status, 200);
  const bytes = new Uint8Array(await blob.arrayBuffer());
  assert.equal(`sha256:${Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex')}`, config.digest);
  assert.deepEqual(await readFile(path), whole);
  assert.ok(origin.logs.some((l) => l.msg === 'lost manifest or config re-derived from its image record'));
});

test('filesystem: blobs, manifests and records deleted at random are scrubbed, and every image pulls again with the same manifests', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const storagePath = await mkdtemp(join(tmpdir(), 'nixery-edge-damage-'));
  defer(() => rm(storagePath, { recursive: true, force: true }));
  const env = { NIXERY_RETENTION_DAYS: '0' };
  await randomDamageScrubAndPull(t, () => startOrigin({ storagePath, env }), filesystemObjects({ storagePath }), { STORAGE_PATH: storagePath });
});

test('GCS: blobs, manifests and records deleted at random are scrubbed, and every image pulls again with the same manifests', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const emulator = await startGcsEmulator();
  defer(() => emulator.stop());
  const keys = serviceAccountKeys();
  const bucket = 'nixery-edge-random-damage';
  const env = gcsOriginEnv(emulator, bucket, keys.privateKey);
  await randomDamageScrubAndPull(t, () => startOrigin({ env: { ...env, NIXERY_RETENTION_DAYS: '0' } }), gcsObjects(emulator.url, bucket), env);
});

// `npm run gc` for real: the CLI spawned as an operator runs it, beside a
// real origin that built the images with Nix, on filesystem storage. Days of
// idleness are made by moving files' times back, which is what the
// filesystem backend reads as "written".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { runGc } from '../support/gc-cli.ts';
import { eventually } from '../support/eventually.ts';
import { pullAndUnpack } from '../support/clients.ts';
import { deferrer } from '../support/cleanup.ts';
import { MEDIA } from '../../shared/media-types.ts';
import type { ImageRecord } from '../../origin/image/image-store.ts';

const DAY = 86_400_000;
/** The origin's own scheduled runs are off here, so what the CLI reports is all that was deleted. */
const SCHEDULE_OFF = { NIXERY_RETENTION_DAYS: '0' };

function gc(storagePath: string, args: string[], env: Record<string, string> = {}) {
  return runGc(args, { STORAGE_PATH: storagePath, ...env });
}

/** Every object key in filesystem storage (staging excluded). */
async function storedKeys(root: string): Promise<string[]> {
  const files = await readdir(root, { recursive: true, withFileTypes: true });
  return files
    .filter((f) => f.isFile())
    .map((f) => relative(root, join(f.parentPath, f.name)))
    .filter((k) => !k.startsWith('.tmp/'))
    .sort();
}

async function age(root: string, key: string, ms: number): Promise<void> {
  const when = new Date(Date.now() - ms);
  await utimes(join(root, key), when, when);
}

async function manifestDigest(origin: RunningOrigin, name: string): Promise<string> {
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept: MEDIA.dockerManifest } });
  assert.equal(res.status, 200, await res.text());
  return res.headers.get('docker-content-digest')!;
}

/** The image records in storage, by image key. */
async function records(root: string): Promise<Map<string, ImageRecord>> {
  const out = new Map<string, ImageRecord>();
  for (const file of await readdir(join(root, 'images'))) out.set(file.replace(/\.json$/, ''), JSON.parse(await readFile(join(root, 'images', file), 'utf8')) as ImageRecord);
  return out;
}

function objectKeys(record: ImageRecord): string[] {
  const hex = (d: string) => d.slice('sha256:'.length);
  return [
    `blobs/sha256/${hex(record.config!)}`,
    `manifests/sha256/${hex(record.manifests.docker.digest)}`,
    `manifests/sha256/${hex(record.manifests.oci.digest)}`,
    ...record.recipe!.layers.map((l) => `blobs/sha256/${hex(l.digest)}`),
  ];
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

test('gc --dry-run lists what only an idle image used and deletes nothing; gc deletes exactly that; the image pulls again by tag, and by its old digest once built again', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ env: SCHEDULE_OFF });
  defer(() => origin.stop());
  const root = origin.storagePath;
  const helloDigest = await manifestDigest(origin, 'hello');
  await manifestDigest(origin, 'shell/hello');
  const byKey = await records(root);
  assert.equal(byKey.size, 2);
  const [helloKey, hello] = [...byKey].find(([, r]) => r.manifests.docker.digest === helloDigest)!;
  const [shellKey, shell] = [...byKey].find(([k]) => k !== helloKey)!;

  // Both images written 40 days ago; hello last pulled then too, shell/hello just now (their usage records, origin/gc/usage.ts).
  for (const key of await storedKeys(root)) await age(root, key, 40 * DAY);
  await writeFile(join(root, 'usage', `${helloKey}.json`), JSON.stringify({ lastUsed: Date.now() - 40 * DAY }));
  await writeFile(join(root, 'usage', `${shellKey}.json`), JSON.stringify({ lastUsed: Date.now() }));
  const before = await storedKeys(root);
  const onlyHello = objectKeys(hello).filter((k) => !objectKeys(shell).includes(k)).sort();
  assert.ok(onlyHello.length >= 3, `hello alone uses ${onlyHello.join(' ')}`);
  const helloBytes = (await Promise.all(onlyHello.map(async (k) => (await stat(join(root, k))).size))).reduce((a, b) => a + b, 0);

  const dry = await gc(root, ['--dry-run']);
  assert.equal(dry.exitCode, 0, dry.stderr);
  const lines = dry.stdout.split('\n');
  assert.deepEqual(lines.filter((l) => l.startsWith('would delete image ')), [`would delete image ${helloKey}`]);
  assert.deepEqual(lines.filter((l) => /^would delete (blobs|manifests)\//.test(l)).map((l) => l.split(' ')[2]).sort(), onlyHello);
  assert.match(dry.stdout, new RegExp(`^retention \\(dry run\\): 1 images, ${onlyHello.length} objects, .*\\(${helloBytes} bytes\\)`, 'm'));
  assert.deepEqual(await storedKeys(root), before, 'a dry run deletes nothing');

  const run = await gc(root, []);
  assert.equal(run.exitCode, 0, run.stderr);
  assert.deepEqual(run.stdout.split('\n').filter((l) => /^deleted (blobs|manifests)\//.test(l)).map((l) => l.split(' ')[1]).sort(), onlyHello);
  const after = await storedKeys(root);
  for (const key of [...onlyHello, `images/${helloKey}.json`, `usage/${helloKey}.json`]) assert.ok(!after.includes(key), `${key} is gone`);
  for (const key of [...objectKeys(shell), `images/${shellKey}.json`]) assert.ok(after.includes(key), `${key} stays`);
  // The layer records of hello's own layers outlive their blobs by the grace period.
  for (const layer of hello.recipe!.layers) {
    if (onlyHello.includes(`blobs/sha256/${layer.digest.slice(7)}`)) assert.ok(after.includes(`blob-sources/sha256/${layer.digest.slice(7)}.json`));
  }

  // Two days on, past the grace period: the records of hello's own layers go too.
  for (const key of after) await age(root, key, 2 * DAY);
  const records2 = await gc(root, []);
  assert.equal(records2.exitCode, 0, records2.stderr);
  const deadRecords = records2.stdout.split('\n').filter((l) => l.startsWith('deleted record ')).map((l) => l.slice('deleted record '.length));
  const ownLayers = hello.recipe!.layers.map((l) => l.digest.slice(7)).filter((hex) => onlyHello.includes(`blobs/sha256/${hex}`));
  assert.deepEqual(deadRecords.filter((k) => k.startsWith('blob-sources/')).sort(), ownLayers.map((hex) => `blob-sources/sha256/${hex}.json`).sort());
  assert.equal(deadRecords.filter((k) => k.startsWith('layers/')).length, ownLayers.length);

  // By digest, before anything built it again: unknown.
  const gone = await fetch(`${origin.url}/v2/hello/manifests/${helloDigest}`);
  assert.equal(gone.status, 404);
  assert.equal(((await gone.json()) as { errors: { code: string }[] }).errors[0]!.code, 'MANIFEST_UNKNOWN');
  // By tag: built again (the origin still remembered the record, and the layers' records, in memory), with the same digest.
  for (const name of ['shell/hello', 'hello']) await (await pullAndUnpack(`127.0.0.1:${origin.port}`, `${name}:latest`)).remove();
  assert.equal(await manifestDigest(origin, 'hello'), helloDigest);
  assert.equal(origin.logs.filter((l) => l.msg === 'image built' && JSON.stringify(l.packages) === '["hello"]').length, 2, 'built once, then again after gc');
  assert.equal((await fetch(`${origin.url}/v2/hello/manifests/${helloDigest}`)).status, 200);
});

test('gc --verify makes a damaged layer and a truncated config again and exits 0; a blob nothing can make again drops its image, exits 1, and the image pulls after it is built again', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  let origin = await startOrigin({ env: SCHEDULE_OFF });
  const root = origin.storagePath;
  defer(() => rm(root, { recursive: true, force: true }));
  defer(() => origin.stop());
  const digest = await manifestDigest(origin, 'hello');
  const stored = [...(await records(root))];
  assert.equal(stored.length, 1);
  const [key, record] = stored[0]!;
  assert.equal(record.manifests.docker.digest, digest);
  const layer = record.recipe!.layers[0]!.digest.slice(7);
  const config = record.config!.slice(7);

  // A flipped byte in a layer (same size: only a digest check sees it), a config cut in half.
  const layerBytes = await readFile(join(root, 'blobs/sha256', layer));
  layerBytes[Math.floor(layerBytes.length / 2)]! ^= 0xff;
  await writeFile(join(root, 'blobs/sha256', layer), layerBytes);
  const configBytes = await readFile(join(root, 'blobs/sha256', config));
  await writeFile(join(root, 'blobs/sha256', config), configBytes.subarray(0, configBytes.length >> 1));

  const repaired = await gc(root, ['--verify']);
  assert.equal(repaired.exitCode, 0, repaired.stdout + repaired.stderr);
  assert.match(repaired.stdout, new RegExp(`^damaged blobs/sha256/${layer}: made again$`, 'm'));
  assert.match(repaired.stdout, new RegExp(`^damaged blobs/sha256/${config}: made again$`, 'm'));
  assert.match(repaired.stdout, /^scrub: read \d+ objects, .*; 2 damaged \(2 made again\), 0 missing .* 0 image records dropped$/m);
  for (const hex of [layer, config]) assert.equal(sha256(await readFile(join(root, 'blobs/sha256', hex))), `sha256:${hex}`);

  // A lost blob whose layer record is lost too: nothing can make it again.
  await rm(join(root, 'blobs/sha256', layer));
  await rm(join(root, 'blob-sources/sha256', `${layer}.json`));
  const beyond = await gc(root, ['--verify']);
  assert.equal(beyond.exitCode, 1, beyond.stdout + beyond.stderr);
  assert.match(beyond.stdout, new RegExp(`^missing sha256:${layer} of image ${key}: cannot be made again$`, 'm'));
  assert.match(beyond.stdout, new RegExp(`^dropped image record ${key}: `, 'm'));
  assert.ok(!(await storedKeys(root)).includes(`images/${key}.json`));

  // A replica that read the record before serves it from memory for a while; a fresh one builds the image again.
  await origin.stop({ keepStorage: true });
  origin = await startOrigin({ storagePath: root, env: SCHEDULE_OFF });
  await (await pullAndUnpack(`127.0.0.1:${origin.port}`, 'hello:latest')).remove();
  assert.equal(await manifestDigest(origin, 'hello'), digest);
  const clean = await gc(root, ['--verify']);
  assert.equal(clean.exitCode, 0, clean.stdout + clean.stderr);
  assert.match(clean.stdout, /; 0 damaged \(0 made again\), 0 missing \(0 made again\)/);
});

test('gc refuses unknown flags and a bad configuration with exit status 2, and does nothing with retention off', { timeout: 60_000 }, async () => {
  const bad = await gc('/nonexistent', ['--force']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /usage: npm run gc/);
  const config = await gc('/nonexistent', [], { NIXERY_RETENTION_DAYS: 'soon' });
  assert.equal(config.exitCode, 2);
  assert.match(config.stderr, /NIXERY_RETENTION_DAYS: must be a whole number/);
  const off = await gc('/nonexistent', [], { NIXERY_RETENTION_DAYS: '0' });
  assert.equal(off.exitCode, 0, off.stderr);
  assert.match(off.stdout, /retention is off/);
});

test('the origin runs retention on its schedule, one log line a run, never deleting what a build just wrote, and reports it in its metrics', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ env: { NIXERY_RETENTION_DAYS: '1', NIXERY_RETENTION_INTERVAL: '1' } });
  defer(() => origin.stop());
  await manifestDigest(origin, 'hello');
  const kept = await storedKeys(origin.storagePath);
  const runs = () => origin.logs.filter((l) => l.msg === 'retention run');
  // Two more runs after the build: the second surely listed what it wrote.
  const before = runs().length;
  await eventually(() => runs().length >= before + 2, 'two retention runs', 30_000);
  for (const run of runs()) {
    assert.equal(run.images, 0);
    assert.equal(run.objects, 0);
  }
  const last = runs().at(-1)!;
  assert.ok(Number(last.storedObjects) >= 4, `storedObjects ${String(last.storedObjects)}`);
  for (const key of kept) assert.ok((await storedKeys(origin.storagePath)).includes(key), `${key} stays`);
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  assert.ok(Number(/^nixery_origin_retention_runs_total\{outcome="done"\} (\d+)$/m.exec(metrics)?.[1]) >= 2, metrics);
  assert.ok(Number(/^nixery_origin_storage_objects (\d+)$/m.exec(metrics)?.[1]) >= 4);
  assert.ok(Number(/^nixery_origin_storage_bytes (\d+)$/m.exec(metrics)?.[1]) > 0);
  assert.match(metrics, /^nixery_origin_retention_bytes_freed_total 0$/m);
  assert.match(metrics, /^nixery_origin_retention_run_duration_seconds_count \d+$/m);
});

test('a build that found its layers before gc deleted them, and wrote its image record after, pulls whole: its blobs are rebuilt from the layer records gc keeps', { timeout: 600_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin({ env: SCHEDULE_OFF });
  defer(() => origin.stop());
  const root = origin.storagePath;
  const digest = await manifestDigest(origin, 'hello');
  const [[key, record]] = [...(await records(root))] as [[string, ImageRecord]];
  // The build's last step (image/image-store.ts remember: image-sources, then the record) has not happened yet.
  const remembered = [
    `images/${key}.json`,
    ...[record.config!, record.manifests.docker.digest, record.manifests.oci.digest].map((d) => `image-sources/sha256/${d.slice(7)}.json`),
  ];
  const held = await Promise.all(remembered.map(async (k) => [k, await readFile(join(root, k))] as const));
  for (const k of remembered) await rm(join(root, k));
  for (const k of await storedKeys(root)) await age(root, k, 40 * DAY);

  const run = await gc(root, []);
  assert.equal(run.exitCode, 0, run.stderr);
  for (const layer of record.recipe!.layers) assert.match(run.stdout, new RegExp(`^deleted blobs/sha256/${layer.digest.slice(7)} `, 'm'));

  // Now the build remembers its image, naming the layers gc just deleted.
  for (const [k, bytes] of held) await writeFile(join(root, k), bytes);
  await (await pullAndUnpack(`127.0.0.1:${origin.port}`, 'hello:latest')).remove();
  assert.equal(await manifestDigest(origin, 'hello'), digest);
  assert.equal(origin.logs.filter((l) => l.msg === 'lost blob rebuilt from its layer record').length, record.recipe!.layers.length);
  assert.equal(origin.logs.filter((l) => l.msg === 'image built').length, 1, 'not built again: every part was made from the records');
});

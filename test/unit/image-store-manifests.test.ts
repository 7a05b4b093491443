// ImageStore.manifest keeps manifests it read in memory, so that a cached
// pull costs at most a stat rather than a whole read (and nothing within
// MANIFEST_RECHECK_MS of the last stat), and never answers from memory what
// storage no longer holds whole once that window has passed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '../../shared/digest.ts';
import { digestHex } from '../../shared/digest.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { ImageStore, MANIFEST_RECHECK_MS } from '../../origin/image/image-store.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { deferrer } from '../support/cleanup.ts';

/** A real filesystem storage that counts the whole reads and the stats made of it. */
class CountingStorage extends FilesystemStorage {
  gets = 0;
  stats = 0;
  override async get(key: string): Promise<Uint8Array | null> {
    this.gets++;
    return super.get(key);
  }
  override async stat(key: string): ReturnType<FilesystemStorage['stat']> {
    this.stats++;
    return super.stat(key);
  }
}

/** Past the window in which a manifest in memory is answered without a stat. */
const pastRecheck = () => sleep(MANIFEST_RECHECK_MS + 20);

const encoder = new TextEncoder();
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

function manifestBytes(n: number): { bytes: Uint8Array; digest: Digest } {
  const bytes = encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, n }));
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest };
}

async function setUp(t: Parameters<typeof deferrer>[0]) {
  const defer = deferrer(t);
  const dir = await mkdtemp(join(tmpdir(), 'image-store-manifests-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const storage = new CountingStorage(dir);
  await storage.init();
  return { storage, images: new ImageStore(storage) };
}

test('a manifest read once is answered again from memory, with the same bytes and media type', { timeout: 30_000 }, async (t) => {
  const { storage, images } = await setUp(t);
  const m = manifestBytes(1);
  await storage.put(STORAGE_KEYS.manifest(digestHex(m.digest)), m.bytes, MEDIA.ociManifest);
  const first = await images.manifest(m.digest);
  assert.ok(first && same(first.bytes, m.bytes));
  assert.equal(first.mediaType, MEDIA.ociManifest);
  assert.equal(storage.gets, 1);
  const again = await images.manifest(m.digest);
  assert.ok(again && same(again.bytes, m.bytes));
  assert.equal(again.mediaType, MEDIA.ociManifest);
  assert.equal(storage.gets, 1, 'no second read');
});

test('within MANIFEST_RECHECK_MS of its last check a manifest costs no storage call; past it, one stat', { timeout: 30_000 }, async (t) => {
  const { storage, images } = await setUp(t);
  const m = manifestBytes(5);
  await storage.put(STORAGE_KEYS.manifest(digestHex(m.digest)), m.bytes, MEDIA.ociManifest);
  await images.manifest(m.digest);
  const before = { gets: storage.gets, stats: storage.stats };
  for (let i = 0; i < 50; i++) assert.ok(await images.manifest(m.digest));
  assert.deepEqual({ gets: storage.gets, stats: storage.stats }, before, 'a burst of pulls within the window asks storage nothing');
  await pastRecheck();
  assert.ok(await images.manifest(m.digest));
  assert.equal(storage.stats, before.stats + 1, 'past the window: one stat');
  assert.ok(await images.manifest(m.digest));
  assert.equal(storage.stats, before.stats + 1, 'and the window starts again from that stat');
  assert.equal(storage.gets, before.gets, 'never a whole read');
});

test('a manifest deleted from storage behind the store’s back is not answered from memory past the window', { timeout: 30_000 }, async (t) => {
  const { storage, images } = await setUp(t);
  const m = manifestBytes(2);
  const key = STORAGE_KEYS.manifest(digestHex(m.digest));
  await storage.put(key, m.bytes, MEDIA.ociManifest);
  assert.ok(await images.manifest(m.digest));
  await storage.delete(key);
  // Within the window another process's deletion is not seen yet: that is the window's whole cost.
  assert.ok(await images.manifest(m.digest));
  await pastRecheck();
  assert.equal(await images.manifest(m.digest), null);
  // Written again (a rebuild): read from storage again.
  await storage.put(key, m.bytes, MEDIA.ociManifest);
  assert.ok(await images.manifest(m.digest));
});

test('a truncated manifest is read again rather than answered from memory, and a damaged one is never remembered', { timeout: 30_000 }, async (t) => {
  const { storage, images } = await setUp(t);
  const m = manifestBytes(3);
  const key = STORAGE_KEYS.manifest(digestHex(m.digest));
  await storage.put(key, m.bytes, MEDIA.ociManifest);
  assert.ok(await images.manifest(m.digest));
  // Truncated in storage: another size than the copy in memory, so storage is read (and its damage seen by the caller).
  const damaged = encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest }));
  await storage.put(key, damaged, MEDIA.ociManifest);
  await pastRecheck();
  const read = await images.manifest(m.digest);
  assert.ok(read && same(read.bytes, damaged));
  assert.equal(storage.gets, 2);
  // Not what the digest says: not remembered, so each request reads storage until recovery writes it whole.
  await images.manifest(m.digest);
  assert.equal(storage.gets, 3);
  await storage.put(key, m.bytes, MEDIA.ociManifest);
  const repaired = await images.manifest(m.digest);
  assert.ok(repaired && same(repaired.bytes, m.bytes));
});

test('forgetManifest drops a manifest from memory', { timeout: 30_000 }, async (t) => {
  const { storage, images } = await setUp(t);
  const m = manifestBytes(4);
  await storage.put(STORAGE_KEYS.manifest(digestHex(m.digest)), m.bytes, MEDIA.ociManifest);
  await images.manifest(m.digest);
  images.forgetManifest(m.digest);
  await images.manifest(m.digest);
  assert.equal(storage.gets, 2);
});

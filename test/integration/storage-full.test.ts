// Filesystem storage on a full file system (a small tmpfs, so as root): a write
// fails with an error the registry answers as 503 "storage is full", leaves no
// partial object and no temp file, and what is stored stays readable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { storageFullError } from '../../origin/storage/storage-full.ts';
import { deferrer } from '../support/cleanup.ts';

async function fullStorage(t: import('node:test').TestContext): Promise<{ storage: FilesystemStorage; root: string }> {
  const defer = deferrer(t);
  const root = await mkdtemp(join(tmpdir(), 'storage-full-'));
  defer(() => rm(root, { recursive: true, force: true }));
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', root]);
  defer(() => execa('umount', [root]));
  const storage = new FilesystemStorage(root);
  await storage.init();
  return { storage, root };
}

test('a put that does not fit fails as "storage is full", leaves no temp file, and stored objects stay readable', { timeout: 60_000 }, async (t) => {
  const { storage, root } = await fullStorage(t);
  await storage.put('blobs/sha256/small', new Uint8Array(16 * 1024).fill(1), 'application/octet-stream');
  const big = new Uint8Array(1024 * 1024).fill(2);
  const err = await storage.put('blobs/sha256/big', big, 'application/octet-stream').then(() => null, (e: unknown) => e);
  assert.ok(err, 'the put must fail on a 256 KiB file system');
  const answer = storageFullError(err);
  assert.ok(answer, `expected a storage-full error, got ${String(err)}`);
  assert.equal(answer.status, 503);
  assert.equal(await storage.stat('blobs/sha256/big'), null);
  assert.deepEqual(await readdir(join(root, '.tmp')), []);
  assert.equal((await storage.get('blobs/sha256/small'))?.byteLength, 16 * 1024);
  // Space is back once the failed write is gone: small writes (a /readyz round trip) still work.
  await storage.put('health/replica', new TextEncoder().encode('ok'), 'text/plain');
  assert.equal(new TextDecoder().decode((await storage.get('health/replica'))!), 'ok');
});

test('many failed small writes leave no 0-byte temp files behind', { timeout: 60_000 }, async (t) => {
  const { storage, root } = await fullStorage(t);
  // Fill the file system: ever smaller objects until not even 4 KiB fits.
  for (let size = 128 * 1024, i = 0; size >= 4096; i++) {
    await storage.put(`blobs/sha256/fill${i}`, new Uint8Array(size), 'application/octet-stream').catch(() => (size /= 2));
  }
  let failures = 0;
  for (let i = 0; i < 20; i++) {
    await storage.put(`health/r${i}`, new Uint8Array(8 * 1024), 'text/plain').catch((e: unknown) => {
      assert.ok(storageFullError(e), String(e));
      failures++;
    });
  }
  assert.ok(failures > 0, 'the file system must be full for this test to mean anything');
  assert.deepEqual(await readdir(join(root, '.tmp')), []);
});

test('a staged write that runs out of space fails its commit, and neither the key nor a temp file remains', { timeout: 60_000 }, async (t) => {
  const { storage, root } = await fullStorage(t);
  const staged = await storage.stage();
  staged.stream.on('error', () => undefined);
  staged.stream.end(new Uint8Array(1024 * 1024).fill(3));
  const err = await staged.commit('blobs/sha256/staged', 'application/octet-stream').then(() => null, (e: unknown) => e);
  assert.ok(storageFullError(err), `expected a storage-full error, got ${String(err)}`);
  await staged.abort();
  assert.equal(await storage.stat('blobs/sha256/staged'), null);
  assert.deepEqual(await readdir(join(root, '.tmp')), []);
});

test('an origin whose storage fills up answers a build 503 "storage is full" with Retry-After, keeps no temp file, and still serves', { timeout: 300_000 }, async (t) => {
  const { startOrigin } = await import('../support/origin.ts');
  const { root } = await fullStorage(t);
  const defer = deferrer(t);
  const origin = await startOrigin({ storagePath: root });
  defer(() => origin.stop({ keepStorage: true }));
  const res = await fetch(`${origin.url}/v2/hello/manifests/latest`);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  assert.equal(res.status, 503, JSON.stringify(body));
  assert.equal(res.headers.get('retry-after'), '60');
  assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
  assert.match(body.errors[0]!.message, /^storage is full: ENOSPC/);
  // The build's other layer writes may still be failing when the answer goes out; none may stay.
  const { eventually } = await import('../support/eventually.ts');
  let left: string[] = [];
  const poll = setInterval(() => void readdir(join(root, '.tmp')).then((names) => (left = names)), 50);
  left = await readdir(join(root, '.tmp'));
  try {
    await eventually(() => left.length === 0, `no temp files left (${left.join(' ')})`, 10_000);
  } finally {
    clearInterval(poll);
  }
  // The origin keeps answering what needs no space.
  assert.equal((await fetch(`${origin.url}/v2/`)).status, 200);
  for (let i = 0; i < 5; i++) await fetch(`${origin.url}/readyz`);
  assert.deepEqual(await readdir(join(root, '.tmp')), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';

async function withStorage(fn: (s: FilesystemStorage, root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'fs-storage-'));
  try {
    const storage = new FilesystemStorage(root);
    await storage.init();
    await fn(storage, root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const text = (b: Uint8Array | null) => (b === null ? null : new TextDecoder().decode(b));

test('a staged write is invisible under its key until committed, and abort leaves nothing behind', async () => {
  await withStorage(async (storage, root) => {
    const staged = await storage.stage();
    staged.stream.write('partial ');
    assert.equal(await storage.stat('blobs/sha256/aa'), null);
    staged.stream.end('complete');
    await staged.commit('blobs/sha256/aa', 'application/octet-stream');
    assert.equal(text(await storage.get('blobs/sha256/aa')), 'partial complete');

    const aborted = await storage.stage();
    aborted.stream.write('never');
    await aborted.abort();
    assert.deepEqual(await readdir(join(root, '.tmp')), []);
  });
});

test('create-only writes keep the existing object; plain writes replace it', async () => {
  await withStorage(async (storage) => {
    await storage.put('layers/x.json', new TextEncoder().encode('first'), 'application/json', { createOnly: true });
    await storage.put('layers/x.json', new TextEncoder().encode('second'), 'application/json', { createOnly: true });
    assert.equal(text(await storage.get('layers/x.json')), 'first');
    await storage.put('layers/x.json', new TextEncoder().encode('third'), 'application/json');
    assert.equal(text(await storage.get('layers/x.json')), 'third');
  });
});

test('ranges read the requested bytes and missing objects read as null', async () => {
  await withStorage(async (storage) => {
    await storage.put('blobs/sha256/bb', new TextEncoder().encode('0123456789'), 'application/octet-stream');
    const stream = await storage.read('blobs/sha256/bb', { start: 2, end: 5 });
    const chunks: Buffer[] = [];
    for await (const c of stream!) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), '2345');
    assert.equal(await storage.read('blobs/sha256/none'), null);
    assert.deepEqual(await storage.stat('blobs/sha256/bb'), { size: 10 });
  });
});

test('keys that could escape the storage root are refused', async () => {
  await withStorage(async (storage) => {
    for (const key of ['../x', 'a/../../x', '/etc/passwd', 'a//b', '.tmp/x', 'a/./b']) {
      await assert.rejects(storage.put(key, new Uint8Array(1), 'x'), /invalid storage key|escapes/, key);
    }
  });
});

test('staging leftovers older than the limit are swept from .tmp/; younger ones stay', async () => {
  await withStorage(async (storage, root) => {
    const { writeFile } = await import('node:fs/promises');
    const now = Date.now();
    await writeFile(join(root, '.tmp', `${now - 2 * 3_600_000}-0123abcd`), 'old leftover');
    await writeFile(join(root, '.tmp', `${now - 60_000}-4567abcd`), 'in flight');
    assert.deepEqual(await storage.sweepStaging(now, 3_600_000), { removed: 1, bytes: 'old leftover'.length });
    assert.deepEqual(await readdir(join(root, '.tmp')), [`${now - 60_000}-4567abcd`]);
  });
});

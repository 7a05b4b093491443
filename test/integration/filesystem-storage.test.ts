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
    // The time written is the listing's, so retention can tell a record written again since it listed.
    let listed: number | undefined;
    for await (const object of storage.list('blobs/sha256/')) if (object.key === 'blobs/sha256/bb') listed = object.written;
    assert.deepEqual(await storage.stat('blobs/sha256/bb'), { size: 10, written: listed });
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

test('a listing names every object under a prefix with its size and time written, never staged writes or other prefixes', async () => {
  await withStorage(async (storage, root) => {
    const { utimes, writeFile } = await import('node:fs/promises');
    const before = Date.now();
    await storage.put('blobs/sha256/aa', new TextEncoder().encode('12345'), 'application/octet-stream');
    await storage.put('blobs/sha256/bb', new TextEncoder().encode('1'), 'application/octet-stream');
    await storage.put('blob-sources/sha256/aa.json', new TextEncoder().encode('{}'), 'application/json');
    await storage.put('images/k.json', new TextEncoder().encode('{}'), 'application/json');
    await writeFile(join(root, '.tmp', `${before}-0123abcd`), 'staged');
    const old = new Date('2020-01-02T03:04:05Z');
    await utimes(join(root, 'blobs/sha256/bb'), old, old);
    const listed = [];
    for await (const object of storage.list('blobs/')) listed.push(object);
    listed.sort((a, b) => a.key.localeCompare(b.key));
    assert.deepEqual(listed.map((o) => [o.key, o.size]), [['blobs/sha256/aa', 5], ['blobs/sha256/bb', 1]]);
    assert.ok(listed[0]!.written >= before - 1000 && listed[0]!.written <= Date.now() + 1000, `${listed[0]!.written} is about now`);
    assert.equal(listed[1]!.written, old.getTime());
    const everything = [];
    for await (const object of storage.list('')) everything.push(object.key);
    assert.deepEqual(everything.sort(), ['blob-sources/sha256/aa.json', 'blobs/sha256/aa', 'blobs/sha256/bb', 'images/k.json']);
    const none = [];
    for await (const object of storage.list('manifests/')) none.push(object);
    assert.deepEqual(none, []);
    for (const prefix of ['blobs', '../', '.tmp/', 'a//']) {
      await assert.rejects(async () => {
        for await (const object of storage.list(prefix)) assert.fail(object.key);
      }, /invalid/, prefix);
    }
  });
});

test('a listing of a directory of thousands of objects names each exactly once', async () => {
  await withStorage(async (storage, root) => {
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(join(root, 'blobs/sha256'), { recursive: true });
    const count = 3000;
    for (let i = 0; i < count; i++) await writeFile(join(root, 'blobs/sha256', i.toString(16).padStart(64, '0')), 'x');
    const seen = new Set<string>();
    for await (const object of storage.list('blobs/sha256/')) seen.add(object.key);
    assert.equal(seen.size, count);
  });
});

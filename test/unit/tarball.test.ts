import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, symlink, chmod, utimes, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { Writable, Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { storePathEntries } from '../../origin/layers/entries.ts';
import { symlinkTreeEntries } from '../../origin/layers/symlink-tree.ts';
import { writeLayerTarball } from '../../origin/layers/tarball.ts';
import { DeflatePool } from '../../origin/layers/deflate-pool.ts';

class Collect extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

interface Seen {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  linkname: string | null;
  content: Buffer;
}

async function listTar(tar: Buffer): Promise<Seen[]> {
  const seen: Seen[] = [];
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => {
      seen.push({
        name: header.name,
        type: header.type ?? 'file',
        mode: header.mode ?? 0,
        uid: header.uid ?? -1,
        gid: header.gid ?? -1,
        uname: header.uname ?? '',
        gname: header.gname ?? '',
        mtime: header.mtime?.getTime() ?? -1,
        linkname: header.linkname ?? null,
        content: Buffer.concat(chunks),
      });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve).on('error', reject);
    Readable.from([tar]).pipe(ex);
  });
  return seen;
}

async function makeStore(root: string, tweak: boolean): Promise<string[]> {
  const a = join(root, 'aaaa-liba');
  const b = join(root, 'bbbb-app');
  await mkdir(join(a, 'lib'), { recursive: true });
  await mkdir(join(b, 'bin'), { recursive: true });
  await writeFile(join(a, 'lib', 'liba.so'), 'library bytes '.repeat(1000));
  await writeFile(join(a, 'lib', 'copy.so'), 'library bytes '.repeat(1000));
  await writeFile(join(b, 'bin', 'app'), '#!/bin/sh\necho app\n');
  await chmod(join(b, 'bin', 'app'), tweak ? 0o700 : 0o755);
  const long = 'd'.repeat(90);
  await mkdir(join(b, 'share', long, long), { recursive: true });
  await writeFile(join(b, 'share', long, long, 'f'.repeat(120)), 'deep');
  await symlink('../../aaaa-liba/lib/liba.so', join(b, 'bin', 'liba-link'));
  await symlink('/nix/store/' + 'x'.repeat(150), join(b, 'bin', 'long-target'));
  if (tweak) {
    await utimes(join(a, 'lib', 'liba.so'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    await chmod(join(a, 'lib', 'copy.so'), 0o600);
  }
  return [b, a];
}

async function layerOf(paths: string[], pool?: DeflatePool) {
  const sink = new Collect();
  const digests = await writeLayerTarball(await storePathEntries(paths), sink, pool ? { pool } : {});
  return { digests, gz: sink.bytes };
}

test('a layer is byte-identical whatever the timestamps, permissions and listing order of its files', async () => {
  const one = await mkdtemp(join(tmpdir(), 'layer-a-'));
  const two = await mkdtemp(join(tmpdir(), 'layer-a-'));
  try {
    // Twice from the same paths, given in another order: the same bytes.
    const first = await layerOf(await makeStore(one, false));
    const again = await layerOf([join(one, 'aaaa-liba'), join(one, 'bbbb-app')]);
    assert.equal(first.digests.digest, again.digests.digest);
    assert.ok(first.gz.equals(again.gz));

    const tweakedPaths = await makeStore(two, true);
    const tweaked = await layerOf(tweakedPaths);
    // Across two stores that differ in timestamps and permissions: the same entries, modulo the root's name.
    const strip = (entries: Seen[], root: string) =>
      entries.map((e) => ({ ...e, name: e.name.replace(root.slice(1), 'ROOT'), linkname: e.linkname?.replace(root.slice(1), 'ROOT') ?? null }));
    const a = strip(await listTar(gunzipSync(first.gz)), one);
    const b = strip(await listTar(gunzipSync(tweaked.gz)), two);
    assert.deepEqual(a, b);
  } finally {
    await rm(one, { recursive: true, force: true });
    await rm(two, { recursive: true, force: true });
  }
});

test('the digests are the sha256 of the compressed and of the uncompressed bytes', async () => {
  const root = await mkdtemp(join(tmpdir(), 'layer-d-'));
  try {
    const { digests, gz } = await layerOf(await makeStore(root, false));
    assert.equal(digests.digest, 'sha256:' + createHash('sha256').update(gz).digest('hex'));
    const tar = gunzipSync(gz);
    assert.equal(digests.diffId, 'sha256:' + createHash('sha256').update(tar).digest('hex'));
    assert.equal(digests.size, gz.length);
    assert.equal(digests.tarSize, tar.length);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('entries are sorted, canonical, with parents first, long names, symlinks and hard links preserved', async () => {
  const root = await mkdtemp(join(tmpdir(), 'layer-e-'));
  try {
    const { gz } = await layerOf(await makeStore(root, true));
    const entries = await listTar(gunzipSync(gz));
    const names = entries.map((e) => e.name);
    assert.deepEqual(names.slice(0, 2), ['nix/', 'nix/store/']);
    for (const e of entries) {
      assert.equal(e.uid, 0);
      assert.equal(e.gid, 0);
      assert.equal(e.uname, '');
      assert.equal(e.gname, '');
      assert.equal(e.mtime, 1000);
    }
    // Every entry's parent directory comes before it.
    const seen = new Set<string>();
    for (const e of entries) {
      const parent = e.name.replace(/\/?[^/]+\/?$/, '/');
      // The temporary root stands where /nix/store/ would: its own parents are not part of a layer.
      if (parent.startsWith(root.slice(1) + '/') && parent !== root.slice(1) + '/') assert.ok(seen.has(parent), `parent of ${e.name} comes first`);
      seen.add(e.name.endsWith('/') ? e.name : e.name + '/');
    }
    const byName = new Map(entries.map((e) => [e.name, e]));
    const r = root.slice(1);
    assert.equal(byName.get(`${r}/bbbb-app/bin/app`)?.mode, 0o555, 'executables are 0555 whatever the store says');
    assert.equal(byName.get(`${r}/aaaa-liba/lib/liba.so`)?.mode, 0o444);
    assert.equal(byName.get(`${r}/bbbb-app/bin/liba-link`)?.type, 'symlink');
    assert.equal(byName.get(`${r}/bbbb-app/bin/liba-link`)?.linkname, '../../aaaa-liba/lib/liba.so');
    assert.equal(byName.get(`${r}/bbbb-app/bin/long-target`)?.linkname, '/nix/store/' + 'x'.repeat(150));
    const long = 'd'.repeat(90);
    const deep = byName.get(`${r}/bbbb-app/share/${long}/${long}/${'f'.repeat(120)}`);
    assert.equal(deep?.content.toString(), 'deep', 'names past ustar limits survive through PAX headers');
    // Identical files: the first in order is stored, the next is a hard link to it.
    const copy = byName.get(`${r}/aaaa-liba/lib/copy.so`);
    const lib = byName.get(`${r}/aaaa-liba/lib/liba.so`);
    assert.equal(copy?.type, 'file');
    assert.equal(lib?.type, 'link');
    assert.equal(lib?.linkname, `${r}/aaaa-liba/lib/copy.so`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the symlink tree merges packages with real directories and links, the first package winning', async () => {
  const root = await mkdtemp(join(tmpdir(), 'layer-s-'));
  try {
    const one = join(root, '1111-one');
    const two = join(root, '2222-two');
    await mkdir(join(one, 'bin'), { recursive: true });
    await mkdir(join(one, 'etc', 'ssl'), { recursive: true });
    await mkdir(join(two, 'bin'), { recursive: true });
    await writeFile(join(one, 'bin', 'tool'), 'one');
    await writeFile(join(one, 'etc', 'ssl', 'cert'), 'c');
    await writeFile(join(two, 'bin', 'tool'), 'two');
    await writeFile(join(two, 'bin', 'other'), 'o');
    await symlink('tool', join(two, 'bin', 'alias'));
    await writeFile(join(root, '3333-single-file'), 'x');
    const entries = await symlinkTreeEntries([one, two, join(root, '3333-single-file')]);
    assert.deepEqual(
      entries.map((e) => [e.name, e.type === 'symlink' ? e.linkname : e.type]),
      [
        ['bin/', 'directory'],
        ['bin/alias', `${two}/bin/alias`],
        ['bin/other', `${two}/bin/other`],
        ['bin/tool', `${one}/bin/tool`],
        ['etc/', 'directory'],
        ['etc/group', 'file'],
        ['etc/nsswitch.conf', 'file'],
        ['etc/passwd', 'file'],
        ['etc/ssl/', 'directory'],
        ['etc/ssl/cert', `${one}/etc/ssl/cert`],
        ['root/', 'directory'],
        ['tmp/', 'directory'],
      ],
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a layer has the same digest compressed by one worker or by several', async () => {
  const root = await mkdtemp(join(tmpdir(), 'layer-w-'));
  const one = new DeflatePool(1);
  const three = new DeflatePool(3);
  try {
    const paths = await makeStore(root, false);
    // Big enough for many gzip pieces: text and incompressible bytes.
    await writeFile(join(paths[1]!, 'lib', 'big.txt'), Array.from({ length: 60_000 }, (_, i) => `symbol_${i} = 0x${(i * 40503).toString(16)}\n`).join(''));
    await writeFile(join(paths[1]!, 'lib', 'big.bin'), Buffer.concat(Array.from({ length: 8000 }, (_, i) => createHash('sha512').update(String(i)).digest())));
    const a = await layerOf(paths, one);
    const b = await layerOf(paths, three);
    assert.equal(a.digests.digest, b.digests.digest);
    assert.equal(a.digests.diffId, b.digests.diffId);
    assert.ok(a.digests.gzip.pieces > 4);
    assert.ok(a.digests.gzip.storedPieces >= 1, 'the hash bytes are stored, not deflated');
    assert.ok(a.gz.equals(b.gz));
  } finally {
    await Promise.all([one.close(), three.close()]);
    await rm(root, { recursive: true, force: true });
  }
});

test('an empty file is written from its recorded size without being opened, with the bytes of an empty file read from disk', async () => {
  const root = await mkdtemp(join(tmpdir(), 'layer-empty-'));
  try {
    await writeFile(join(root, 'empty'), '');
    const layer = async (source: string) => {
      const sink = new Collect();
      const digests = await writeLayerTarball([{ type: 'file', name: 'nix/store/aaaa-x/empty', mode: 0o444, size: 0, source }], sink);
      return { digests, tar: gunzipSync(sink.bytes) };
    };
    const read = await layer(join(root, 'empty'));
    // A source that cannot be opened shows the file is not opened.
    const unopened = await layer(join(root, 'no-such-file'));
    assert.deepEqual(unopened.digests, read.digests);
    // The digests the layer had when empty files were read through a stream like any other.
    assert.equal(read.digests.diffId, 'sha256:37248f4cee0a4077e1a8be3419f716d51b71136da4ee4ebb50a94e2310f5a513');
    assert.equal(read.digests.digest, 'sha256:fb378ebdb595c0bafd758866ac95412032382019f1882266010b2831fbb2ae2a');
    const [entry] = await listTar(read.tar);
    assert.equal(entry!.name, 'nix/store/aaaa-x/empty');
    assert.equal(entry!.content.length, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

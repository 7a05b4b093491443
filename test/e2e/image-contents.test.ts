// What an image holds besides its packages (cacert, iana-etc, /tmp, /etc
// files, /usr/bin/env), as skopeo and umoci see it, and the proof that none
// of it reaches the layers of store paths, which images share.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { pullAndUnpack } from '../support/clients.ts';
import { storePathEntries } from '../../origin/layers/entries.ts';
import { writeLayerTarball } from '../../origin/layers/tarball.ts';
import { MEDIA } from '../../shared/media-types.ts';

let origin: RunningOrigin;
let host: string;

before(async () => {
  origin = await startOrigin();
  host = `127.0.0.1:${origin.port}`;
});
after(async () => {
  await origin?.stop();
});

interface Manifest {
  config: { digest: string };
  layers: { digest: string }[];
}

async function manifest(name: string): Promise<Manifest> {
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept: MEDIA.dockerManifest } });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  return JSON.parse(body) as Manifest;
}

async function blob(name: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${origin.url}/v2/${name}/blobs/${digest}`);
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

async function imageConfig(name: string): Promise<{ config: { Env: string[]; Cmd?: string[] } }> {
  return JSON.parse((await blob(name, (await manifest(name)).config.digest)).toString()) as { config: { Env: string[]; Cmd?: string[] } };
}

/** The names in a layer blob, in order. */
async function layerNames(gzipped: Buffer): Promise<string[]> {
  const names: string[] = [];
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    names.push(header.name);
    stream.on('end', next);
    stream.resume();
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve).on('error', reject);
    Readable.from(gunzipSync(gzipped)).pipe(ex);
  });
  return names;
}

class Discard extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    cb();
  }
}

test('curl/jq unpacks to a root with /etc, /tmp and the CA bundle, without a dangling /usr/bin/env, and names no command', async () => {
  const image = await pullAndUnpack(host, 'curl/jq:latest');
  try {
    const root = (await readdir(image.rootfs)).sort();
    assert.deepEqual(root, ['bin', 'etc', 'nix', 'root', 'tmp'], 'no package of curl/jq has bin/env, so no /usr');
    const tmp = await lstat(join(image.rootfs, 'tmp'));
    assert.ok(tmp.isDirectory());
    assert.equal(tmp.mode & 0o7777, 0o1777);
    assert.match(await readFile(join(image.rootfs, 'etc/passwd'), 'utf8'), /^root:x:0:0:root:\/root:/);
    assert.match(await readFile(join(image.rootfs, 'etc/group'), 'utf8'), /^root:x:0:$/m);
    assert.match(await readFile(join(image.rootfs, 'etc/nsswitch.conf'), 'utf8'), /^passwd: files$/m);
    for (const file of ['etc/ssl/certs/ca-bundle.crt', 'etc/protocols', 'etc/services']) {
      // A link into the store, whose target arrived with the image.
      const target = await readlink(join(image.rootfs, file));
      assert.match(target, /^\/nix\/store\//, file);
      assert.ok((await lstat(join(image.rootfs, target))).isFile(), `${file} -> ${target} is in the image`);
    }
    assert.match(await readFile(join(image.rootfs, (await readlink(join(image.rootfs, 'etc/ssl/certs/ca-bundle.crt'))).slice(1)), 'utf8'), /BEGIN CERTIFICATE/);
    const config = await imageConfig('curl/jq');
    assert.equal(config.config.Cmd, undefined, 'two packages: no default command');
    assert.ok(config.config.Env.includes('SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'));
    assert.ok(config.config.Env.includes('NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'));
  } finally {
    await image.remove();
  }
});

test('the default command is bash with shell and the mainProgram of a single package', async () => {
  assert.deepEqual((await imageConfig('shell/hello')).config.Cmd, ['bash']);
  assert.deepEqual((await imageConfig('hello')).config.Cmd, ['hello']);
  assert.deepEqual((await imageConfig('cacert/hello')).config.Cmd, ['hello'], 'naming a base package changes nothing');
  assert.equal((await imageConfig('coreutils')).config.Cmd, undefined, 'coreutils declares no mainProgram');
});

test('store-path layers hold only their store paths, are the same bytes in hello and shell/hello, and only the symlink layer differs', async () => {
  const images = ['hello', 'shell/hello'];
  /** Per image: the sorted store path names of each store-path layer → that layer's digest. */
  const groups = new Map<string, Map<string, string>>();
  const tops = new Map<string, string>();
  for (const name of images) {
    const m = await manifest(name);
    const byGroup = new Map<string, string>();
    for (const [i, layer] of m.layers.entries()) {
      const names = await layerNames(await blob(name, layer.digest));
      if (i === m.layers.length - 1) {
        assert.ok(!names.some((n) => n.startsWith('nix/')), `${name}: the symlink layer holds no store path`);
        assert.ok(names.includes('tmp/') && names.includes('etc/passwd'), `${name}: the base files are in the symlink layer`);
        tops.set(name, layer.digest);
        continue;
      }
      assert.ok(names.every((n) => n.startsWith('nix/')), `${name}: layer ${i} holds nothing outside the store: ${names.filter((n) => !n.startsWith('nix/')).join(' ')}`);
      const paths = [...new Set(names.filter((n) => /^nix\/store\/[^/]+\/?$/.test(n)).map((n) => '/' + n.replace(/\/$/, '')))].sort();
      // By construction: the layer is exactly what its store paths make, with nothing of the image in it.
      const rebuilt = await writeLayerTarball(await storePathEntries(paths), new Discard());
      assert.equal(rebuilt.digest, layer.digest, `${name}: layer ${i} is the canonical layer of ${paths.join(' ')}`);
      byGroup.set(paths.map((p) => p.replace(/^\/nix\/store\/[a-z0-9]+-/, '')).join(' '), layer.digest);
    }
    groups.set(name, byGroup);
  }
  const [plain, shell] = images.map((n) => groups.get(n)!);
  const common = [...plain!.keys()].filter((g) => shell!.has(g));
  for (const group of common) assert.equal(plain!.get(group), shell!.get(group), `the layer of ${group} is shared`);
  // cacert and iana-etc refer to nothing and are roots of both images: each is a layer of its own in both.
  assert.ok(common.some((g) => /^nss-cacert-[^ ]+$/.test(g)), `cacert's layer is common: ${common.join(' | ')}`);
  assert.ok(common.some((g) => /^iana-etc-[^ ]+$/.test(g)), `iana-etc's layer is common: ${common.join(' | ')}`);
  assert.notEqual(tops.get('hello'), tops.get('shell/hello'));
});

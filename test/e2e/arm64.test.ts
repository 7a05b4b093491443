// arm64 images end to end: an origin whose Nix may build aarch64-linux
// (ARM64_NIX_CONFIG) builds them from a fresh copy of the bundled set, skopeo pulls them as
// arm64, umoci unpacks them, and their programs run in a chroot under qemu.
// A machine that cannot do this fails these tests saying why.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { pullAndUnpack, runInRootfs } from '../support/clients.ts';
import { ARM64_NIX_CONFIG, machineInImage, requireArm64 } from '../support/arm64.ts';
import { freshFixture, type FreshFixture } from '../support/fresh-fixture.ts';
import { MEDIA } from '../../shared/media-types.ts';

let origin: RunningOrigin;
let host: string;
let fresh: FreshFixture;

before(async () => {
  // Packages nobody built yet, so every run builds them for aarch64-linux.
  fresh = await freshFixture();
  origin = await startOrigin({ env: { NIX_CONFIG: ARM64_NIX_CONFIG, NIXERY_PKGS_PATH: fresh.path } });
  host = `127.0.0.1:${origin.port}`;
});
after(async () => {
  await origin?.stop();
  await fresh?.remove();
});

interface Image {
  digest: string;
  layers: string[];
  config: { architecture: string; os: string };
}

async function image(name: string): Promise<Image> {
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept: MEDIA.dockerManifest } });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  const manifest = JSON.parse(body) as { layers: { digest: string }[]; config: { digest: string } };
  const config = await fetch(`${origin.url}/v2/${name}/blobs/${manifest.config.digest}`);
  assert.equal(config.status, 200);
  return {
    digest: res.headers.get('docker-content-digest')!,
    layers: manifest.layers.map((l) => l.digest),
    config: (await config.json()) as Image['config'],
  };
}

test('skopeo pulls arm64/hello as arm64, and its aarch64 hello greets in a chroot under qemu', { timeout: 180_000 }, async () => {
  await requireArm64();
  const pulled = await pullAndUnpack(host, 'arm64/hello:latest', ['--override-arch', 'arm64']);
  try {
    assert.equal(await machineInImage(pulled.rootfs, '/bin/hello'), 'aarch64');
    assert.equal((await runInRootfs(pulled.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
  } finally {
    await pulled.remove();
  }
  const { config } = await image('arm64/hello');
  assert.equal(config.architecture, 'arm64');
  assert.equal(config.os, 'linux');
});

test('arm64/shell runs bash, coreutils and nano built for aarch64', { timeout: 180_000 }, async () => {
  await requireArm64();
  const pulled = await pullAndUnpack(host, 'arm64/shell:latest', ['--override-arch', 'arm64']);
  try {
    for (const program of ['/bin/bash', '/bin/ls', '/bin/.nano-wrapped']) {
      assert.equal(await machineInImage(pulled.rootfs, program), 'aarch64', program);
    }
    assert.equal((await runInRootfs(pulled.rootfs, ['/bin/bash', '-c', 'echo $((6*7))'])).trim(), '42');
    const listing = (await runInRootfs(pulled.rootfs, ['/bin/ls', '/bin'])).split('\n');
    for (const name of ['bash', 'ls', 'nano', 'sponge']) assert.ok(listing.includes(name), `ls /bin lists ${name}: ${listing.join(' ')}`);
    assert.match(await runInRootfs(pulled.rootfs, ['/bin/nano', '--version']), /GNU nano, version 7\./);
  } finally {
    await pulled.remove();
  }
  assert.equal((await image('arm64/shell')).config.architecture, 'arm64');
});

test('hello for amd64 and for arm64 are different images that share no layer', { timeout: 180_000 }, async () => {
  await requireArm64();
  const [amd64, arm64] = [await image('hello'), await image('arm64/hello')];
  assert.equal(amd64.config.architecture, 'amd64');
  assert.equal(arm64.config.architecture, 'arm64');
  assert.notEqual(arm64.digest, amd64.digest);
  assert.deepEqual(arm64.layers.filter((digest) => amd64.layers.includes(digest)), []);
  assert.equal((await image('amd64/hello')).digest, amd64.digest);
});

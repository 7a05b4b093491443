// The origin end to end: real Nix builds the bundled package set, real
// skopeo and umoci pull and unpack, chroot runs what arrived.
import { NIX_ENV } from '../support/fixture-pkgs.ts';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { lstat, readFile, readlink, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { startOrigin, FIXTURE_PKGS, type RunningOrigin } from '../support/origin.ts';
import { pullAndUnpack, runInRootfs } from '../support/clients.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { eventually } from '../support/eventually.ts';
import { freshFixture } from '../support/fresh-fixture.ts';

let origin: RunningOrigin;
let host: string;

before(async () => {
  origin = await startOrigin();
  host = `127.0.0.1:${origin.port}`;
});
after(async () => {
  await origin?.stop();
});

async function manifest(name: string, accept: string = MEDIA.dockerManifest) {
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept } });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  return { res, json: JSON.parse(body) as { layers: { digest: string; size: number }[]; config: { digest: string } }, body };
}

async function errorOf(res: Response) {
  const body = (await res.json()) as { errors: { code: string; message: string; detail: unknown }[] };
  assert.equal(body.errors.length, 1);
  return body.errors[0]!;
}

/** Every file under a directory, relative, with what the registry must preserve of it. */
async function describeTree(root: string, rel = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const info = await lstat(join(root, rel));
  if (info.isSymbolicLink()) out.set(rel, `symlink ${await readlink(join(root, rel))}`);
  else if (info.isDirectory()) {
    out.set(rel, 'dir');
    for (const child of await readdir(join(root, rel))) for (const [k, v] of await describeTree(root, rel ? `${rel}/${child}` : child)) out.set(k, v);
  } else {
    const hash = createHash('sha256').update(await readFile(join(root, rel))).digest('hex');
    out.set(rel, `file ${info.mode & 0o111 ? 'x' : '-'} ${hash}`);
  }
  return out;
}

test('skopeo pulls shell/hello, umoci unpacks it, and its programs run in a chroot', async () => {
  const image = await pullAndUnpack(host, 'shell/hello:latest');
  try {
    assert.equal((await runInRootfs(image.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
    assert.equal((await runInRootfs(image.rootfs, ['/bin/bash', '-c', 'echo $((6 * 7)) $BASH_VERSION'])).split(' ')[0], '42');
    assert.ok((await lstat(join(image.rootfs, 'etc/ssl/certs/ca-bundle.crt'))).isSymbolicLink());
    const config = JSON.parse(await readFile(join(image.dir, 'bundle/config.json'), 'utf8')) as { process: { env: string[] } };
    assert.ok(config.process.env.includes('PATH=/bin'));
  } finally {
    await image.remove();
  }
});

test('every file of the runtime closure arrives byte for byte, with its mode and symlinks', async () => {
  const image = await pullAndUnpack(host, 'hello:latest');
  try {
    // Every image also carries cacert and iana-etc.
    const { stdout: out } = await execa('nix-build', ['--no-out-link', FIXTURE_PKGS, '-A', 'hello', '-A', 'cacert', '-A', 'iana-etc'], { env: NIX_ENV });
    const { stdout } = await execa('nix-store', ['--query', '--requisites', ...out.trim().split('\n')], { env: NIX_ENV });
    const closure = stdout.split('\n').filter(Boolean).map((p) => p.slice('/nix/store/'.length)).sort();
    const arrived = (await readdir(join(image.rootfs, 'nix/store'))).sort();
    assert.deepEqual(arrived, closure);
    for (const name of closure) {
      const expected = await describeTree(join('/nix/store', name));
      const actual = await describeTree(join(image.rootfs, 'nix/store', name));
      assert.deepEqual(actual, expected, name);
    }
  } finally {
    await image.remove();
  }
});

test('the same image named in another order is the same manifest, and images share their common layers', async () => {
  const a = await manifest('shell/hello');
  const b = await manifest('hello/shell');
  assert.equal(a.res.headers.get('docker-content-digest'), b.res.headers.get('docker-content-digest'));
  const git = await manifest('shell/git');
  const shared = git.json.layers.filter((l) => a.json.layers.some((m) => m.digest === l.digest));
  assert.ok(shared.length >= 1, 'shell/git and shell/hello share layers');
  assert.ok(shared.length < git.json.layers.length, 'and each has its own');
});

test('an image built again from scratch, by another origin with empty storage, is byte-identical', async () => {
  const first = await manifest('hello');
  const other = await startOrigin();
  try {
    const res = await fetch(`${other.url}/v2/hello/manifests/latest`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), first.body);
  } finally {
    await other.stop();
  }
});

test('an OCI-only client gets an OCI manifest, and both formats are addressable by digest', async () => {
  const oci = await manifest('hello', MEDIA.ociManifest);
  assert.equal(oci.res.headers.get('content-type'), MEDIA.ociManifest);
  const docker = await manifest('hello');
  for (const m of [oci, docker]) {
    const digest = m.res.headers.get('docker-content-digest')!;
    const res = await fetch(`${origin.url}/v2/hello/manifests/${digest}`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), m.body);
    assert.equal(res.headers.get('content-type'), m.res.headers.get('content-type'));
    assert.equal('sha256:' + createHash('sha256').update(m.body).digest('hex'), digest);
  }
});

test('HEAD answers exactly the headers of GET, for manifests and blobs', async () => {
  const { json } = await manifest('hello');
  for (const path of ['/v2/hello/manifests/latest', `/v2/hello/blobs/${json.layers[0]!.digest}`, `/v2/hello/blobs/${json.config.digest}`, '/v2/', '/v2/nope-x/manifests/latest']) {
    const get = await fetch(origin.url + path);
    const getBody = await get.arrayBuffer();
    const head = await fetch(origin.url + path, { method: 'HEAD' });
    // Per-message headers (date, request id) and connection management differ by nature.
    const strip = (h: Headers) => [...h.entries()].filter(([k]) => !['date', 'x-request-id', 'connection', 'keep-alive'].includes(k));
    assert.equal(head.status, get.status, path);
    assert.deepEqual(strip(head.headers), strip(get.headers), path);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    if (get.headers.get('content-length')) assert.equal(Number(get.headers.get('content-length')), getBody.byteLength, path);
  }
});

test('blobs are served whole and by range, with their digest', async () => {
  const { json } = await manifest('hello');
  const layer = json.layers[0]!;
  const whole = Buffer.from(await (await fetch(`${origin.url}/v2/hello/blobs/${layer.digest}`)).arrayBuffer());
  assert.equal(whole.length, layer.size);
  assert.equal('sha256:' + createHash('sha256').update(whole).digest('hex'), layer.digest);
  const part = await fetch(`${origin.url}/v2/hello/blobs/${layer.digest}`, { headers: { range: 'bytes=10-99' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 10-99/${layer.size}`);
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(whole.subarray(10, 100)));
  const beyond = await fetch(`${origin.url}/v2/hello/blobs/${layer.digest}`, { headers: { range: `bytes=${layer.size}-` } });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get('content-range'), `bytes */${layer.size}`);
});

test('unknown packages are a 404 MANIFEST_UNKNOWN naming every unknown package', async () => {
  const res = await fetch(`${origin.url}/v2/hello/nosuchthing/alsomissing/manifests/latest`);
  assert.equal(res.status, 404);
  const err = await errorOf(res);
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.match(err.message, /alsomissing/);
  assert.match(err.message, /nosuchthing/);
  assert.doesNotMatch(err.message, /hello/);
});

test('attributes are found ignoring case and by nested attribute path', async () => {
  await manifest('python3packages.requests');
  await manifest('foobar');
});

test('invalid names, digests and methods get registry errors without a build', async () => {
  const cases: [string, RequestInit, number, string][] = [
    ['/v2/Hello/manifests/latest', {}, 400, 'NAME_INVALID'],
    ['/v2/hel%20lo/manifests/latest', {}, 400, 'NAME_INVALID'],
    [`/v2/hello/blobs/sha256:${'0'.repeat(64)}`, {}, 404, 'BLOB_UNKNOWN'],
    ['/v2/hello/blobs/sha256:1234', {}, 400, 'DIGEST_INVALID'],
    [`/v2/hello/manifests/sha256:${'0'.repeat(64)}`, {}, 404, 'MANIFEST_UNKNOWN'],
    ['/v2/hello/manifests/latest', { method: 'PUT', body: '{}' }, 405, 'UNSUPPORTED'],
    ['/v2/hello/blobs/uploads/', { method: 'POST' }, 405, 'UNSUPPORTED'],
  ];
  const builds = origin.logs.filter((l) => l.msg === 'image built').length;
  for (const [path, init, status, code] of cases) {
    const res = await fetch(origin.url + path, init);
    assert.equal(res.status, status, path);
    assert.equal((await errorOf(res)).code, code, path);
  }
  assert.equal(origin.logs.filter((l) => l.msg === 'image built').length, builds);
});

test('a package that fails to build answers 500 with Nix’s message, and the origin keeps serving', async () => {
  const res = await fetch(`${origin.url}/v2/brokenpackage/manifests/latest`);
  assert.equal(res.status, 500);
  const err = await errorOf(res);
  assert.equal(err.code, 'UNKNOWN');
  assert.match(err.message, /nix build failed/);
  assert.match(JSON.stringify(err.detail), /broken on purpose/);
  await manifest('hello');
});

test('concurrent requests for a new image share one build', async () => {
  const before = origin.logs.filter((l) => l.msg === 'image built').length;
  const responses = await Promise.all([1, 2, 3, 4].map(() => fetch(`${origin.url}/v2/fooBar/htop/manifests/latest`.toLowerCase())));
  const digests = new Set(responses.map((r) => r.headers.get('docker-content-digest')));
  assert.deepEqual(responses.map((r) => r.status), [200, 200, 200, 200]);
  assert.equal(digests.size, 1);
  await eventually(() => origin.logs.filter((l) => l.msg === 'image built').length - before >= 1, 'the build log line');
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(origin.logs.filter((l) => l.msg === 'image built').length - before, 1);
});

test('arm64 images of the bundled set fail fast and clearly when Nix may not build aarch64-linux', async () => {
  // Packages nobody built yet: this machine may have built the bundled set's
  // arm64 packages before (test/e2e/arm64.test.ts), and Nix needs no
  // builder for what is already in the store.
  const fresh = await freshFixture();
  const other = await startOrigin({ env: { NIXERY_PKGS_PATH: fresh.path } });
  try {
    const res = await fetch(`${other.url}/v2/arm64/hello/manifests/latest`);
    assert.equal(res.status, 404);
    const err = await errorOf(res);
    assert.equal(err.code, 'MANIFEST_UNKNOWN');
    assert.match(err.message, /requires system aarch64-linux, and this origin runs on x86_64-linux with no aarch64-linux builder/);
  } finally {
    await other.stop();
    await fresh.remove();
  }
});

// One name for both architectures: an origin with NIXERY_PLATFORMS=amd64,arm64
// answers `hello` with an image index (directly and through the edge),
// skopeo picks either platform from it, umoci unpacks it, and the program
// runs in a chroot (arm64 under qemu). A machine that cannot build and run
// arm64 fails these tests saying why (test/support/arm64.ts).
// docker and containerd pulling the index: docker.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin, type RunningOrigin } from '../support/origin.ts';
import { startEdge, type RunningTestEdge } from '../support/edge.ts';
import { pullAndUnpack, runInRootfs } from '../support/clients.ts';
import { ARM64_NIX_CONFIG, machineInImage, requireArm64 } from '../support/arm64.ts';
import { deferrer } from '../support/cleanup.ts';
import { MEDIA } from '../../shared/media-types.ts';

const MULTI = { NIX_CONFIG: ARM64_NIX_CONFIG, NIXERY_PLATFORMS: 'amd64,arm64' };
/** What docker sends for a manifest by tag. */
const DOCKER_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerManifestList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

let origin: RunningOrigin;
let edge: RunningTestEdge;

before(async () => {
  origin = await startOrigin({ env: MULTI });
  edge = await startEdge(origin.url);
});
after(async () => {
  await edge?.stop();
  await origin?.stop();
});

interface Fetched {
  status: number;
  mediaType: string | null;
  digest: string | null;
  cache: string | null;
  vary: string | null;
  body: string;
}

async function get(base: string, name: string, reference: string, accept?: string): Promise<Fetched> {
  const res = await fetch(`${base}/v2/${name}/manifests/${reference}`, accept !== undefined ? { headers: { accept } } : {});
  return {
    status: res.status,
    mediaType: res.headers.get('content-type'),
    digest: res.headers.get('docker-content-digest'),
    cache: res.headers.get('x-nixery-edge-cache'),
    vary: res.headers.get('vary'),
    body: await res.text(),
  };
}

interface Index {
  mediaType: string;
  manifests: { mediaType: string; digest: string; platform: { architecture: string; os: string } }[];
}

for (const via of ['origin', 'edge'] as const) {
  test(`skopeo picks arm64 and amd64 from one name (${via}); each program is for its machine and greets`, { timeout: 240_000 }, async () => {
    await requireArm64();
    const host = via === 'origin' ? `127.0.0.1:${origin.port}` : edge.host;
    for (const [arch, machine] of [['arm64', 'aarch64'], ['amd64', 'x86-64']] as const) {
      const pulled = await pullAndUnpack(host, 'hello:latest', ['--override-arch', arch]);
      try {
        assert.equal(await machineInImage(pulled.rootfs, '/bin/hello'), machine, `${arch} /bin/hello`);
        assert.equal((await runInRootfs(pulled.rootfs, ['/bin/hello'])).trim(), 'Hello, world!');
      } finally {
        await pulled.remove();
      }
    }
  });
}

test('the index lists the very images arm64/ and amd64/ name, is served by its digest, and in OCI form to an OCI client', { timeout: 240_000 }, async () => {
  await requireArm64();
  const list = await get(origin.url, 'hello', 'latest', DOCKER_ACCEPT);
  assert.equal(list.status, 200, list.body);
  assert.equal(list.mediaType, MEDIA.dockerManifestList);
  const index = JSON.parse(list.body) as Index;
  assert.equal(index.mediaType, MEDIA.dockerManifestList);
  assert.deepEqual(index.manifests.map((m) => m.platform), [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }]);
  for (const member of index.manifests) {
    assert.equal(member.mediaType, MEDIA.dockerManifest);
    const named = await get(origin.url, `${member.platform.architecture}/hello`, 'latest', MEDIA.dockerManifest);
    assert.equal(named.digest, member.digest, `${member.platform.architecture}/hello is the index's image`);
  }
  const byDigest = await get(origin.url, 'hello', list.digest!, MEDIA.dockerManifest);
  assert.equal(byDigest.status, 200);
  assert.equal(byDigest.mediaType, MEDIA.dockerManifestList);
  assert.equal(byDigest.body, list.body);

  const oci = await get(origin.url, 'hello', 'latest', `${MEDIA.ociIndex}, ${MEDIA.ociManifest}`);
  assert.equal(oci.mediaType, MEDIA.ociIndex);
  assert.deepEqual((JSON.parse(oci.body) as Index).manifests.map((m) => m.mediaType), [MEDIA.ociManifest, MEDIA.ociManifest]);

  // arm64/ stays a single-arch manifest, as in Nixery, whatever the client reads.
  const arm64 = await get(origin.url, 'arm64/hello', 'latest', DOCKER_ACCEPT);
  assert.equal(arm64.mediaType, MEDIA.dockerManifest);
});

test('a client that reads no index gets the default platform’s manifest: the first of NIXERY_PLATFORMS', { timeout: 240_000 }, async (t) => {
  await requireArm64();
  const amd64 = await get(origin.url, 'amd64/hello', 'latest', MEDIA.dockerManifest);
  for (const accept of [undefined, MEDIA.dockerManifest, `${MEDIA.ociManifest}, */*`]) {
    const plain = await get(origin.url, 'hello', 'latest', accept);
    assert.equal(plain.mediaType, MEDIA.dockerManifest, String(accept));
    assert.equal(plain.digest, amd64.digest, String(accept));
  }
  const defer = deferrer(t);
  const armFirst = await startOrigin({ env: { ...MULTI, NIXERY_PLATFORMS: 'arm64,amd64' } });
  defer(() => armFirst.stop());
  const arm64 = await get(armFirst.url, 'arm64/hello', 'latest', MEDIA.dockerManifest);
  const plain = await get(armFirst.url, 'hello', 'latest', MEDIA.dockerManifest);
  assert.equal(plain.digest, arm64.digest);
  const index = JSON.parse((await get(armFirst.url, 'hello', 'latest', DOCKER_ACCEPT)).body) as Index;
  assert.deepEqual(index.manifests.map((m) => m.platform.architecture), ['arm64', 'amd64']);
});

test('the edge keeps index and manifest answers of one tag apart, and serves both from its cache', { timeout: 240_000 }, async () => {
  await requireArm64();
  const index = await get(edge.url, 'hello/shell', 'latest', DOCKER_ACCEPT);
  assert.equal(index.status, 200, index.body);
  assert.equal(index.mediaType, MEDIA.dockerManifestList);
  const plain = await get(edge.url, 'hello/shell', 'latest', MEDIA.dockerManifest);
  assert.equal(plain.mediaType, MEDIA.dockerManifest, 'a plain client is not served the cached index');
  assert.equal(plain.cache, 'miss');
  const again = await get(edge.url, 'shell/hello', 'latest', DOCKER_ACCEPT);
  assert.equal(again.mediaType, MEDIA.dockerManifestList, 'an index client is not served the cached manifest');
  assert.equal(again.digest, index.digest);
  assert.equal(again.cache, 'memory');
  const plainAgain = await get(edge.url, 'shell/hello', 'latest', MEDIA.dockerManifest);
  assert.equal(plainAgain.digest, plain.digest);
  assert.equal(plainAgain.cache, 'memory');
  const ociIndex = await get(edge.url, 'hello/shell', 'latest', `${MEDIA.ociIndex}, ${MEDIA.ociManifest}`);
  assert.equal(ociIndex.mediaType, MEDIA.ociIndex);
  const byDigest = await get(edge.url, 'hello/shell', index.digest!);
  assert.equal(byDigest.body, index.body);
  // Shared HTTP caches between client and edge must key a tag's answer by Accept too; a digest's never varies.
  for (const answer of [index, plain, again]) assert.equal(answer.vary, 'Accept');
  assert.equal(byDigest.vary, null);
  assert.equal((await get(origin.url, 'hello/shell', 'latest', DOCKER_ACCEPT)).vary, 'Accept');
});

test('a second origin with empty storage builds the same index digest', { timeout: 240_000 }, async (t) => {
  await requireArm64();
  const first = await get(origin.url, 'hello', 'latest', DOCKER_ACCEPT);
  const firstOci = await get(origin.url, 'hello', 'latest', `${MEDIA.ociIndex}, ${MEDIA.ociManifest}`);
  const defer = deferrer(t);
  const fresh = await startOrigin({ env: MULTI });
  defer(() => fresh.stop());
  const second = await get(fresh.url, 'hello', 'latest', DOCKER_ACCEPT);
  assert.equal(second.status, 200, second.body);
  assert.equal(second.digest, first.digest);
  assert.equal((await get(fresh.url, 'hello', 'latest', `${MEDIA.ociIndex}, ${MEDIA.ociManifest}`)).digest, firstOci.digest);
});

test('when one platform fails to build, the whole request fails saying which; the other platform’s image stands alone', { timeout: 240_000 }, async () => {
  await requireArm64();
  // The bundled set's git builds for x86_64-linux only (its arm64 tree has no git).
  for (let attempt = 0; attempt < 2; attempt++) {
    const failed = await get(origin.url, 'git', 'latest', DOCKER_ACCEPT);
    assert.equal(failed.status, 500, failed.body);
    const error = (JSON.parse(failed.body) as { errors: { code: string; message: string }[] }).errors[0]!;
    assert.equal(error.code, 'UNKNOWN');
    assert.match(error.message, /^linux\/arm64: /);
  }
  const amd64 = await get(origin.url, 'amd64/git', 'latest', MEDIA.dockerManifest);
  assert.equal(amd64.status, 200, amd64.body);
  // A client that reads no index is answered the default platform alone, which builds.
  assert.equal((await get(origin.url, 'git', 'latest', MEDIA.dockerManifest)).digest, amd64.digest);
  // Through the edge, an origin failure with nothing cached is a 503 carrying the origin's words.
  const viaEdge = await get(edge.url, 'git', 'latest', DOCKER_ACCEPT);
  assert.equal(viaEdge.status, 503, viaEdge.body);
  assert.match(viaEdge.body, /linux\/arm64: /);
});

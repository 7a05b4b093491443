// The pure parts of image indexes: Accept negotiation (and the Accept the
// edge sends back), the index JSON, NIXERY_PLATFORMS, and the keys that keep
// index answers apart from manifest answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MEDIA, acceptHeader, negotiate, type ManifestFormat, type Negotiated } from '../../shared/media-types.ts';
import { sha256Digest, type Digest } from '../../shared/digest.ts';
import { canonicalImage, parseImageName, requestedImage } from '../../shared/names.ts';
import { buildIndexes } from '../../origin/image/image-index.ts';
import { ConfigError, readConfig } from '../../origin/config.ts';
import { keyString, type ManifestKey } from '../../edge/manifest-cache.ts';

// What the clients this project is tested with send (their sources' default Accept lists).
const DOCKER = [MEDIA.ociIndex, MEDIA.dockerManifestList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');
const CONTAINERD = [MEDIA.dockerManifest, MEDIA.dockerManifestList, MEDIA.ociManifest, MEDIA.ociIndex, '*/*'].join(', ');

test('a client is answered an index only if it names a list type; the manifest family’s own is preferred', () => {
  assert.deepEqual(negotiate(undefined), { manifest: 'docker', index: null });
  assert.deepEqual(negotiate('*/*'), { manifest: 'docker', index: null });
  assert.deepEqual(negotiate(MEDIA.dockerManifest), { manifest: 'docker', index: null });
  assert.deepEqual(negotiate(`${MEDIA.ociManifest}, ${MEDIA.dockerManifest}`), { manifest: 'docker', index: null });
  assert.deepEqual(negotiate(DOCKER), { manifest: 'docker', index: 'docker' });
  assert.deepEqual(negotiate(CONTAINERD), { manifest: 'docker', index: 'docker' });
  assert.deepEqual(negotiate(`${MEDIA.ociIndex}, ${MEDIA.ociManifest}`), { manifest: 'oci', index: 'oci' });
  assert.deepEqual(negotiate(`${MEDIA.ociIndex};q=0.9, ${MEDIA.dockerManifest}`), { manifest: 'docker', index: 'oci' });
  assert.deepEqual(negotiate(`${MEDIA.dockerManifestList}, ${MEDIA.ociManifest}`), { manifest: 'oci', index: 'docker' });
});

test('the Accept the edge sends the origin negotiates to exactly the key it was made from', () => {
  for (const manifest of ['docker', 'oci'] as const) {
    for (const index of [null, 'docker', 'oci'] as const) {
      const wanted: Negotiated = { manifest, index };
      assert.deepEqual(negotiate(acceptHeader(wanted)), wanted, acceptHeader(wanted));
    }
  }
});

const digest = async (text: string): Promise<Digest> => sha256Digest(new TextEncoder().encode(text));

test('an index lists its format’s manifests with their platforms, in the given order, and is the same bytes every time', async () => {
  const member = async (arch: 'amd64' | 'arm64') => ({
    arch,
    manifests: {
      docker: { digest: await digest(`${arch} docker`), size: 100 },
      oci: { digest: await digest(`${arch} oci`), size: 200 },
    } as Record<ManifestFormat, { digest: Digest; size: number }>,
  });
  const members = [await member('amd64'), await member('arm64')];
  const built = await buildIndexes(members);
  const docker = JSON.parse(new TextDecoder().decode(built.docker.bytes)) as { mediaType: string; manifests: { mediaType: string; digest: string; size: number; platform: object }[] };
  assert.equal(built.docker.mediaType, MEDIA.dockerManifestList);
  assert.equal(docker.mediaType, MEDIA.dockerManifestList);
  assert.deepEqual(docker.manifests, [
    { mediaType: MEDIA.dockerManifest, size: 100, digest: members[0]!.manifests.docker.digest, platform: { architecture: 'amd64', os: 'linux' } },
    { mediaType: MEDIA.dockerManifest, size: 100, digest: members[1]!.manifests.docker.digest, platform: { architecture: 'arm64', os: 'linux' } },
  ]);
  const oci = JSON.parse(new TextDecoder().decode(built.oci.bytes)) as { mediaType: string; manifests: { mediaType: string; digest: string }[] };
  assert.equal(oci.mediaType, MEDIA.ociIndex);
  assert.deepEqual(oci.manifests.map((m) => [m.mediaType, m.digest]), [
    [MEDIA.ociManifest, members[0]!.manifests.oci.digest],
    [MEDIA.ociManifest, members[1]!.manifests.oci.digest],
  ]);
  assert.equal(built.oci.digest, await sha256Digest(built.oci.bytes));
  assert.equal((await buildIndexes(members)).docker.digest, built.docker.digest);
  assert.notEqual((await buildIndexes([...members].reverse())).docker.digest, built.docker.digest);
});

test('NIXERY_PLATFORMS: amd64 by default, a list in order, and anything else stops start-up naming the variable', () => {
  assert.deepEqual(readConfig({ NIXERY_PKGS_PATH: '.' }).platforms, ['amd64']);
  assert.deepEqual(readConfig({ NIXERY_PKGS_PATH: '.', NIXERY_PLATFORMS: 'arm64, amd64' }).platforms, ['arm64', 'amd64']);
  assert.deepEqual(readConfig({ NIXERY_PKGS_PATH: '.', NIXERY_PLATFORMS: 'arm64' }).platforms, ['arm64']);
  for (const bad of ['x86_64', 'amd64,,arm64', 'amd64,amd64', 'linux/arm64']) {
    assert.throws(
      () => readConfig({ NIXERY_PKGS_PATH: '.', NIXERY_PLATFORMS: bad }),
      (err: unknown) => err instanceof ConfigError && err.variable === 'NIXERY_PLATFORMS' && !err.message.includes('\n'),
      bad,
    );
  }
});

test('a name without a platform is its own request, apart from amd64/…, and the same image as amd64/… to build', () => {
  const plain = parseImageName('hello/shell');
  const amd64 = parseImageName('amd64/shell/hello');
  assert.equal(plain.platformNamed, false);
  assert.equal(amd64.platformNamed, true);
  assert.equal(canonicalImage(plain), canonicalImage(amd64));
  assert.notEqual(requestedImage(plain), requestedImage(amd64));
  assert.equal(requestedImage(plain), requestedImage(parseImageName('shell/hello')));
  assert.equal(requestedImage(parseImageName('arm64/hello')), 'arm64/hello');
});

test('edge keys: an index answer and a manifest answer of one tag never share a key; old manifest keys are unchanged', () => {
  const manifest: ManifestKey = { kind: 'tag', format: 'docker', image: 'any/hello', tag: 'latest' };
  const withNull: ManifestKey = { ...manifest, index: null };
  const index: ManifestKey = { ...manifest, index: 'docker' };
  const ociIndex: ManifestKey = { ...manifest, index: 'oci' };
  assert.equal(keyString(manifest), 'tag/docker/any/hello/latest');
  assert.equal(keyString(withNull), keyString(manifest));
  assert.equal(new Set([keyString(manifest), keyString(index), keyString(ociIndex)]).size, 3);
});

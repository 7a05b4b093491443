import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange } from '../../origin/http/range.ts';
import { readConfig, ConfigError } from '../../origin/config.ts';
import { parseDumpDb } from '../../origin/nix/closure.ts';
import { buildManifests } from '../../origin/image/manifest.ts';
import { RegistryError } from '../../shared/errors.ts';
import { sha256Digest } from '../../shared/digest.ts';
import { MEDIA } from '../../shared/media-types.ts';

test('byte ranges resolve against the blob size, and impossible ones are 416', () => {
  assert.equal(parseRange(undefined, 10), null);
  assert.deepEqual(parseRange('bytes=0-4', 10), { start: 0, end: 4 });
  assert.deepEqual(parseRange('bytes=5-', 10), { start: 5, end: 9 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=8-100', 10), { start: 8, end: 9 });
  assert.equal(parseRange('bytes=0-1,3-4', 10), null, 'multiple ranges fall back to the whole blob');
  assert.equal(parseRange('items=0-1', 10), null);
  assert.throws(() => parseRange('bytes=10-', 10), (e: unknown) => e instanceof RegistryError && e.status === 416);
});

test('configuration defaults to the embedded filesystem storage and refuses bad values naming the variable', () => {
  const config = readConfig({ NIXERY_PKGS_PATH: '.' });
  assert.equal(config.port, 8080);
  assert.equal(config.storage.backend, 'filesystem');
  assert.equal(config.nixTimeoutSeconds, 60);
  assert.equal(config.layerNiceness, 10);
  assert.equal(readConfig({ NIXERY_PKGS_PATH: '.', LAYER_NICENESS: '0' }).layerNiceness, 0);
  assert.equal(config.source.type, 'path');
  assert.equal(config.usageWriteIntervalSeconds, 3600);
  const variable = (env: Record<string, string>) => {
    try {
      readConfig(env);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.variable;
    }
    return null;
  };
  assert.equal(variable({ NIXERY_PKGS_PATH: '.', PORT: 'eighty' }), 'PORT');
  assert.equal(variable({ NIXERY_PKGS_PATH: '.', NIX_TIMEOUT: '0' }), 'NIX_TIMEOUT');
  assert.equal(variable({ NIXERY_PKGS_PATH: '.', LAYER_NICENESS: '20' }), 'LAYER_NICENESS');
  assert.equal(variable({ NIXERY_PKGS_PATH: '.', USAGE_WRITE_INTERVAL: '0' }), 'USAGE_WRITE_INTERVAL');
  assert.equal(variable({ NIXERY_PKGS_PATH: '/does/not/exist' }), 'NIXERY_PKGS_PATH');
  assert.equal(variable({ NIXERY_PKGS_PATH: '.', STORAGE_BACKEND: 's3' }), 'STORAGE_BACKEND');
  assert.equal(variable({ NIXERY_PKGS_PATH: '.', STORAGE_BACKEND: 'gcs' }), 'BUCKET');
  assert.equal(variable({ NIXERY_PKGS_PATH: '.', NIX_POPULARITY_URL: 'not a url' }), 'NIX_POPULARITY_URL');
  assert.match(String(variable({ NIXERY_PKGS_PATH: '.', NIXERY_CHANNEL: 'nixos-unstable' })), /NIXERY_PKGS_PATH.*NIXERY_CHANNEL/);
});

test("Nix's validity registration parses into sizes and references", () => {
  const text = ['/nix/store/a-x', 'abc', '100', '', '2', '/nix/store/a-x', '/nix/store/b-y', '/nix/store/b-y', 'def', '42', '/nix/store/d.drv', '0', ''].join('\n');
  assert.deepEqual(parseDumpDb(text), [
    { path: '/nix/store/a-x', narSize: 100, references: ['/nix/store/a-x', '/nix/store/b-y'] },
    { path: '/nix/store/b-y', narSize: 42, references: [] },
  ]);
  assert.throws(() => parseDumpDb('/nix/store/a-x\nabc\n'), /ended early/);
  assert.throws(() => parseDumpDb('garbage\n'), /unexpected line/);
});

test('manifests reference the config by its digest and list layers in order, in both formats', async () => {
  const layer = (n: number) => ({ digest: `sha256:${String(n).repeat(64)}` as const, diffId: `sha256:${String(n + 1).repeat(64)}` as const, size: n * 10, description: `layer ${n}` });
  const built = await buildManifests({ arch: 'arm64', layers: [layer(1), layer(3)], packages: ['hello'] });
  assert.equal(built.config.digest, await sha256Digest(built.config.bytes));
  const config = JSON.parse(new TextDecoder().decode(built.config.bytes));
  assert.equal(config.architecture, 'arm64');
  assert.deepEqual(config.rootfs.diff_ids, [layer(1).diffId, layer(3).diffId]);
  assert.equal(config.history.length, 2);
  assert.ok(config.config.Env.includes('PATH=/bin'));
  for (const format of ['docker', 'oci'] as const) {
    const m = built.manifests[format];
    assert.equal(m.digest, await sha256Digest(m.bytes));
    const json = JSON.parse(new TextDecoder().decode(m.bytes));
    assert.equal(json.mediaType, m.mediaType);
    assert.equal(json.config.digest, built.config.digest);
    assert.equal(json.config.size, built.config.bytes.length);
    assert.deepEqual(json.layers.map((l: { digest: string }) => l.digest), [layer(1).digest, layer(3).digest]);
  }
  assert.equal(built.manifests.oci.mediaType, MEDIA.ociManifest);
  assert.notEqual(built.manifests.oci.digest, built.manifests.docker.digest);
  const again = await buildManifests({ arch: 'arm64', layers: [layer(1), layer(3)], packages: ['hello'] });
  assert.equal(again.manifests.docker.digest, built.manifests.docker.digest, 'manifests are reproducible');
});

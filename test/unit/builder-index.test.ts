// The builder's index (origin/image/builder.ts), driven by a fake of the Nix
// interface that answers per system, as build-pipeline.test.ts does: what is
// tested is how the index shares builds with single-platform pulls and what it
// does when a platform fails. Everything after Nix is real (layer and image
// stores on the filesystem backend in a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { RegistryError } from '../../shared/errors.ts';
import { parseImageName, type Architecture } from '../../shared/names.ts';
import { NixError } from '../../origin/nix/nix.ts';
import { MANIFEST_RECHECK_MS } from '../../origin/image/image-store.ts';
import type { Nix } from '../../origin/nix/runner.ts';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { LayerStore } from '../../origin/image/layer-store.ts';
import { ImageStore } from '../../origin/image/image-store.ts';
import { ImageBuilder, type BuildReport } from '../../origin/image/builder.ts';
import type { ResolvedSource } from '../../origin/sources/source.ts';

const log = pino({ level: 'silent' });
/** A pinned version, so the index is remembered under its key. */
const PINNED: ResolvedSource = { nix: { type: 'path', path: '/fake/pkgs' }, cacheKey: 'fake-commit' };

let dir: string;
const outs: Record<string, string> = {};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'builder-index-'));
  for (const system of ['x86_64-linux', 'aarch64-linux']) {
    const out = join(dir, 'store', `${system === 'x86_64-linux' ? 'aaaa' : 'bbbb'}-hello-${system}`);
    await mkdir(join(out, 'bin'), { recursive: true });
    await writeFile(join(out, 'bin', 'hello'), `hello for ${system}`, { mode: 0o755 });
    outs[system] = out;
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Resolves and builds per system; `failOn` makes that system's build fail; `calls` records what ran. */
function fakeNix(failOn: string | null = null): Nix & { calls: string[] } {
  const calls: string[] = [];
  const systemOf = new Map<string, string>();
  return {
    calls,
    async resolvePackages(_source, system) {
      calls.push(`resolve ${system}`);
      const out = outs[system]!;
      systemOf.set(`${out}.drv`, system);
      return { packages: [{ name: 'hello', attrPath: 'hello', base: false, outputs: [{ drv: `${out}.drv`, out }] }], problems: [] };
    },
    async buildDerivations(drvs) {
      const system = systemOf.get(drvs[0]!)!;
      calls.push(`build ${system}`);
      // Both builds are under way at once before either ends.
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (system === failOn) throw new NixError('nix-build failed with exit code 1', `cannot build for ${system}`, false, 1);
    },
    async readClosure(paths) {
      return paths.map((path) => ({ path, narSize: 100, references: [] }));
    },
  };
}

async function builderWith(nix: Nix, platforms: Architecture[]) {
  const storage = new FilesystemStorage(await mkdtemp(join(dir, 'storage-')));
  await storage.init();
  const builder = new ImageBuilder({
    source: { description: 'fake', resolve: async () => PINNED, listTags: async () => ['latest'] },
    nix,
    store: new ImageStore(storage),
    layers: new LayerStore(storage, log),
    maxLayers: 100,
    log,
    platforms,
  });
  const reports: BuildReport[] = [];
  builder.onBuild((report) => reports.push(report));
  return { builder, reports, storage };
}

test('an index and concurrent single-platform pulls share one build per platform; the index lists those images', async () => {
  const nix = fakeNix();
  const { builder, reports, storage } = await builderWith(nix, ['amd64', 'arm64']);
  const [index, arm64, amd64] = await Promise.all([
    builder.index(parseImageName('hello'), 'latest'),
    builder.image(parseImageName('arm64/hello'), 'latest'),
    builder.image(parseImageName('amd64/hello'), 'latest'),
  ]);
  assert.deepEqual(nix.calls.filter((c) => c.startsWith('build')).sort(), ['build aarch64-linux', 'build x86_64-linux']);
  assert.deepEqual(reports.map((r) => r.image).sort(), ['amd64/hello', 'arm64/hello']);
  const listed = JSON.parse(new TextDecoder().decode((await builder.store.manifest(index.manifests.docker.digest))!.bytes)) as {
    manifests: { digest: string; platform: { architecture: string } }[];
  };
  assert.deepEqual(listed.manifests.map((m) => [m.platform.architecture, m.digest]), [
    ['amd64', amd64.manifests.docker.digest],
    ['arm64', arm64.manifests.docker.digest],
  ]);
  // The index record names its platforms' image records, which retention keeps with it.
  assert.equal(index.members?.length, 2);
  for (const [member, image] of [[index.members![0]!, amd64], [index.members![1]!, arm64]] as const) {
    assert.deepEqual((await builder.store.storedRecord(member))?.manifests, image.manifests);
  }
  // Both formats of a lost index are derived again from its platforms' records, byte for byte.
  const { ManifestRecovery } = await import('../../origin/image/manifest-recovery.ts');
  const { STORAGE_KEYS } = await import('../../shared/storage-keys.ts');
  const saved = await Promise.all(['docker', 'oci'].map(async (f) => (await builder.store.manifest(index.manifests[f as 'docker' | 'oci'].digest))!.bytes));
  for (const f of ['docker', 'oci'] as const) await storage.delete(STORAGE_KEYS.manifest(index.manifests[f].digest.slice(7)));
  // Lost behind the store's back, as on a disk: seen once the store checks storage again.
  await sleep(MANIFEST_RECHECK_MS + 20);
  assert.equal(await builder.store.manifest(index.manifests.oci.digest), null);
  assert.ok(await new ManifestRecovery(storage, builder.store, log).recover(index.manifests.oci.digest));
  assert.deepEqual(await Promise.all(['docker', 'oci'].map(async (f) => (await builder.store.manifest(index.manifests[f as 'docker' | 'oci'].digest))!.bytes)), saved);
  // Known now: answered from the image cache, without asking Nix anything.
  const calls = nix.calls.length;
  assert.deepEqual(await builder.index(parseImageName('hello'), 'latest'), index);
  assert.equal(nix.calls.length, calls);
  assert.equal(builder.inflight, 0);
});

test('a platform that fails fails the index, naming the platform with the failure’s code; nothing is remembered as the index', async () => {
  const nix = fakeNix('aarch64-linux');
  const { builder, storage } = await builderWith(nix, ['amd64', 'arm64']);
  const err = await builder.index(parseImageName('hello'), 'latest').then(
    () => assert.fail('the index should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof RegistryError);
  assert.equal(err.code, 'UNKNOWN');
  assert.equal(err.status, 500);
  assert.match(err.message, /^linux\/arm64: /);
  // The amd64 image built and was remembered on its own; the index was not.
  const amd64 = await builder.image(parseImageName('amd64/hello'), 'latest');
  const manifests = await readdir(join(storage.root, 'manifests', 'sha256'));
  assert.equal(manifests.length, 2, 'the amd64 image’s two manifests, no index');
  assert.ok(manifests.includes(amd64.manifests.docker.digest.slice('sha256:'.length)));
  await assert.rejects(builder.index(parseImageName('hello'), 'latest'), /^RegistryError: linux\/arm64: /);
});

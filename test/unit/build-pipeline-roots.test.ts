// The GC roots a build holds (origin/image/build-pipeline.ts with
// origin/nix/gc-roots.ts), driven by a fake of the Nix interface as in
// build-pipeline.test.ts: temp files stand in for the .drv files and store
// paths; the roots, the lock, the layers and storage are the real ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { RegistryError } from '../../shared/errors.ts';
import { parseImageName } from '../../shared/names.ts';
import { NixError } from '../../origin/nix/nix.ts';
import type { Nix } from '../../origin/nix/runner.ts';
import { GcLock } from '../../origin/nix/gc-lock.ts';
import { GcRoots } from '../../origin/nix/gc-roots.ts';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { LayerStore } from '../../origin/image/layer-store.ts';
import { ImageStore } from '../../origin/image/image-store.ts';
import { buildImage, type PipelineDeps } from '../../origin/image/build-pipeline.ts';
import type { ResolvedSource } from '../../origin/sources/source.ts';
import { deferrer } from '../support/cleanup.ts';

const log = pino({ level: 'silent' });
const PATH_SOURCE: ResolvedSource = { nix: { type: 'path', path: '/fake/pkgs' }, cacheKey: null };

interface Fixture {
  deps: PipelineDeps;
  roots: GcRoots;
  lock: GcLock;
  drv: string;
  out: string;
  /** What the roots directory held while Nix built. */
  seenWhileBuilding: string[][];
  calls: string[];
}

async function fixture(t: import('node:test').TestContext, overrides: Partial<Nix> = {}): Promise<Fixture> {
  const defer = deferrer(t);
  const dir = await mkdtemp(join(tmpdir(), 'pipeline-roots-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const store = join(dir, 'store');
  const drv = join(store, 'aaaa-hello-1.0.drv');
  const out = join(store, 'bbbb-hello-1.0');
  await mkdir(store);
  await writeFile(drv, 'Derive(...)');
  const lock = new GcLock();
  const { roots } = await GcRoots.open(join(dir, 'gcroots'), lock);
  const storage = new FilesystemStorage(join(dir, 'storage'));
  await storage.init();
  const seenWhileBuilding: string[][] = [];
  const calls: string[] = [];
  const nix: Nix = {
    ...(overrides.fetchSource ? { fetchSource: overrides.fetchSource } : {}),
    async resolvePackages(...args) {
      calls.push('resolve');
      if (overrides.resolvePackages) return overrides.resolvePackages(...args);
      return { packages: [{ name: 'hello', attrPath: 'hello', base: false, outputs: [{ drv, out }] }], problems: [] };
    },
    async buildDerivations(...args) {
      calls.push('build');
      const sets = await readdir(roots.dir);
      seenWhileBuilding.push(...(await Promise.all(sets.map((s) => readdir(join(roots.dir, s))))).map((names) => names.sort()));
      if (overrides.buildDerivations) return overrides.buildDerivations(...args);
      await mkdir(join(out, 'bin'), { recursive: true });
      await writeFile(join(out, 'bin', 'hello'), 'echo hello\n');
    },
    async readClosure() {
      return [{ path: out, narSize: 100, references: [] }];
    },
  };
  const deps: PipelineDeps = { nix, layers: new LayerStore(storage, log), store: new ImageStore(storage), maxLayers: 10, log, roots };
  return { deps, roots, lock, drv, out, seenWhileBuilding, calls };
}

test('a build holds one root set, for its .drv files and its outputs, while Nix builds, and none once the image is stored', async (t) => {
  const f = await fixture(t);
  await buildImage(parseImageName('hello'), PATH_SOURCE, f.deps);
  assert.deepEqual(f.seenWhileBuilding, [['aaaa-hello-1.0.drv', 'bbbb-hello-1.0']]);
  assert.equal(f.roots.held, 0);
  assert.deepEqual(await readdir(f.roots.dir), []);
});

test('a failed build releases its roots too', async (t) => {
  const f = await fixture(t, { buildDerivations: async () => { throw new NixError('nix-build failed with exit code 1', 'error: builder failed', false, 1); } });
  await assert.rejects(buildImage(parseImageName('hello'), PATH_SOURCE, f.deps), RegistryError);
  assert.equal(f.seenWhileBuilding.length, 1);
  assert.equal(f.roots.held, 0);
  assert.deepEqual(await readdir(f.roots.dir), []);
});

test('.drv files gone by the time they are rooted (a collection the origin did not run) answer 503 UNAVAILABLE, retryable, and nothing is built', async (t) => {
  const f = await fixture(t);
  await rm(f.drv);
  const err = await buildImage(parseImageName('hello'), PATH_SOURCE, f.deps).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof RegistryError, String(err));
  assert.equal(err.status, 503);
  assert.equal(err.code, 'UNAVAILABLE');
  assert.deepEqual(f.calls, ['resolve']);
  assert.equal(f.roots.held, 0);
});

test('an evaluation does not start while a collection runs, and the collection waits for an evaluation under way', async (t) => {
  const f = await fixture(t);
  let endCollection!: () => void;
  const collecting = f.lock.collection(() => new Promise<void>((resolve) => (endCollection = resolve)));
  const build = buildImage(parseImageName('hello'), PATH_SOURCE, f.deps);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(f.calls, [], 'no evaluation during the collection');
  endCollection();
  await collecting;
  await build;
  assert.deepEqual(f.calls, ['resolve', 'build']);
});

test('the package source is fetched outside the GC lock, so a collection runs during a slow download, and is rooted once fetched', async (t) => {
  let fetchStarted!: () => void;
  const started = new Promise<void>((resolve) => (fetchStarted = resolve));
  let endFetch!: () => void;
  const download = new Promise<void>((resolve) => (endFetch = resolve));
  const fetchedPath = join(tmpdir(), 'cccc-nixpkgs-source');
  const f = await fixture(t, {
    fetchSource: async () => {
      fetchStarted();
      await download;
      return fetchedPath;
    },
  });
  const build = buildImage(parseImageName('hello'), { nix: { type: 'tarball', url: 'https://example.invalid/nixpkgs.tar.gz' }, cacheKey: null }, f.deps);
  await started;
  let collected = false;
  await f.lock.collection(async () => void (collected = true));
  assert.ok(collected, 'the collection ran while the source downloaded');
  assert.deepEqual(f.calls, [], 'no evaluation yet');
  endFetch();
  await build;
  assert.deepEqual(f.calls, ['resolve', 'build']);
  assert.deepEqual(f.seenWhileBuilding, [['aaaa-hello-1.0.drv', 'bbbb-hello-1.0', 'cccc-nixpkgs-source']]);
  assert.equal(f.roots.held, 0);
});

// The build pipeline (origin/image/build-pipeline.ts) and its coordinator
// (builder.ts), driven by `fakeNix`: a fake of the Nix interface, since the
// point here is what the pipeline does with Nix's answers and failures,
// which real Nix produces only with the right package set, machine and
// timing. Everything after Nix is real: temp directories stand in for store
// paths, and the layers, config and manifests are written by the real
// LayerStore and ImageStore to the real filesystem backend in a temp dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { RegistryError, errors } from '../../shared/errors.ts';
import { parseImageName } from '../../shared/names.ts';
import { NixError, NixFetchError, NixSystemError, type PackageProblem, type Resolution } from '../../origin/nix/nix.ts';
import type { Nix } from '../../origin/nix/runner.ts';
import type { StorePathInfo } from '../../origin/layers/graph.ts';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { LayerStore } from '../../origin/image/layer-store.ts';
import { ImageStore } from '../../origin/image/image-store.ts';
import { buildImage, type PipelineDeps } from '../../origin/image/build-pipeline.ts';
import { ImageBuilder, type BuildReport } from '../../origin/image/builder.ts';
import type { ResolvedSource } from '../../origin/sources/source.ts';
import { BlobRecovery, type AdmitRebuild } from '../../origin/image/blob-recovery.ts';
import { ManifestRecovery } from '../../origin/image/manifest-recovery.ts';
import { remakeObject } from '../../origin/image/remake-object.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { digestHex, type Digest } from '../../shared/digest.ts';

const log = pino({ level: 'silent' });
const PATH_SOURCE: ResolvedSource = { nix: { type: 'path', path: '/fake/pkgs' }, cacheKey: null };

let dir: string;
/** Two "store paths" (temp directories): hello references lib. */
let hello: string;
let lib: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'build-pipeline-'));
  hello = join(dir, 'store', 'aaaa-hello-1.0');
  lib = join(dir, 'store', 'bbbb-lib-2.0');
  await mkdir(join(hello, 'bin'), { recursive: true });
  await writeFile(join(hello, 'bin', 'hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  await mkdir(join(lib, 'lib'), { recursive: true });
  await writeFile(join(lib, 'lib', 'libgreet.so'), 'not really a library');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface FakeNix extends Nix {
  calls: string[];
}

/**
 * A fake Nix: resolves `hello` to the temp store paths above, builds
 * nothing, and reports the closure of those paths; `overrides` replace a
 * command with what a test needs it to answer or throw.
 */
function fakeNix(overrides: Partial<Nix> = {}): FakeNix {
  const calls: string[] = [];
  const closure: StorePathInfo[] = [
    { path: hello, narSize: 1000, references: [hello, lib] },
    { path: lib, narSize: 2000, references: [lib] },
  ];
  return {
    calls,
    async resolvePackages(source, system, packages, log) {
      calls.push(`resolve ${system} ${packages.join(' ')}`);
      if (overrides.resolvePackages) return overrides.resolvePackages(source, system, packages, log);
      return { packages: [{ name: 'hello', attrPath: 'hello', base: false, outputs: [{ drv: '/nix/store/aaaa-hello-1.0.drv', out: hello }] }], problems: [] };
    },
    async buildDerivations(drvs, log) {
      calls.push(`build ${drvs.join(' ')}`);
      if (overrides.buildDerivations) return overrides.buildDerivations(drvs, log);
    },
    async readClosure(paths, log) {
      calls.push(`closure ${paths.length}`);
      if (overrides.readClosure) return overrides.readClosure(paths, log);
      return closure;
    },
  };
}

async function freshDeps(nix: Nix): Promise<PipelineDeps & { storage: FilesystemStorage }> {
  const storage = new FilesystemStorage(await mkdtemp(join(dir, 'storage-')));
  await storage.init();
  return { nix, storage, layers: new LayerStore(storage, log), store: new ImageStore(storage), maxLayers: 100, log };
}

/** Runs a build that must fail, and returns the RegistryError it failed with; nothing may be remembered. */
async function failure(nix: Nix, name = 'hello'): Promise<RegistryError> {
  const deps = await freshDeps(nix);
  const err = await buildImage(parseImageName(name), PATH_SOURCE, deps).then(
    () => assert.fail('the build should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof RegistryError, `a RegistryError, not ${String(err)}`);
  const stored = await readdir(deps.storage.root);
  assert.ok(!stored.includes('images'), 'a failed build remembers no image');
  assert.ok(!stored.includes('manifests'), 'a failed build writes no manifest');
  return err;
}

function problems(...list: [string, PackageProblem][]): () => Promise<Resolution> {
  return async () => ({ packages: [], problems: list.map(([name, error]) => ({ name, error })) });
}

test('a build writes the layers, config and manifests, then remembers the image', async () => {
  const nix = fakeNix();
  const deps = await freshDeps(nix);
  let started = 0;
  let bytes = 0;
  const observer = { nixStarted: () => started++, layerWritten: (b: number) => (bytes += b) };
  const record = await buildImage(parseImageName('hello'), PATH_SOURCE, { ...deps, observer });
  assert.deepEqual(nix.calls, ['resolve x86_64-linux hello', 'build /nix/store/aaaa-hello-1.0.drv', 'closure 1']);
  assert.equal(started, 1);
  for (const format of ['docker', 'oci'] as const) {
    const manifest = await deps.store.manifest(record.manifests[format].digest);
    assert.ok(manifest, `the ${format} manifest is stored`);
    assert.equal(manifest.bytes.length, record.manifests[format].size);
    const layers = (JSON.parse(new TextDecoder().decode(manifest.bytes)) as { layers: { size: number }[] }).layers;
    // hello and lib (hello alone refers to lib: one group or two) and the symlink tree.
    assert.ok(layers.length >= 2 && layers.length <= 3, `${layers.length} layers`);
    assert.equal(bytes, layers.reduce((sum, l) => sum + l.size, 0));
  }

  // The same evaluation again is answered from the image store: nothing is built.
  const again = await buildImage(parseImageName('hello'), PATH_SOURCE, { ...deps, observer });
  assert.deepEqual(again, record);
  assert.equal(started, 1);
  assert.equal(nix.calls.filter((c) => c.startsWith('build')).length, 1);
  // And from storage alone, as another replica would.
  const fresh = new ImageStore(deps.storage);
  const third = await buildImage(parseImageName('hello'), PATH_SOURCE, { ...deps, store: fresh, observer });
  assert.deepEqual(third, record);
  assert.deepEqual(fresh.stats, { hits: 1, misses: 0 });
});

test('every Nix process of a build runs in its build slot: the closure query too, after the build, before the slot is freed', async () => {
  const held: string[] = [];
  const seen: string[] = [];
  const nix = fakeNix();
  const inner = { buildDerivations: nix.buildDerivations, readClosure: nix.readClosure };
  const deps = await freshDeps({
    ...nix,
    buildDerivations: async (drvs, log) => {
      seen.push(`build in ${held.join(',') || 'no slot'}`);
      return inner.buildDerivations(drvs, log);
    },
    readClosure: async (paths, log) => {
      seen.push(`closure query in ${held.join(',') || 'no slot'}`);
      return inner.readClosure(paths, log);
    },
  });
  const admit = async <T>(step: string, work: () => Promise<T>): Promise<T> => {
    held.push(step);
    try {
      return await work();
    } finally {
      held.splice(held.indexOf(step), 1);
    }
  };
  await buildImage(parseImageName('hello'), PATH_SOURCE, { ...deps, admit });
  assert.deepEqual(seen, ['build in build', 'closure query in build']);
});

test('a build whose reused layer and manifest retention deleted before its record was written makes them again', async () => {
  const deps = await freshDeps(fakeNix());
  const first = await buildImage(parseImageName('hello'), PATH_SOURCE, deps);
  const blobs = new BlobRecovery(deps.storage, deps.layers, log);
  const manifests = new ManifestRecovery(deps.storage, deps.store, log);
  const repair = { storage: deps.storage, remake: (digest: Digest) => remakeObject(blobs, manifests, digest) };
  // The same image under another key (another source version): every object is reused. Retention deletes
  // one reused layer after the layer step found it, and the docker manifest after the manifests step
  // found it, both before the record exists (the run's last listing of the images came earlier).
  const layerGone = first.recipe!.layers[0]!.digest;
  const admit = async <T>(step: string, work: () => Promise<T>): Promise<T> => {
    const result = await work();
    if (step === 'layers') await deps.storage.delete(STORAGE_KEYS.blob(digestHex(layerGone)));
    return result;
  };
  const store: ImageStore = Object.create(deps.store) as ImageStore;
  store.remember = async (key, record) => {
    await deps.storage.delete(STORAGE_KEYS.manifest(digestHex(record.manifests.docker.digest)));
    await deps.store.remember(key, record);
  };
  const source: ResolvedSource = { nix: PATH_SOURCE.nix, cacheKey: 'another-version' };
  const second = await buildImage(parseImageName('hello'), source, { ...deps, store, admit, repair });
  assert.deepEqual(second.recipe!.layers.map((l) => l.digest), first.recipe!.layers.map((l) => l.digest));
  assert.ok(await deps.storage.stat(STORAGE_KEYS.blob(digestHex(layerGone))), 'the deleted layer blob was made again');
  assert.ok(await deps.storage.stat(STORAGE_KEYS.manifest(digestHex(second.manifests.docker.digest))), 'the deleted manifest was made again');
  assert.equal(blobs.stats.recovered, 1);
  assert.equal(manifests.recovered, 1);
  // Nothing missing: nothing is made.
  await buildImage(parseImageName('hello'), { nix: PATH_SOURCE.nix, cacheKey: 'a third version' }, { ...deps, repair });
  assert.equal(blobs.stats.recovered, 1);
  assert.equal(manifests.recovered, 1);
});

test('a lost blob is rebuilt once however many ask, in the caller\'s queue; one that cannot be is remembered as lost for a while', { timeout: 30_000 }, async () => {
  const deps = await freshDeps(fakeNix());
  const record = await buildImage(parseImageName('hello'), PATH_SOURCE, deps);
  const layer = record.recipe!.layers[0]!.digest;
  const lose = () => deps.storage.delete(STORAGE_KEYS.blob(digestHex(layer)));
  await lose();
  let now = 0;
  const blobs = new BlobRecovery(deps.storage, deps.layers, log, undefined, undefined, { rememberLostMs: 30_000, now: () => now });
  let admitted = 0;
  const admit: AdmitRebuild = async (work) => {
    admitted++;
    return work();
  };
  const sizes = await Promise.all([1, 2, 3].map(() => blobs.recover(layer, admit)));
  assert.ok(sizes[0] !== null && sizes.every((size) => size === sizes[0]), String(sizes));
  assert.equal(admitted, 1, 'one rebuild, in one place of the queue');
  assert.equal(blobs.stats.recovered, 1);

  // A digest nothing knows how to make: lost, and answered as lost without a look until the time is over.
  const unknown = `sha256:${'e'.repeat(64)}` as Digest;
  assert.equal(await blobs.recover(unknown, admit), null);
  assert.equal(await blobs.recover(unknown, admit), null);
  assert.equal(admitted, 2);
  assert.equal(blobs.stats.unrecoverable, 1);
  // The origin's own repairs (no queue) always look: what a client was told does not stop them.
  assert.equal(await blobs.recover(unknown), null);
  assert.equal(blobs.stats.unrecoverable, 2);
  now += 30_001;
  assert.equal(await blobs.recover(unknown, admit), null);
  assert.equal(admitted, 3);

  // The queue's refusal reaches the caller and is not a loss: the next try rebuilds.
  await lose();
  await assert.rejects(
    blobs.recover(layer, async () => {
      throw errors.tooManyRequests('the build queue is full', 5);
    }),
    (err: unknown) => err instanceof RegistryError && err.status === 429,
  );
  assert.equal(await blobs.recover(layer, admit), sizes[0]);
  assert.equal(blobs.stats.recovered, 2);
  // And the origin's own repair of a lost blob does not wait on a client's rebuild held in the queue.
  await lose();
  let admitHeld!: () => void;
  const held = blobs.recover(layer, (work) => new Promise((resolve) => (admitHeld = () => resolve(work()))));
  assert.equal(await blobs.recover(layer), sizes[0]);
  admitHeld();
  assert.equal(await held, sizes[0]);
});

test('unknown packages answer 404 MANIFEST_UNKNOWN naming each of them', async () => {
  const err = await failure(fakeNix({ resolvePackages: problems(['nope', 'unknown'], ['neither', 'unknown']) }), 'nope/neither');
  assert.equal(err.status, 404);
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.equal(err.message, 'unknown packages: nope, neither');
  assert.deepEqual(err.detail, { unknown: ['nope', 'neither'], notPackages: [], failed: [] });
});

test('a name that is an attribute set, not a derivation, answers 404 saying it is not a package', async () => {
  const err = await failure(fakeNix({ resolvePackages: problems(['nope', 'unknown'], ['python3packages', 'not-a-package']) }));
  assert.equal(err.status, 404);
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.equal(err.message, 'unknown package: nope; not a package (an attribute set, not a derivation): python3packages');
  assert.deepEqual(err.detail, { unknown: ['nope'], notPackages: ['python3packages'], failed: [] });
});

test('a package that fails to evaluate answers 404 naming it', async () => {
  const err = await failure(fakeNix({ resolvePackages: problems(['brokenpackage', 'evaluation-failed']) }));
  assert.equal(err.status, 404);
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.equal(err.message, 'failed to evaluate: brokenpackage');
  assert.deepEqual(err.detail, { unknown: [], notPackages: [], failed: ['brokenpackage'] });
});

test('Nix timing out answers 500 saying which step timed out, with Nix’s output', async () => {
  const timedOut = (command: string) => new NixError(`${command} timed out after 1 s`, 'building hello...', true);
  const build = await failure(fakeNix({ buildDerivations: async () => { throw timedOut('nix-build'); } }));
  assert.equal(build.status, 500);
  assert.equal(build.code, 'UNKNOWN');
  assert.equal(build.message, 'nix build timed out: nix-build timed out after 1 s');
  assert.deepEqual(build.detail, { nix: 'building hello...' });
  const evaluation = await failure(fakeNix({ resolvePackages: async () => { throw timedOut('nix-instantiate'); } }));
  assert.equal(evaluation.status, 500);
  assert.match(evaluation.message, /^nix evaluation timed out: /);
  const closure = await failure(fakeNix({ readClosure: async () => { throw timedOut('nix-store'); } }));
  assert.match(closure.message, /^nix closure query timed out: /);
});

test('Nix failing answers 500 saying which step failed', async () => {
  const err = await failure(fakeNix({ buildDerivations: async () => { throw new NixError('nix-build failed with exit code 100', 'error: builder failed', false, 100); } }));
  assert.equal(err.status, 500);
  assert.equal(err.message, 'nix build failed: nix-build failed with exit code 100');
  assert.deepEqual(err.detail, { nix: 'error: builder failed' });
});

test('a system this origin cannot build for answers 404 MANIFEST_UNKNOWN (NixSystemError)', async () => {
  const cause = new NixError('nix-build failed with exit code 1', "error: a 'aarch64-linux' with features {} is required", false, 1);
  const err = await failure(
    fakeNix({ buildDerivations: async () => { throw new NixSystemError(cause, 'aarch64-linux', '/nix/store/aaaa-hello-1.0.drv', 'x86_64-linux'); } }),
    'arm64/hello',
  );
  assert.equal(err.status, 404);
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.equal(err.message, 'cannot build this image: building hello-1.0 requires system aarch64-linux, and this origin runs on x86_64-linux with no aarch64-linux builder');
  assert.deepEqual(err.detail, { system: 'aarch64-linux', drv: '/nix/store/aaaa-hello-1.0.drv', nix: cause.stderr });
});

test('a package set that cannot be fetched answers 404 MANIFEST_UNKNOWN (NixFetchError)', async () => {
  const cause = new NixError('nix-instantiate failed with exit code 1', 'error: unable to download https://example.invalid/x.tar.gz', false, 1);
  const err = await failure(fakeNix({ resolvePackages: async () => { throw new NixFetchError(cause); } }));
  assert.equal(err.status, 404);
  assert.equal(err.code, 'MANIFEST_UNKNOWN');
  assert.equal(err.message, 'cannot fetch the package set: unable to download https://example.invalid/x.tar.gz');
  assert.deepEqual(err.detail, { nix: cause.stderr });
});

test('other errors pass through the pipeline unchanged', async () => {
  const deps = await freshDeps(fakeNix({ readClosure: async () => { throw new TypeError('a bug'); } }));
  await assert.rejects(buildImage(parseImageName('hello'), PATH_SOURCE, deps), (err: unknown) => err instanceof TypeError && err.message === 'a bug');
});

// The coordinator, over the same fake.

async function builderWith(nix: Nix): Promise<{ builder: ImageBuilder; reports: BuildReport[]; cancel: AbortController }> {
  const deps = await freshDeps(nix);
  const cancel = new AbortController();
  const builder = new ImageBuilder({
    source: { description: 'fake', resolve: async () => PATH_SOURCE, listTags: async () => ['latest'] },
    nix,
    store: deps.store,
    layers: deps.layers,
    maxLayers: 100,
    log,
    signal: cancel.signal,
  });
  const reports: BuildReport[] = [];
  builder.onBuild((report) => reports.push(report));
  return { builder, reports, cancel };
}

test('the builder shares one build between concurrent requests and reports builds that ran Nix', async () => {
  const nix = fakeNix();
  const { builder, reports } = await builderWith(nix);
  const spec = parseImageName('hello');
  const [a, b] = await Promise.all([builder.image(spec, 'latest'), builder.image(spec, 'latest')]);
  assert.deepEqual(a, b);
  assert.equal(nix.calls.filter((c) => c.startsWith('resolve')).length, 1);
  assert.equal(builder.inflight, 0);
  await builder.image(spec, 'latest');
  // The second request evaluated again (a path source is keyed by its evaluation) but built nothing.
  assert.deepEqual(reports.map((r) => [r.image, r.outcome]), [['amd64/hello', 'built']]);
  assert.ok(reports[0]!.bytesWritten > 0);
  assert.deepEqual(builder.stats, { builds: 1, imageCacheHits: 1, imageCacheMisses: 1 });
});

test('a failed build is reported as failed; an unknown package, which ran no build, is not reported', async () => {
  const failing = await builderWith(fakeNix({ buildDerivations: async () => { throw new NixError('nix-build failed with exit code 1', '', false, 1); } }));
  await assert.rejects(failing.builder.image(parseImageName('hello'), 'latest'), { code: 'UNKNOWN' });
  assert.deepEqual(failing.reports.map((r) => r.outcome), ['failed']);
  const unknown = await builderWith(fakeNix({ resolvePackages: problems(['nope', 'unknown']) }));
  await assert.rejects(unknown.builder.image(parseImageName('nope'), 'latest'), { code: 'MANIFEST_UNKNOWN' });
  assert.deepEqual(unknown.reports, []);
});

test('a draining builder refuses new builds with 503, and a cancelled build answers 503 too', async () => {
  const drained = await builderWith(fakeNix());
  drained.builder.drain();
  await assert.rejects(drained.builder.image(parseImageName('hello'), 'latest'), (err: unknown) => err instanceof RegistryError && err.status === 503 && /shutting down/.test(err.message));

  let cancelled!: () => void;
  const { builder, reports, cancel } = await builderWith(
    fakeNix({
      buildDerivations: () =>
        new Promise((_resolve, reject) => {
          cancelled = () => reject(new NixError('nix-build was cancelled', '', false));
        }),
    }),
  );
  const pending = builder.image(parseImageName('hello'), 'latest');
  while (cancelled === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
  cancel.abort();
  cancelled();
  await assert.rejects(pending, (err: unknown) => err instanceof RegistryError && err.code === 'UNAVAILABLE' && /cancelled/.test(err.message));
  assert.deepEqual(reports.map((r) => r.outcome), ['cancelled']);
});

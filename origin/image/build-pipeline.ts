// Turns an image spec into stored manifests, one step after the other:
//
//   resolve   Nix evaluates the names: derivations, or why a name is no package
//   remember? an image already built from the same thing is answered as it is
//   build     nix-build of the derivations
//   closure   the runtime closure of the outputs, with sizes and references
//   group     the closure into at most MAX_LAYERS - 1 groups, plus the symlink tree
//   layers    each layer written once (by whichever replica gets there first)
//   manifests the config and both manifest formats
//   remember  the image record, written last
//   recheck   every object the record names is still there (record-objects.ts:
//             retention may have deleted a reused one meanwhile), or made again
//
// Everything it touches comes in as `deps` (Nix, the layer store, the image
// store), so the steps can be driven without real Nix.
//
// With `deps.roots`, the build holds GC roots (nix/gc-roots.ts) from the end of
// its source's download (done outside the GC lock) and of its evaluation
// until it ends: the origin's own garbage collection
// (nix/garbage-collector.ts) may run at any moment and must not take a .drv
// nix-build is about to read or a store path a layer is being tarred from.
import { checkSizes, type ImageLimits } from './limits.ts';
import type { LearnedPopularityStore } from '../popularity/learned-store.ts';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { NIX_SYSTEM, canonicalImage, type ImageSpec } from '../../shared/names.ts';
import type { ResolvedSource } from '../sources/source.ts';
import type { Nix } from '../nix/runner.ts';
import type { GcRoots, RootSet } from '../nix/gc-roots.ts';
import { errors } from '../../shared/errors.ts';
import type { Resolution } from '../nix/nix.ts';
import { nixProgressLog } from '../nix/progress.ts';
import { groupLayers, layerId } from '../layers/group.ts';
import { storePathName, type Popularity, type StorePathInfo } from '../layers/graph.ts';
import { storePathEntries } from '../layers/entries.ts';
import { symlinkTreeEntries, symlinkTreeId } from '../layers/symlink-tree.ts';
import type { TarEntry } from '../layers/entries.ts';
import { buildManifests, type LayerDescriptor } from './manifest.ts';
import { defaultCommand } from './default-command.ts';
import type { LayerRecipe, LayerStore } from './layer-store.ts';
import { evaluatedImageKey, sourceImageKey, type ImageRecord, type ImageStore } from './image-store.ts';
import { describeProblems, nixStep } from './nix-errors.ts';
import { mapLimit } from './map-limit.ts';
import { ensureRecordObjects, type RecordRepair } from './record-objects.ts';
import { currentBuildChannel } from './build-events.ts';

/** Told what a build did, as it does it: the builder's report is made of this. */
export interface BuildObserver {
  /** The image was not known: Nix builds it now. */
  nixStarted(): void;
  /** This build wrote a layer of `bytes` compressed bytes (layers found already written are not counted). */
  layerWritten(bytes: number): void;
}

export interface PipelineDeps {
  nix: Nix;
  layers: LayerStore;
  store: ImageStore;
  /** Layers per image, the symlink layer included. */
  maxLayers: number;
  popularity?: Popularity | undefined;
  /**
   * Runs a step when the admission queues let it (nix/admission.ts: capped,
   * queued, fair per client); at once without.
   */
  admit?: <T>(step: 'evaluation' | 'build' | 'layers', work: () => Promise<T>) => Promise<T>;
  /** What one image may cost (limits.ts), checked before anything of it is written. */
  limits?: ImageLimits | undefined;
  /** What this instance learns from its own builds (popularity/learned-store.ts). */
  learned?: LearnedPopularityStore | undefined;
  log: Logger;
  /** Cancels the layer writes (Nix itself is cancelled by its own options). */
  signal?: AbortSignal | undefined;
  observer?: BuildObserver;
  /** GC roots for what this build uses (nix/gc-roots.ts); without, nothing is rooted (no collection runs). */
  roots?: GcRoots | undefined;
  /** Makes again an object the new record names that retention deleted during the build (record-objects.ts); without, none is checked. */
  repair?: RecordRepair | undefined;
}

/** One layer to write: its identity, how to make its entries, and its size for scheduling. */
interface LayerJob {
  id: string;
  entries: () => Promise<TarEntry[]>;
  bytes: number;
  description: string;
  recipe: LayerRecipe;
}

/**
 * Tar streams one build feeds the shared deflate pool at once (layers/deflate-pool.ts
 * bounds the CPU): more than one keeps the pool busy across small layers.
 */
const LAYER_WRITERS = Math.max(1, Math.min(4, availableParallelism()));

export async function buildImage(spec: ImageSpec, source: ResolvedSource, deps: PipelineDeps): Promise<ImageRecord> {
  const roots = deps.roots?.hold();
  try {
    return await build(spec, source, deps, roots);
  } finally {
    // Failed, cancelled or stored: what only this build kept may be collected now.
    await roots?.release();
  }
}

async function build(spec: ImageSpec, source: ResolvedSource, deps: PipelineDeps, roots: RootSet | undefined): Promise<ImageRecord> {
  const started = performance.now();
  const log = deps.log.child({ image: canonicalImage(spec) });
  const channel = currentBuildChannel();
  const nixLog = nixProgressLog(log, channel && ((line) => channel.nix(line)));

  const admit = deps.admit ?? (<T>(_step: string, work: () => Promise<T>) => work());
  const resolve = () => deps.nix.resolvePackages(source.nix, NIX_SYSTEM[spec.arch], spec.packages, nixLog);
  const resolution = await nixStep('evaluation', () => admit('evaluation', async () => {
    if (!roots) return resolve();
    // The download runs outside the GC lock (Nix's temporary roots cover it while it runs), so a slow
    // one holds off no collection; the source is rooted once fetched, and resolve's own fetch finds it.
    const fetched = (await deps.nix.fetchSource?.(source.nix, nixLog)) ?? null;
    if (fetched !== null) await roots.protect([fetched]);
    // The .drv files are rooted before any collection may start; the outputs before they exist.
    const { result, missing } = await roots.evaluate(resolve, (r) => [...derivationsOf(r), ...outputsOf(r)]);
    const lost = derivationsOf(result).filter((drv) => missing.includes(drv));
    // Only a collection this origin did not run (an operator's) can take them between evaluation and roots.
    if (lost.length > 0) {
      log.warn({ lost }, 'derivations collected before they were rooted');
      throw errors.unavailable('the Nix store was garbage collected while this image was evaluated; retry', { retryable: true });
    }
    return result;
  }));
  if (resolution.problems.length > 0) throw describeProblems(resolution.problems);

  const drvs = derivationsOf(resolution);
  // A source that cannot name its version (a local path) is keyed by what it evaluated to.
  const key = source.cacheKey !== null ? sourceImageKey(source.cacheKey, spec) : evaluatedImageKey(drvs, spec);
  const known = await deps.store.lookup(key);
  if (known) return known;

  deps.observer?.nixStarted();
  const outputs = outputsOf(resolution);
  // The closure query runs in the build's slot: it is a Nix process too, and with it outside, the
  // queries of builds just done ran beside the builds the slots had admitted since (3 to 5 Nix
  // processes for 2 slots under bench:load). Inside, a build's slot holds one Nix process at a time.
  const closure = await nixStep('build', () =>
    admit('build', async () => {
      await deps.nix.buildDerivations(drvs, nixLog);
      return nixStep('closure query', () => deps.nix.readClosure(outputs, nixLog));
    }),
  );

  const jobs = layerJobs(outputs, closure, deps);
  currentBuildChannel()?.layersPlanned(jobs.length);
  let bytesWritten = 0;
  const layers = await admit('layers', () => writeLayers(jobs, deps, (bytes) => {
    bytesWritten += bytes;
    deps.observer?.layerWritten(bytes);
  }));

  const cmd = defaultCommand(spec.packages, resolution.packages);
  // No undefined field: the record stored as JSON must equal the one kept in memory.
  const input = { arch: spec.arch, layers, packages: spec.packages, ...(cmd ? { cmd } : {}) };
  const record = await deps.store.saveManifests(await buildManifests(input), input);
  await deps.store.remember(key, record);
  if (deps.repair) {
    const lost = await ensureRecordObjects(record, deps.repair);
    if (lost.length > 0) log[lost.every((l) => l.made) ? 'warn' : 'error']({ lost }, 'objects the new image record names were deleted during the build');
  }
  // Learning is an optimisation: a failed save costs layering quality, never the image.
  void deps.learned?.observeImage(key, closure.map((p) => p.path)).catch((err: unknown) => log.warn({ err }, 'learned popularity not saved'));
  log.info(
    {
      packages: spec.packages,
      closurePaths: closure.length,
      closureBytes: closure.reduce((sum, p) => sum + p.narSize, 0),
      layers: layers.length,
      bytesWritten,
      ms: Math.round(performance.now() - started),
    },
    'image built',
  );
  return record;
}

/** The derivations to build, each once, sorted (the evaluated image key depends on them). */
function derivationsOf(resolution: Resolution): string[] {
  return [...new Set(resolution.packages.flatMap((p) => p.outputs.map((o) => o.drv)))].sort();
}

/** Outputs in the image's package order: it decides which package wins a symlink collision. */
function outputsOf(resolution: Resolution): string[] {
  return [...new Set(resolution.packages.flatMap((p) => p.outputs.map((o) => o.out)))];
}

/** The closure grouped into layers (popular paths alone, the rest together), then the symlink tree. */
function layerJobs(outputs: string[], closure: StorePathInfo[], deps: PipelineDeps): LayerJob[] {
  const groups = groupLayers({ roots: outputs, paths: closure }, { budget: deps.maxLayers - 1, popularity: deps.popularity, learned: deps.learned?.current() });
  // Known once the closure is: an image over a limit is refused before any of it is written.
  if (deps.limits) checkSizes(deps.limits, closure, groups);
  const sizes = new Map(closure.map((p) => [p.path, p.narSize]));
  return [
    ...groups.map((group) => ({
      id: layerId(group),
      entries: () => storePathEntries(group),
      bytes: group.reduce((sum, path) => sum + (sizes.get(path) ?? 0), 0),
      description: `store paths: ${group.map(storePathName).join(' ')}`,
      recipe: { kind: 'store-paths' as const, paths: [...group] },
    })),
    {
      id: symlinkTreeId(outputs),
      entries: () => symlinkTreeEntries(outputs),
      bytes: 0,
      description: `symlinks to: ${outputs.map(storePathName).join(' ')}`,
      recipe: { kind: 'symlink-tree', outputs: [...outputs] },
    },
  ];
}

/**
 * Layers are written side by side, the largest first, each gzipped on every
 * core by the shared deflate pool (layers/parallel-gzip.ts).
 */
function writeLayers(jobs: LayerJob[], deps: PipelineDeps, wrote: (bytes: number) => void): Promise<LayerDescriptor[]> {
  return mapLimit(
    jobs,
    LAYER_WRITERS,
    async (job) => {
      let written = false;
      const record = await deps.layers.ensure(job.id, () => ((written = true), job.entries()), deps.signal, job.recipe);
      if (written) wrote(record.size);
      currentBuildChannel()?.layerDone(record.size, written);
      return { ...record, description: job.description.slice(0, 1024) };
    },
    (job) => job.bytes,
  );
}

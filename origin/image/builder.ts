// Turns an image spec into stored manifests: resolve packages with Nix,
// build them, group the runtime closure into layers, write each layer once,
// then write the config and both manifest formats. Finished images are
// remembered (in memory and in storage) under a key that identifies exactly
// what was built, so a known image is served without running Nix again.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { errors, RegistryError } from '../../shared/errors.ts';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA, type ManifestFormat } from '../../shared/media-types.ts';
import { NIX_SYSTEM, canonicalImage, type ImageSpec } from '../../shared/names.ts';
import { keys, type Storage } from '../storage/storage.ts';
import type { PackageSource } from '../sources/source.ts';
import { NixError, NixFetchError, NixSystemError, buildDerivations, readClosure, resolvePackages, type NixOptions, type Resolution } from '../nix/nix.ts';
import { groupLayers, layerId } from '../layers/group.ts';
import { storePathName, type Popularity } from '../layers/graph.ts';
import { storePathEntries } from '../layers/entries.ts';
import { symlinkTreeEntries } from '../layers/symlink-tree.ts';
import { Lru } from '../../shared/lru.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import { buildManifests, type LayerDescriptor } from './manifest.ts';
import { LayerStore } from './layer-store.ts';
import { mapLimit } from './map-limit.ts';
import type { NixAdmission } from '../nix/admission.ts';
import type { FailureMemory } from './failure-memory.ts';
import { checkPackages, checkSizes, type ImageLimits } from './limits.ts';
import { currentClient } from '../http/client.ts';

export interface ManifestRef {
  digest: Digest;
  size: number;
}

/** What the image cache remembers: enough to serve either manifest format. */
export interface ImageRecord {
  manifests: Record<ManifestFormat, ManifestRef>;
}

export interface BuilderOptions {
  storage: Storage;
  source: PackageSource;
  nix: NixOptions;
  maxLayers: number;
  popularity?: () => Popularity | undefined;
  log: Logger;
  /** Told about every build that ran Nix (not about cache hits): for metrics. */
  onBuild?: (report: BuildReport) => void;
  /** False while the origin drains for shutdown: work that would run Nix is refused. */
  accepting?: () => boolean;
  /** Caps and queues for Nix evaluations and builds (admission.ts); unbounded without. */
  admission?: NixAdmission;
  /** Remembers failed images for a while (failure-memory.ts). */
  failures?: FailureMemory;
  /** What one image may cost (limits.ts). */
  limits?: ImageLimits;
}

/** One build, as reported to `onBuild` once it ended. */
export interface BuildReport {
  image: string;
  outcome: 'built' | 'failed' | 'cancelled';
  seconds: number;
  /** Compressed bytes of the layers this build wrote (layers other builds wrote are not counted). */
  bytesWritten: number;
}

/** Filled in by a build as it goes, so its wrapper can report what happened. */
interface BuildProgress {
  ranNix: boolean;
  bytesWritten: number;
}

export interface BuildStats {
  builds: number;
  imageCacheHits: number;
  imageCacheMisses: number;
}

/** Lines Nix itself prints about its progress, as opposed to builders' output. */
const NIX_PROGRESS = /^\s*(these \d+ (derivations|paths)|building '|copying |downloading |fetching |querying |waiting for |building path|\/nix\/store\/\S+\.drv$)/;

/** Layers written at once by one build: one per core is where gzip stops getting faster. */
const LAYER_WRITERS = Math.max(1, Math.min(4, availableParallelism()));

const manifestKey = (digest: Digest) => `manifests/sha256/${digestHex(digest)}`;
const imageKey = (key: string) => `images/${key}.json`;

function hashKey(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

function describeProblems(problems: Resolution['problems']): RegistryError {
  const unknown = problems.filter((p) => p.error === 'unknown').map((p) => p.name);
  const notPackages = problems.filter((p) => p.error === 'not-a-package').map((p) => p.name);
  const failed = problems.filter((p) => p.error === 'evaluation-failed').map((p) => p.name);
  const parts = [
    unknown.length ? `unknown package${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}` : '',
    notPackages.length ? `not a package (an attribute set, not a derivation): ${notPackages.join(', ')}` : '',
    failed.length ? `failed to evaluate: ${failed.join(', ')}` : '',
  ].filter(Boolean);
  return errors.manifestUnknown(parts.join('; '), { unknown, notPackages, failed });
}

export class ImageBuilder {
  private readonly opts: BuilderOptions;
  private readonly images = new Lru<string, ImageRecord>(1024);
  private readonly flights = new SingleFlight<ImageRecord>();
  readonly layers: LayerStore;
  readonly stats: BuildStats = { builds: 0, imageCacheHits: 0, imageCacheMisses: 0 };

  constructor(opts: BuilderOptions) {
    this.opts = opts;
    this.layers = new LayerStore(opts.storage, opts.log);
  }

  get inflight(): number {
    return this.flights.size;
  }

  /** The image for a name and tag, built if needed; concurrent requests share one build. */
  async image(spec: ImageSpec, tag: string): Promise<ImageRecord> {
    if (this.opts.limits) checkPackages(this.opts.limits, spec.packages);
    const resolved = await this.opts.source.resolve(tag);
    const flightKey = hashKey([resolved.nix, resolved.cacheKey, canonicalImage(spec)]);
    const flight = () => this.flights.run(flightKey, async () => {
      if (resolved.cacheKey !== null) {
        const key = hashKey(['source', resolved.cacheKey, spec.arch, spec.packages]);
        const cached = await this.lookup(key);
        if (cached) return cached;
        return this.reportedBuild(spec, resolved.nix, key);
      }
      return this.reportedBuild(spec, resolved.nix, null);
    }).result;
    return this.opts.failures ? this.opts.failures.run(flightKey, flight) : flight();
  }

  private async lookup(key: string): Promise<ImageRecord | null> {
    const memory = this.images.get(key);
    if (memory) {
      this.stats.imageCacheHits++;
      return memory;
    }
    const stored = await this.opts.storage.get(imageKey(key));
    if (stored) {
      const record = JSON.parse(new TextDecoder().decode(stored)) as ImageRecord;
      this.images.set(key, record);
      this.stats.imageCacheHits++;
      return record;
    }
    this.stats.imageCacheMisses++;
    return null;
  }

  private async remember(key: string, record: ImageRecord): Promise<void> {
    this.images.set(key, record);
    await this.opts.storage.put(imageKey(key), new TextEncoder().encode(JSON.stringify(record)), MEDIA.json);
  }

  /**
   * Runs `build` unless the origin is draining, and reports builds that ran
   * Nix. A build cancelled by shutdown answers UNAVAILABLE, so the client (or
   * the edge) retries on another replica rather than seeing a server fault.
   */
  private async reportedBuild(spec: ImageSpec, source: Parameters<typeof resolvePackages>[0], sourceKey: string | null): Promise<ImageRecord> {
    if (this.opts.accepting?.() === false) throw errors.unavailable('this origin is shutting down and takes no new builds; retry', { retryable: true });
    const started = performance.now();
    const progress: BuildProgress = { ranNix: false, bytesWritten: 0 };
    const report = (outcome: BuildReport['outcome']) => {
      if (progress.ranNix) {
        this.opts.onBuild?.({ image: canonicalImage(spec), outcome, seconds: (performance.now() - started) / 1000, bytesWritten: progress.bytesWritten });
      }
    };
    try {
      const record = await this.build(spec, source, sourceKey, progress);
      report('built');
      return record;
    } catch (err) {
      if (this.opts.nix.signal?.aborted) {
        report('cancelled');
        this.opts.log.warn({ image: canonicalImage(spec), err }, 'build cancelled');
        throw errors.unavailable('the build was cancelled: this origin is shutting down; retry', { retryable: true });
      }
      report('failed');
      throw err;
    }
  }

  private async build(spec: ImageSpec, source: Parameters<typeof resolvePackages>[0], sourceKey: string | null, progress: BuildProgress): Promise<ImageRecord> {
    const { log } = this.opts;
    const started = performance.now();
    const system = NIX_SYSTEM[spec.arch];
    const buildLog = log.child({ image: canonicalImage(spec) });
    const nix = this.nixOptionsFor(buildLog);

    const resolution = await this.nixStep('evaluation', () => resolvePackages(source, system, spec.packages, nix));
    if (resolution.problems.length > 0) throw describeProblems(resolution.problems);

    const drvs = [...new Set(resolution.packages.flatMap((p) => p.outputs.map((o) => o.drv)))].sort();
    // A source that cannot name its version (a local path) is keyed by what it evaluated to.
    const key = sourceKey ?? hashKey(['drvs', drvs, spec.arch, spec.packages]);
    const cached = await this.lookup(key);
    if (cached) return cached;

    this.stats.builds++;
    progress.ranNix = true;
    await this.nixStep('build', () => buildDerivations(drvs, nix));
    // Outputs in the image's package order: it decides which package wins a symlink collision.
    const outputs = [...new Set(resolution.packages.flatMap((p) => p.outputs.map((o) => o.out)))];
    const closure = await this.nixStep('closure query', () => readClosure(outputs, nix));

    const groups = groupLayers({ roots: outputs, paths: closure }, { budget: this.opts.maxLayers - 1, popularity: this.opts.popularity?.() });
    if (this.opts.limits) checkSizes(this.opts.limits, closure, groups);
    // Gzip is the slow part of a new image and runs on one core per layer:
    // layers are written side by side, one per core, the largest first.
    const sizes = new Map(closure.map((p) => [p.path, p.narSize]));
    const jobs = [
      ...groups.map((group) => ({
        id: layerId(group),
        entries: () => storePathEntries(group),
        bytes: group.reduce((sum, path) => sum + (sizes.get(path) ?? 0), 0),
        description: `store paths: ${group.map(storePathName).join(' ')}`,
      })),
      {
        // Prefixed so a symlink tree can never share an identity with a group of store paths.
        id: layerId(outputs.map((o) => `symlink-tree:${o}`)),
        entries: () => symlinkTreeEntries(outputs),
        bytes: 0,
        description: `symlinks to: ${outputs.map(storePathName).join(' ')}`,
      },
    ];
    const layers: LayerDescriptor[] = await this.admitted('layers', () => mapLimit(
      jobs,
      LAYER_WRITERS,
      async (job) => {
        let wrote = false;
        const record = await this.layers.ensure(job.id, () => ((wrote = true), job.entries()), nix.signal);
        if (wrote) progress.bytesWritten += record.size;
        return { ...record, description: job.description.slice(0, 1024) };
      },
      (job) => job.bytes,
    ));

    const built = await buildManifests({ arch: spec.arch, layers, packages: spec.packages });
    const { storage } = this.opts;
    await storage.put(keys.blob(digestHex(built.config.digest)), built.config.bytes, built.config.mediaType, { createOnly: true });
    for (const format of ['docker', 'oci'] as const) {
      const m = built.manifests[format];
      await storage.put(manifestKey(m.digest), m.bytes, m.mediaType, { createOnly: true });
    }
    const record: ImageRecord = {
      manifests: {
        docker: { digest: built.manifests.docker.digest, size: built.manifests.docker.bytes.length },
        oci: { digest: built.manifests.oci.digest, size: built.manifests.oci.bytes.length },
      },
    };
    await this.remember(key, record);
    buildLog.info(
      {
        packages: spec.packages,
        closurePaths: closure.length,
        closureBytes: closure.reduce((sum, p) => sum + p.narSize, 0),
        layers: layers.length,
        bytesWritten: progress.bytesWritten,
        ms: Math.round(performance.now() - started),
      },
      'image built',
    );
    return record;
  }

  /**
   * Nix options for one build: Nix's own progress lines ("building '…drv'",
   * "copying …") are logged at info with the image they belong to; what the
   * builders themselves print (compiler output) goes to debug.
   */
  private nixOptionsFor(buildLog: Logger): NixOptions {
    const { nix } = this.opts;
    return {
      ...nix,
      onLog: (line) => {
        nix.onLog?.(line);
        if (NIX_PROGRESS.test(line)) buildLog.info({ nix: line.trim() }, 'nix progress');
        else buildLog.debug({ nix: line }, 'nix output');
      },
    };
  }

  /**
   * Failures of Nix that the client did not cause become a 500 with Nix's own
   * words in the detail. Two are not failures but answers about the tag or
   * name, so MANIFEST_UNKNOWN: a source that cannot be fetched, and a system
   * this origin has no builder for (it cannot ever have that image).
   */
  private async nixStep<T>(step: string, work: () => Promise<T>): Promise<T> {
    try {
      return await this.admitted(step, work);
    } catch (err) {
      if (err instanceof NixFetchError) throw errors.manifestUnknown(err.message, { nix: err.stderr });
      if (err instanceof NixSystemError) {
        throw errors.manifestUnknown(`cannot build this image: ${err.message}`, { system: err.requiredSystem, drv: err.drv, nix: err.stderr });
      }
      if (err instanceof NixError) {
        const message = err.timedOut ? `nix ${step} timed out` : `nix ${step} failed`;
        throw errors.internal(`${message}: ${err.message}`, { nix: err.stderr });
      }
      throw err;
    }
  }

  /** Runs `work` when admission.ts lets it (queued, capped), or at once without admission. */
  private admitted<T>(step: string, work: () => Promise<T>): Promise<T> {
    return this.opts.admission ? this.opts.admission.run(step, currentClient(), work, this.opts.nix.signal) : work();
  }

  /** Reads a stored manifest by digest; null when no image ever had it. */
  async manifestBytes(digest: Digest): Promise<{ bytes: Uint8Array; mediaType: string } | null> {
    const bytes = await this.opts.storage.get(manifestKey(digest));
    if (!bytes) return null;
    const mediaType = (JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: string }).mediaType ?? MEDIA.dockerManifest;
    return { bytes, mediaType };
  }
}

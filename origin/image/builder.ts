// The coordinator of image builds: given a name and a tag, it answers with
// the image record, from the image store when the image is known, else by
// running the build pipeline (build-pipeline.ts). It keeps only what spans
// builds:
// - one build per image at a time: concurrent requests share it (single flight);
// - the drain gate: once shutdown begins, work that would run Nix is refused;
// - the report: every build that ran Nix is told to the subscribers (metrics);
// - the index: a name without a platform, on an origin with several, is
//   every platform's image at once (image-index.ts), each built through the
//   same single flight as its `arm64/…` name.
import type { NixAdmission } from '../nix/admission.ts';
import type { FailureMemory } from './failure-memory.ts';
import { checkPackages, type ImageLimits } from './limits.ts';
import { currentClient } from '../http/client.ts';
import type { LearnedPopularityStore } from '../popularity/learned-store.ts';
import type { Logger } from 'pino';
import { errors, RegistryError } from '../../shared/errors.ts';
import { canonicalImage, type Architecture, type ImageSpec } from '../../shared/names.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import type { Popularity } from '../layers/graph.ts';
import type { Nix } from '../nix/runner.ts';
import type { GcRoots } from '../nix/gc-roots.ts';
import type { PackageSource, ResolvedSource } from '../sources/source.ts';
import { buildImage } from './build-pipeline.ts';
import { buildIndexes } from './image-index.ts';
import { hashKey, sourceImageKey, sourceIndexKey, type ImageRecord, type ImageStore } from './image-store.ts';
import type { LayerStore } from './layer-store.ts';
import { ensureRecordObjects, type RecordRepair } from './record-objects.ts';
import { trackBuild, type BuildChannels } from './build-events.ts';

export interface BuilderOptions {
  /** Caps and queues for Nix evaluations and builds (nix/admission.ts); unbounded without. */
  admission?: NixAdmission;
  /** Remembers failed images for a while (failure-memory.ts). */
  failures?: FailureMemory;
  /** What one image may cost (limits.ts). */
  limits?: ImageLimits;
  source: PackageSource;
  nix: Nix;
  store: ImageStore;
  layers: LayerStore;
  maxLayers: number;
  popularity?: () => Popularity | undefined;
  learned?: LearnedPopularityStore;
  log: Logger;
  /** Aborted to cancel every build (shutdown); the Nix commands carry the same signal. */
  signal?: AbortSignal;
  /** Progress of every build, for the page's live view (build-events.ts). */
  events?: BuildChannels;
  /** NIXERY_PLATFORMS: what a name without a platform is built for; the first is the default. `['amd64']` if unset. */
  platforms?: readonly Architecture[];
  /** GC roots for each build's store paths, while the origin collects Nix garbage (nix/gc-roots.ts). */
  roots?: GcRoots;
  /** Makes again what a new record names and retention deleted during its build (record-objects.ts). */
  repair?: RecordRepair;
}

/** One build, as reported to subscribers once it ended. */
export interface BuildReport {
  image: string;
  outcome: 'built' | 'failed' | 'cancelled';
  seconds: number;
  /** Compressed bytes of the layers this build wrote (layers other builds wrote are not counted). */
  bytesWritten: number;
}

export interface BuildStats {
  builds: number;
  imageCacheHits: number;
  imageCacheMisses: number;
}

export class ImageBuilder {
  private readonly opts: BuilderOptions;
  private readonly flights = new SingleFlight<ImageRecord>();
  private readonly indexFlights = new SingleFlight<ImageRecord>();
  private readonly listeners = new Set<(report: BuildReport) => void>();
  private accepting = true;
  private builds = 0;
  readonly store: ImageStore;
  readonly layers: LayerStore;

  constructor(opts: BuilderOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.layers = opts.layers;
  }

  /** Distinct images (and indexes over them) being resolved or built now. */
  get inflight(): number {
    return this.flights.size + this.indexFlights.size;
  }

  get stats(): BuildStats {
    return { builds: this.builds, imageCacheHits: this.store.stats.hits, imageCacheMisses: this.store.stats.misses };
  }

  /** Tells `listener` about every build that ran Nix (not about cache hits); returns the unsubscribe. */
  onBuild(listener: (report: BuildReport) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** From now on, work that would run Nix is refused (shutdown); known images are still served. */
  drain(): void {
    this.accepting = false;
  }

  /** The platforms a name without one is answered for; the first is the default. */
  get platforms(): readonly Architecture[] {
    return this.opts.platforms ?? ['amd64'];
  }

  /** The image for a name and tag, built if needed; concurrent requests share one build. */
  async image(spec: ImageSpec, tag: string): Promise<ImageRecord> {
    // Known from the name alone: refused before any Nix work.
    if (this.opts.limits) checkPackages(this.opts.limits, spec.packages);
    const resolved = await this.opts.source.resolve(tag);
    const build = () => this.imageOf(spec, resolved, tag);
    // Keyed by what is built, not by the tag: every tag naming the same source shares one memory.
    const failureKey = hashKey([resolved.nix, resolved.cacheKey, canonicalImage(spec)]);
    return this.opts.failures ? this.opts.failures.run(failureKey, build) : build();
  }

  /**
   * The index over every platform of this origin for a name and tag: each
   * platform's image built if needed, all at once. It carries every platform
   * or fails: an index that silently lacks one would send an ARM machine an
   * amd64 image, or "no matching manifest", for as long as caches keep it
   * (docs/sources.md, Platforms).
   */
  async index(spec: ImageSpec, tag: string): Promise<ImageRecord> {
    const platforms = this.platforms;
    const resolved = await this.opts.source.resolve(tag);
    const flightKey = hashKey(['index', resolved.nix, resolved.cacheKey, platforms, spec.packages]);
    return this.indexFlights.run(flightKey, async () => {
      const key = resolved.cacheKey !== null ? sourceIndexKey(resolved.cacheKey, platforms, spec.packages) : null;
      if (key !== null) {
        const known = await this.store.lookup(key);
        if (known) return known;
      }
      const members = await Promise.all(
        platforms.map(async (arch) => {
          try {
            return { arch, manifests: (await this.imageOf({ ...spec, arch, platformNamed: true }, resolved, tag)).manifests };
          } catch (err) {
            throw forPlatform(arch, err);
          }
        }),
      );
      // The platforms' image keys, so retention keeps those images while the index is used.
      const cacheKey = resolved.cacheKey;
      const memberKeys = cacheKey === null ? [] : platforms.map((arch) => sourceImageKey(cacheKey, { ...spec, arch, platformNamed: true }));
      const record = await this.store.saveIndexes(await buildIndexes(members), memberKeys);
      if (key !== null) await this.store.remember(key, record);
      // Its two formats may have been written by an older index retention is deleting (record-objects.ts).
      if (key !== null && this.opts.repair) {
        const lost = await ensureRecordObjects(record, this.opts.repair);
        if (lost.length > 0) this.opts.log[lost.every((l) => l.made) ? 'warn' : 'error']({ lost }, 'objects the new index record names were deleted during the build');
      }
      return record;
    }).result;
  }

  /** `tag` names the build's progress channel for the page (build-events.ts). */
  private imageOf(spec: ImageSpec, resolved: ResolvedSource, tag: string): Promise<ImageRecord> {
    const flightKey = hashKey([resolved.nix, resolved.cacheKey, canonicalImage(spec)]);
    return this.flights.run(flightKey, () => trackBuild(this.opts.events, `${canonicalImage(spec)}:${tag}`, async () => {
      if (resolved.cacheKey !== null) {
        const known = await this.store.lookup(sourceImageKey(resolved.cacheKey, spec));
        if (known) return known;
      }
      return this.reportedBuild(spec, resolved);
    })).result;
  }

  /**
   * Runs the pipeline unless the origin is draining, and reports builds that
   * ran Nix. A build cancelled by shutdown answers UNAVAILABLE, so the client
   * (or the edge) retries on another replica rather than seeing a server fault.
   */
  private async reportedBuild(spec: ImageSpec, source: ResolvedSource): Promise<ImageRecord> {
    if (!this.accepting) throw errors.unavailable('this origin is shutting down and takes no new builds; retry', { retryable: true });
    const started = performance.now();
    let ranNix = false;
    let bytesWritten = 0;
    const report = (outcome: BuildReport['outcome']) => {
      if (!ranNix) return;
      const done: BuildReport = { image: canonicalImage(spec), outcome, seconds: (performance.now() - started) / 1000, bytesWritten };
      for (const listener of this.listeners) listener(done);
    };
    const { nix, store, layers, maxLayers, log, signal } = this.opts;
    try {
      const { admission, limits } = this.opts;
      const record = await buildImage(spec, source, {
        ...(admission ? { admit: (step, work) => admission.run(step, currentClient(), work, signal) } : {}),
        limits,
        nix,
        store,
        layers,
        maxLayers,
        popularity: this.opts.popularity?.(),
        learned: this.opts.learned,
        roots: this.opts.roots,
        repair: this.opts.repair,
        log,
        signal,
        observer: {
          nixStarted: () => {
            this.builds++;
            ranNix = true;
          },
          layerWritten: (bytes) => (bytesWritten += bytes),
        },
      });
      report('built');
      return record;
    } catch (err) {
      if (signal?.aborted) {
        report('cancelled');
        log.warn({ image: canonicalImage(spec), err }, 'build cancelled');
        throw errors.unavailable('the build was cancelled: this origin is shutting down; retry', { retryable: true });
      }
      report('failed');
      throw err;
    }
  }
}

/** A platform's failure as the index's: same code, status and detail (an unknown package stays one), saying which platform. */
function forPlatform(arch: Architecture, err: unknown): unknown {
  if (!(err instanceof RegistryError)) return err;
  return new RegistryError(err.code, `linux/${arch}: ${err.message}`, err.detail, { status: err.status, headers: err.headers });
}

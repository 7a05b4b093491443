// Prometheus metrics (prom-client), on a registry of the origin's own so
// nothing else loaded in the process adds series to /metrics by accident.
//
// Labels stay bounded: requests are counted by route kind (base, manifest,
// blob, ...) and status, never by path or image name, so a scan of random
// names cannot blow up the number of series. Counters the builder keeps
// anyway are read at scrape time (collect) instead of being plumbed through;
// finished builds are observed by subscribing to the builder's reports.
import { droppedLogLines } from '../log.ts';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type express from 'express';
import type { ImageBuilder } from '../image/builder.ts';
import { routeKind } from '../http/app.ts';
import type { NixAdmission } from '../nix/admission.ts';
import type { FailureMemory } from '../image/failure-memory.ts';
import { registerAdmissionMetrics } from './admission-metrics.ts';
import type { RetentionSchedule } from '../gc/retention-schedule.ts';
import type { NixGarbageCollector } from '../nix/garbage-collector.ts';
import type { GcRoots } from '../nix/gc-roots.ts';

export interface OriginMetrics {
  registry: Registry;
  /** Must be mounted before any route whose requests are to be counted. */
  mount(app: express.Express): void;
}

const PREFIX = 'nixery_origin_';

/** Methods outside the pull API are folded together: any string can arrive as a method. */
function methodLabel(method: string): string {
  return method === 'GET' || method === 'HEAD' ? method : 'other';
}

/** Counts of what recovery made again (origin/image/blob-recovery.ts, manifest-recovery.ts). */
export interface RecoveryCounts {
  blobsRebuilt(): number;
  blobsUnrecoverable(): number;
  manifestsRederived(): number;
  /** Store paths fetched again from binary caches to rebuild lost blobs. */
  storePathsRefetched?(): number;
}

/** The origin's Nix garbage collection (nix/garbage-collector.ts) and the roots of builds in flight. */
export interface NixGcMetricsSource {
  collector: NixGarbageCollector;
  roots: GcRoots;
}

export function createMetrics(options: {
  builder: ImageBuilder;
  admission?: NixAdmission;
  failures?: FailureMemory;
  defaultMetrics?: boolean;
  recovery?: RecoveryCounts;
  nixGc?: NixGcMetricsSource;
  retention?: Pick<RetentionSchedule, 'stats' | 'onRun'>;
}): OriginMetrics {
  const { builder } = options;
  const registry = new Registry();
  // Process metrics (memory, CPU, event loop lag) size the pods' requests.
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: PREFIX });

  const requests = new Counter({
    name: `${PREFIX}http_requests_total`,
    help: 'HTTP requests answered, by route kind, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const requestSeconds = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: 'Time from request to the end of the response, by route kind, method and status. A manifest that needs a build takes as long as the build.',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const buildSeconds = new Histogram({
    name: `${PREFIX}build_duration_seconds`,
    help: 'Duration of image builds that ran Nix (evaluation, build, layers, manifests), by outcome.',
    labelNames: ['outcome'] as const,
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [registry],
  });

  // These mirror counters the builder keeps anyway, read at scrape time.
  const mirroredCounter = (name: string, help: string, read: () => number) =>
    new Counter({
      name: `${PREFIX}${name}`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  new Gauge({
    name: `${PREFIX}builds_in_flight`,
    help: 'Distinct images being resolved or built now (concurrent requests for one image share one).',
    registers: [registry],
    collect() {
      this.set(builder.inflight);
    },
  });
  mirroredCounter('log_lines_dropped_total', 'Log lines dropped because the reader of stdout fell 16 MiB behind (log.ts).', droppedLogLines);
  mirroredCounter('builds_total', 'Images built with Nix since start.', () => builder.stats.builds);
  mirroredCounter('image_cache_hits_total', 'Image lookups answered from the image cache (memory or storage) without building.', () => builder.stats.imageCacheHits);
  mirroredCounter('image_cache_misses_total', 'Image lookups that found no built image.', () => builder.stats.imageCacheMisses);
  mirroredCounter('layer_cache_hits_total', 'Layers found already written (by this replica or another).', () => builder.layers.stats.hits);
  mirroredCounter('layer_cache_misses_total', 'Layers that had to be written.', () => builder.layers.stats.misses);
  mirroredCounter(
    'layer_bytes_written_total',
    'Compressed bytes of layers written to storage (uploaded to the bucket with GCS storage).',
    () => builder.layers.stats.bytesWritten,
  );

  const recovery = options.recovery;
  if (recovery) {
    mirroredCounter('blobs_rebuilt_total', 'Layer blobs found missing or truncated in storage and rebuilt from their layer record.', () => recovery.blobsRebuilt());
    mirroredCounter('blobs_unrecoverable_total', 'Layer blobs asked for that were missing and could not be rebuilt (404 BLOB_UNKNOWN).', () => recovery.blobsUnrecoverable());
    mirroredCounter('manifests_rederived_total', 'Images whose lost or damaged manifests or config were derived again from the image record.', () => recovery.manifestsRederived());
    const refetched = recovery.storePathsRefetched?.bind(recovery);
    if (refetched) mirroredCounter('blob_store_paths_refetched_total', 'Store paths a collection had taken, fetched again from binary caches to rebuild lost blobs.', refetched);
  }

  const retention = options.retention;
  if (retention) {
    // As of the last listing: storage is listed once per run, never at scrape time.
    const stored = (name: string, help: string, read: () => number | null) =>
      new Gauge({
        name: `${PREFIX}${name}`,
        help,
        registers: [registry],
        collect() {
          const value = read();
          if (value === null) this.reset();
          else this.set(value);
        },
      });
    stored('storage_objects', 'Blobs and manifests in storage when the last retention run listed them (absent before the first run).', () => retention.stats.storedObjects);
    stored('storage_bytes', 'Bytes of blobs and manifests in storage when the last retention run listed them (absent before the first run).', () => retention.stats.storedBytes);
    mirroredCounter('retention_bytes_freed_total', 'Bytes of blobs and manifests retention deleted.', () => retention.stats.bytesFreed);
    const runs = new Counter({ name: `${PREFIX}retention_runs_total`, help: 'Retention runs, by outcome (done, failed); runs skipped because another replica ran within the interval are not counted.', labelNames: ['outcome'] as const, registers: [registry] });
    const runSeconds = new Histogram({
      name: `${PREFIX}retention_run_duration_seconds`,
      help: 'Duration of retention runs (listing, reading image records, deleting).',
      buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers: [registry],
    });
    retention.onRun((report, seconds) => {
      runs.inc({ outcome: report ? 'done' : 'failed' });
      runSeconds.observe(seconds);
    });
  }

  builder.onBuild((report) => buildSeconds.observe({ outcome: report.outcome }, report.seconds));
  if (options.nixGc) registerNixGcMetrics(registry, options.nixGc);
  if (options.admission) registerAdmissionMetrics(registry, PREFIX, options.admission, options.failures);

  return {
    registry,
    mount(app) {
      app.use((req, res, next) => {
        const started = performance.now();
        // 'close' rather than 'finish': a client that hangs up during a build is counted too.
        res.once('close', () => {
          const labels = { route: routeKind(res), method: methodLabel(req.method), status: res.writableFinished ? String(res.statusCode) : 'aborted' };
          requests.inc(labels);
          requestSeconds.observe(labels, (performance.now() - started) / 1000);
        });
        next();
      });
      app.get('/metrics', async (_req, res, next) => {
        res.locals.route = 'metrics';
        try {
          const body = await registry.metrics();
          res.status(200).set({ 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' }).send(body);
        } catch (err) {
          next(err);
        }
      });
    },
  };
}

function registerNixGcMetrics(registry: Registry, { collector, roots }: NixGcMetricsSource): void {
  new Gauge({
    name: `${PREFIX}nix_store_free_bytes`,
    help: 'Free bytes on the file system of the Nix store (statfs, as an unprivileged user sees it).',
    registers: [registry],
    async collect() {
      try {
        this.set(await collector.freeBytes());
      } catch {
        // No store to look at: the series stays at its last value rather than failing the scrape.
      }
    },
  });
  new Gauge({
    name: `${PREFIX}nix_gc_root_sets`,
    help: 'Sets of GC roots held now: builds and blob rebuilds whose store paths a collection must keep.',
    registers: [registry],
    collect() {
      this.set(roots.held);
    },
  });
  const runs = new Counter({
    name: `${PREFIX}nix_gc_runs_total`,
    help: 'Nix garbage collections run by the origin, by trigger (free-space, schedule) and outcome (done, failed).',
    labelNames: ['trigger', 'outcome'] as const,
    registers: [registry],
  });
  const seconds = new Histogram({
    name: `${PREFIX}nix_gc_duration_seconds`,
    help: 'Duration of Nix garbage collections, by trigger.',
    labelNames: ['trigger'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const freed = new Counter({
    name: `${PREFIX}nix_gc_freed_bytes_total`,
    help: 'Bytes Nix garbage collections freed in the store (as nix-store reports them).',
    registers: [registry],
  });
  const deleted = new Counter({
    name: `${PREFIX}nix_gc_deleted_paths_total`,
    help: 'Store paths Nix garbage collections deleted.',
    registers: [registry],
  });
  for (const trigger of ['free-space', 'schedule'] as const) {
    // Present from the start at 0, so rate() and alerts see a series before the first run.
    for (const outcome of ['done', 'failed'] as const) runs.inc({ trigger, outcome }, 0);
  }
  collector.onRun((run) => {
    runs.inc({ trigger: run.trigger, outcome: run.outcome });
    seconds.observe({ trigger: run.trigger }, run.seconds);
    freed.inc(run.bytesFreed);
    deleted.inc(run.paths);
  });
}

// Starts the origin: read the configuration once, set up storage and the
// package source, and serve; on SIGTERM, drain and exit (ops/shutdown.ts).
// Invalid configuration ends start-up with one line naming the variable.
import { readConfig, ConfigError, type OriginConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createStorage } from './storage/create.ts';
import { createSource } from './sources/create.ts';
import { tagWorkGate } from './nix/tag-work-gate.ts';
import { currentClient } from './http/client.ts';
import { ImageBuilder } from './image/builder.ts';
import { BuildChannels } from './image/build-events.ts';
import { PackageIndexes } from './search/indexes.ts';
import { mountApi } from './http/api.ts';
import { scheduleStagingSweep } from './gc/staging.ts';
import { RetentionSchedule } from './gc/retention-schedule.ts';
import { retentionPolicy } from './gc/retention.ts';
import { remakeObject } from './image/remake-object.ts';
import { ManifestRecovery } from './image/manifest-recovery.ts';
import { BlobRecovery } from './image/blob-recovery.ts';
import { ImageStore } from './image/image-store.ts';
import { LayerStore } from './image/layer-store.ts';
import { nixCli } from './nix/runner.ts';
import { realisePaths } from './nix/nix.ts';
import { createApp } from './http/app.ts';
import { mountHealth } from './ops/health.ts';
import { createMetrics } from './ops/metrics.ts';
import { GracefulShutdown } from './ops/shutdown.ts';
import { loadPopularity } from './popularity/load.ts';
import { LearnedPopularityStore } from './popularity/learned-store.ts';
import { checkNixCanBuild } from './nix/preflight.ts';
import { closeSharedDeflatePool, configureSharedDeflatePool, sharedDeflatePool } from './layers/deflate-pool.ts';
import { closeSharedLauncher, sharedLauncher } from './nix/process-launcher.ts';
import { NixAdmission } from './nix/admission.ts';
import { FailureMemory } from './image/failure-memory.ts';
import { StoredUsageLog } from './gc/usage.ts';
import { ImageHits } from './gc/image-hits.ts';
import { mountEdgeHits } from './http/edge-hits.ts';
import { GcLock } from './nix/gc-lock.ts';
import { GcRoots } from './nix/gc-roots.ts';
import { NixGarbageCollector } from './nix/garbage-collector.ts';

let config: OriginConfig;
try {
  config = readConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`nixery-edge origin: invalid configuration: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const log = createLogger(config.logLevel);
// Before any layer is written: the workers take their niceness when they start.
configureSharedDeflatePool({ niceness: config.layerNiceness });
// A Nix that cannot build is named now, in one line, rather than by the first pull.
// The origin still starts: it can serve every image already in storage.
const nix = await checkNixCanBuild({ timeoutSeconds: config.nixTimeoutSeconds });
if (!nix.ok) {
  process.stderr.write(`nixery-edge origin: Nix cannot build: ${nix.problem}\n`);
  log.error({ problem: nix.problem }, 'nix cannot build');
}
try {
  const storage = await createStorage(config.storage);
  const admission = new NixAdmission(config.admission);
  const failures = new FailureMemory({ ttlSeconds: config.failureTtlSeconds });
  const gate = tagWorkGate(admission, failures, currentClient);
  const source = createSource(config.source, gate);
  // Loaded once: layering must not change while the origin runs.
  const popularity = config.popularityUrl ? await loadPopularity(config.popularityUrl, storage, log) : undefined;
  // Counts of the images this instance built, shared by replicas through storage (docs/layering.md).
  const learned = await LearnedPopularityStore.open(storage, config.replicaId);
  // One signal for every build: shutdown cancels whatever outlives the grace period.
  const cancelBuilds = new AbortController();
  const events = new BuildChannels();
  const images = new ImageStore(storage);
  const layers = new LayerStore(storage, log);
  // Builds root what they use; only then may the origin collect the store's garbage.
  const gcLock = new GcLock();
  const roots = await GcRoots.open(config.nixGc.rootsDir, gcLock).then(
    ({ roots, staleRemoved }) => {
      if (staleRemoved > 0) log.info({ staleRemoved, dir: config.nixGc.rootsDir }, 'GC roots of origins no longer running removed');
      return roots;
    },
    (err: unknown) => {
      log.error({ err, dir: config.nixGc.rootsDir }, 'cannot make GC roots: the Nix store is not garbage collected by this origin');
      return undefined;
    },
  );
  const nixGc = roots
    ? new NixGarbageCollector({ config: config.nixGc, lock: gcLock, nix: { timeoutSeconds: config.nixTimeoutSeconds, signal: cancelBuilds.signal }, log })
    : undefined;
  // A lost blob whose store paths were collected fetches them again from the binary caches (NIX_CONFIG substituters).
  const blobRecovery = new BlobRecovery(storage, layers, log, roots, (paths) => realisePaths(paths, { timeoutSeconds: config.nixTimeoutSeconds, signal: cancelBuilds.signal }), {
    rememberLostMs: config.failureTtlSeconds * 1000,
  });
  const manifestRecovery = new ManifestRecovery(storage, images, log);
  const builder = new ImageBuilder({
    source,
    nix: nixCli({ timeoutSeconds: config.nixTimeoutSeconds, signal: cancelBuilds.signal }),
    store: images,
    layers,
    maxLayers: config.maxLayers,
    popularity: () => popularity,
    learned,
    log,
    signal: cancelBuilds.signal,
    events,
    platforms: config.platforms,
    admission,
    failures,
    limits: config.limits,
    ...(roots ? { roots } : {}),
    // Objects a new record names that retention deleted while the image was built are made again at once.
    repair: { storage, remake: (digest) => remakeObject(blobRecovery, manifestRecovery, digest) },
  });
  const indexes = new PackageIndexes({ source, storage, nix: { timeoutSeconds: config.nixTimeoutSeconds, signal: cancelBuilds.signal }, log, gate });
  // Both take the builder: metrics subscribe to its reports, shutdown drains it.
  // Manifests answered here or reported by the edge are the images' last use, which retention reads.
  const usageIntervalMs = config.usageWriteIntervalSeconds * 1000;
  const usage = new StoredUsageLog(storage, { intervalMs: usageIntervalMs });
  const hits = new ImageHits(storage, images, usage, { intervalMs: usageIntervalMs, log });
  // Off with NIXERY_RETENTION_DAYS=0.
  const retention =
    config.retention.maxIdleDays > 0
      ? new RetentionSchedule({
          storage,
          policy: retentionPolicy(config.retention, config.usageWriteIntervalSeconds),
          lastUsed: (key) => usage.lastUsed(key),
          intervalMs: config.retention.intervalSeconds * 1000,
          replicaId: config.replicaId,
          log,
          forget: (key) => images.forget(key),
          repair: (digest) => remakeObject(blobRecovery, manifestRecovery, digest),
        })
      : null;
  const metrics = createMetrics({
    builder,
    ...(retention ? { retention } : {}),
    admission,
    failures,
    recovery: {
      blobsRebuilt: () => blobRecovery.stats.recovered,
      blobsUnrecoverable: () => blobRecovery.stats.unrecoverable,
      manifestsRederived: () => manifestRecovery.recovered,
      storePathsRefetched: () => blobRecovery.stats.pathsRealised,
    },
    ...(nixGc && roots ? { nixGc: { collector: nixGc, roots } } : {}),
  });
  const shutdown = new GracefulShutdown({ builder, cancel: cancelBuilds, graceSeconds: config.shutdownGraceSeconds, log });
  const app = createApp({
    builder,
    images,
    storage,
    source,
    recovery: blobRecovery,
    // A client's blob rebuild (layer digests are public) waits in the build queue like a build.
    admitRebuild: (work) => admission.run('build', currentClient(), work),
    manifestRecovery,
    hits,
    log,
    originSecrets: config.originSecrets,
    api: (app) => {
      mountApi(app, { builder, storage, indexes, events });
      mountEdgeHits(app, hits);
    },
    extra: (app) => {
      metrics.mount(app);
      app.use(shutdown.middleware());
      mountHealth(app, { storage, log, draining: () => shutdown.draining });
    },
  });
  const server = app.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    log.info({ port, source: source.description, storage: storage.name, platforms: config.platforms }, `origin listening on http://${config.host}:${port}`);
  });
  server.on('error', (err) => {
    log.fatal({ err }, 'cannot listen');
    process.exit(1);
  });
  shutdown.serve(server);
  // Started with the origin, so the first new image does not wait for them.
  sharedDeflatePool().warm();
  sharedLauncher().warm();
  scheduleStagingSweep(storage, log);
  retention?.start();
  if (nixGc) {
    nixGc.start();
    // Builds are what fill the store: its free space is looked at after each one too.
    builder.onBuild(() => void nixGc.check());
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      nixGc?.stop();
      void shutdown
        .begin(signal)
        // The gzip workers end with the builds that used them, before the process does.
        .then(async (code) => {
          await closeSharedDeflatePool();
          // No build runs any more: nothing of this process needs its roots.
          await roots?.close().catch((err: unknown) => log.warn({ err }, 'GC roots not removed'));
          await closeSharedLauncher();
          process.exit(code);
        });
    });
  }
} catch (err) {
  process.stderr.write(`nixery-edge origin: cannot start: ${(err as Error).message}\n`);
  process.exit(1);
}

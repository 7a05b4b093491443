// Starts the origin: read the configuration once, set up storage and the
// package source, and serve; on SIGTERM, drain and exit (ops/shutdown.ts).
// Invalid configuration ends start-up with one line naming the variable.
import { readConfig, ConfigError, type OriginConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createStorage } from './storage/create.ts';
import { createSource } from './sources/create.ts';
import { ImageBuilder } from './image/builder.ts';
import { BuildChannels } from './image/build-events.ts';
import { PackageIndexes } from './search/indexes.ts';
import { mountApi } from './http/api.ts';
import { scheduleStagingSweep } from './gc/staging.ts';
import { ManifestRecovery } from './image/manifest-recovery.ts';
import { BlobRecovery } from './image/blob-recovery.ts';
import { ImageStore } from './image/image-store.ts';
import { LayerStore } from './image/layer-store.ts';
import { nixCli } from './nix/runner.ts';
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
  const source = createSource(config.source);
  // Loaded once: layering must not change while the origin runs.
  const popularity = config.popularityUrl ? await loadPopularity(config.popularityUrl, storage, log) : undefined;
  // Counts of the images this instance built, shared by replicas through storage (docs/layering.md).
  const learned = await LearnedPopularityStore.open(storage, config.replicaId);
  // One signal for every build: shutdown cancels whatever outlives the grace period.
  const cancelBuilds = new AbortController();
  const events = new BuildChannels();
  const images = new ImageStore(storage);
  const admission = new NixAdmission(config.admission);
  const failures = new FailureMemory({ ttlSeconds: config.failureTtlSeconds });
  const layers = new LayerStore(storage, log);
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
  });
  const indexes = new PackageIndexes({ source, storage, nix: { timeoutSeconds: config.nixTimeoutSeconds, signal: cancelBuilds.signal }, log });
  // Both take the builder: metrics subscribe to its reports, shutdown drains it.
  const blobRecovery = new BlobRecovery(storage, layers, log);
  const manifestRecovery = new ManifestRecovery(storage, images, log);
  const metrics = createMetrics({
    builder,
    admission,
    failures,
    recovery: {
      blobsRebuilt: () => blobRecovery.stats.recovered,
      blobsUnrecoverable: () => blobRecovery.stats.unrecoverable,
      manifestsRederived: () => manifestRecovery.recovered,
    },
  });
  const shutdown = new GracefulShutdown({ builder, cancel: cancelBuilds, graceSeconds: config.shutdownGraceSeconds, log });
  const app = createApp({
    builder,
    images,
    storage,
    source,
    recovery: blobRecovery,
    manifestRecovery,
    log,
    originSecrets: config.originSecrets,
    api: (app) => mountApi(app, { builder, storage, indexes, events }),
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
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () =>
      void shutdown
        .begin(signal)
        // The gzip workers end with the builds that used them, before the process does.
        .then(async (code) => {
          await closeSharedDeflatePool();
          await closeSharedLauncher();
          process.exit(code);
        }),
    );
  }
} catch (err) {
  process.stderr.write(`nixery-edge origin: cannot start: ${(err as Error).message}\n`);
  process.exit(1);
}

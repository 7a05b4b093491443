// Starts the origin: read the configuration once, set up storage and the
// package source, and serve; on SIGTERM, drain and exit (ops/shutdown.ts).
// Invalid configuration ends start-up with one line naming the variable.
import { readConfig, ConfigError, type OriginConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createStorage } from './storage/create.ts';
import { createSource } from './sources/create.ts';
import { ImageBuilder } from './image/builder.ts';
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
import { checkNixCanBuild } from './nix/preflight.ts';

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
  // One signal for every build: shutdown cancels whatever outlives the grace period.
  const cancelBuilds = new AbortController();
  const images = new ImageStore(storage);
  const layers = new LayerStore(storage, log);
  const builder = new ImageBuilder({
    source,
    nix: nixCli({ timeoutSeconds: config.nixTimeoutSeconds, signal: cancelBuilds.signal }),
    store: images,
    layers,
    maxLayers: config.maxLayers,
    popularity: () => popularity,
    log,
    signal: cancelBuilds.signal,
  });
  // Both take the builder: metrics subscribe to its reports, shutdown drains it.
  const blobRecovery = new BlobRecovery(storage, layers, log);
  const manifestRecovery = new ManifestRecovery(storage, images, log);
  const metrics = createMetrics({
    builder,
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
    recovery: blobRecovery,
    manifestRecovery,
    log,
    originSecrets: config.originSecrets,
    extra: (app) => {
      metrics.mount(app);
      app.use(shutdown.middleware());
      mountHealth(app, { storage, log, draining: () => shutdown.draining });
    },
  });
  const server = app.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    log.info({ port, source: source.description, storage: storage.name }, `origin listening on http://${config.host}:${port}`);
  });
  server.on('error', (err) => {
    log.fatal({ err }, 'cannot listen');
    process.exit(1);
  });
  shutdown.serve(server);
  scheduleStagingSweep(storage, log);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => void shutdown.begin(signal).then((code) => process.exit(code)));
  }
} catch (err) {
  process.stderr.write(`nixery-edge origin: cannot start: ${(err as Error).message}\n`);
  process.exit(1);
}

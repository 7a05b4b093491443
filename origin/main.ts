// Starts the origin: read the configuration once, set up storage and the
// package source, and serve. Invalid configuration ends start-up with one
// line naming the variable.
import { readConfig, ConfigError, type OriginConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createStorage } from './storage/create.ts';
import { createSource } from './sources/create.ts';
import { ImageBuilder } from './image/builder.ts';
import { createApp } from './http/app.ts';

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
try {
  const storage = await createStorage(config.storage);
  const source = createSource(config.source);
  const builder = new ImageBuilder({
    storage,
    source,
    nix: { timeoutSeconds: config.nixTimeoutSeconds, onLog: (line) => log.debug({ nix: line }, 'nix') },
    maxLayers: config.maxLayers,
    log,
  });
  const app = createApp({ builder, storage, log, originSecret: config.originSecret });
  const server = app.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    log.info({ port, source: source.description, storage: storage.name }, `origin listening on http://${config.host}:${port}`);
  });
  server.on('error', (err) => {
    log.fatal({ err }, 'cannot listen');
    process.exit(1);
  });
} catch (err) {
  process.stderr.write(`nixery-edge origin: cannot start: ${(err as Error).message}\n`);
  process.exit(1);
}

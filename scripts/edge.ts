// `npm run edge`: the Worker on 127.0.0.1:${EDGE_PORT:-8787} in workerd,
// in front of ORIGIN_URL (default http://127.0.0.1:8080), with
// ORIGIN_SECRET from the environment. Any other variable of wrangler.toml's
// [vars] can be overridden the same way (e.g. MANIFEST_TAG_TTL=5).
// EDGE_CACHE_DIR and EDGE_KV_DIR keep the Cache API's and KV's entries in
// directories: two edges on two ports with their own EDGE_CACHE_DIR and one
// EDGE_KV_DIR are two regions sharing the global tier (docs/edge.md).
import { bundleWorker, startEdge } from './edge-runtime.ts';

const SECRETS = ['ORIGIN_SECRET', 'GCS_SIGNING_KEY'];

const bundle = await bundleWorker();
const bindings: Record<string, string> = { ORIGIN_URL: process.env.ORIGIN_URL || 'http://127.0.0.1:8080' };
for (const name of [...Object.keys(bundle.vars), ...SECRETS]) {
  const value = process.env[name];
  if (value !== undefined && value !== '' && name !== 'ORIGIN_URL') bindings[name] = value;
}
const port = Number(process.env.EDGE_PORT || 8787);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`nixery-edge: EDGE_PORT must be a port number, got ${JSON.stringify(process.env.EDGE_PORT)}\n`);
  process.exit(2);
}

const cacheDir = process.env.EDGE_CACHE_DIR || undefined;
const kvDir = process.env.EDGE_KV_DIR || undefined;
const edge = await startEdge({
  bundle,
  bindings,
  host: '127.0.0.1',
  port,
  log: true,
  ...(cacheDir !== undefined ? { cachePersist: cacheDir } : {}),
  ...(kvDir !== undefined ? { kvPersist: kvDir } : {}),
});
process.stderr.write(
  `nixery-edge: edge listening on ${edge.url}, forwarding to ${bindings.ORIGIN_URL}` +
    `${bindings.ORIGIN_SECRET ? ' with ORIGIN_SECRET' : ' without ORIGIN_SECRET'}\n`,
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    edge.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

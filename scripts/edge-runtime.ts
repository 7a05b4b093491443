// Runs the Worker locally in workerd through miniflare's API: what
// `npm run edge`, the tests and the benchmark share.
//
// The Worker is bundled by `wrangler deploy --dry-run --outdir`, so what runs
// here is byte for byte what `wrangler deploy` uploads (same esbuild
// settings, same resolution of itty-router). It costs a few seconds once per
// process; miniflare then serves several times faster than `wrangler dev`'s
// proxy (measured: docs/edge.md), which matters for the benchmark and keeps the tests
// quick.
import { execFile } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { accessSync, constants, rmSync, statfsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Log, LogLevel, Miniflare } from 'miniflare';

export const REPO = fileURLToPath(new URL('../', import.meta.url));
const WRANGLER = join(REPO, 'node_modules/wrangler/bin/wrangler.js');

export interface WorkerBundle {
  /** The ES module wrangler would upload. */
  script: string;
  compatibilityDate: string;
  /** [vars] of wrangler.toml: the defaults a deployed Worker starts with. */
  vars: Record<string, string>;
  /** Bindings of wrangler.toml's [[kv_namespaces]] (GLOBAL_MANIFESTS). */
  kvNamespaces: string[];
  /** [[ratelimits]] of wrangler.toml: binding name → its simple limit, as miniflare takes them. */
  ratelimits: Record<string, RateLimitSpec>;
}

export interface RateLimitSpec {
  simple: { limit: number; period: 10 | 60 };
}

/**
 * Reads the two things the local run takes from wrangler.toml. Only the
 * subset of TOML that file uses is understood (`key = "string"` lines, and
 * numbers or booleans); anything else under [vars] is an error rather than a
 * silently different local run. (wrangler's own reader takes 5 s to load.)
 */
export function readWranglerToml(text: string): { compatibilityDate: string; vars: Record<string, string>; kvNamespaces: string[]; ratelimits: Record<string, RateLimitSpec> } {
  let section = '';
  let compatibilityDate: string | undefined;
  const vars: Record<string, string> = {};
  const kvNamespaces: string[] = [];
  const ratelimits: Record<string, RateLimitSpec> = {};
  let rateLimitName: string | undefined;
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.replace(/^\s+|\s+$/g, '');
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const pair = /^([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+(?:\.\d+)?|true|false))\s*(?:#.*)?$/.exec(line);
    if (section === '' && pair?.[1] === 'compatibility_date') compatibilityDate = pair[2];
    if (section === 'kv_namespaces' && pair?.[1] === 'binding' && pair[2] !== undefined) kvNamespaces.push(pair[2]);
    if (section === 'ratelimits') {
      // `name = "…"` then `simple = { limit = N, period = 10|60 }`, the one shape this file uses.
      if (pair?.[1] === 'name') rateLimitName = pair[2];
      const simple = /^simple\s*=\s*\{\s*limit\s*=\s*(\d+)\s*,\s*period\s*=\s*(10|60)\s*\}\s*(?:#.*)?$/.exec(line);
      if (simple && rateLimitName !== undefined) ratelimits[rateLimitName] = { simple: { limit: Number(simple[1]), period: Number(simple[2]) as 10 | 60 } };
      else if (!pair) throw new Error(`wrangler.toml:${index + 1}: cannot read this [[ratelimits]] line locally: ${line}`);
      continue;
    }
    if (section !== 'vars') continue;
    if (!pair) throw new Error(`wrangler.toml:${index + 1}: cannot read this [vars] line locally: ${line}`);
    vars[pair[1]!] = pair[2] !== undefined ? (JSON.parse(`"${pair[2]}"`) as string) : pair[3]!;
  }
  if (compatibilityDate === undefined) throw new Error('wrangler.toml has no compatibility_date');
  return { compatibilityDate, vars, kvNamespaces, ratelimits };
}

/** Bundles the Worker as `wrangler deploy` would, without deploying it. */
export async function bundleWorker(): Promise<WorkerBundle> {
  const outdir = await mkdtemp(join(tmpdir(), 'nixery-edge-bundle-'));
  try {
    await promisify(execFile)(process.execPath, [WRANGLER, 'deploy', '--dry-run', '--outdir', outdir, '--config', join(REPO, 'wrangler.toml')], {
      cwd: REPO,
      // Offline and quiet: no telemetry or error reports, no banner, no colours in errors.
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', WRANGLER_SEND_ERROR_REPORTS: 'false', WRANGLER_HIDE_BANNER: 'true', NO_COLOR: '1', FORCE_COLOR: '0' },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((err: { stderr?: string; stdout?: string; message: string }) => {
      throw new Error(`wrangler could not bundle the Worker: ${err.stderr || err.stdout || err.message}`);
    });
    const script = await readFile(join(outdir, 'worker.js'), 'utf8');
    return { script, ...readWranglerToml(await readFile(join(REPO, 'wrangler.toml'), 'utf8')) };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

export interface StartEdgeOptions {
  bundle: WorkerBundle;
  /** Bindings over wrangler.toml's [vars] (ORIGIN_URL, ORIGIN_SECRET, GCS_*...). */
  bindings?: Record<string, string>;
  host?: string;
  /** 0 for any free port. */
  port?: number;
  /** A directory for the Cache API's entries, to keep them across restarts; in memory otherwise (ephemeralRoot). One per edge: a data centre's cache is its own. */
  cachePersist?: string;
  /**
   * A directory for the KV namespaces (the global manifest tier). Edges
   * given the same directory share one global store, as Cloudflare's data
   * centres share KV: two of them are two regions. In memory otherwise
   * (ephemeralRoot).
   */
  kvPersist?: string;
  /** Bind wrangler.toml's [[kv_namespaces]] (default true); false runs the edge without a global tier. */
  globalStore?: boolean;
  /** Print the Worker's console output and miniflare's notices (off in tests, whose output stays clean). */
  log?: boolean;
  /**
   * Put a small TCP front before workerd that hangs up on TLS handshakes
   * (default true). Clients told a registry is insecure (skopeo, podman,
   * docker) try HTTPS first; workerd waits for an HTTP request that never
   * comes and the client gives up only after its 10 s handshake timeout. The
   * front makes that first attempt fail at once. The benchmark turns it off
   * to measure workerd alone.
   */
  refuseTls?: boolean;
  /** Replaces wrangler.toml's [[ratelimits]] (tests and the benchmark set their own limits). */
  ratelimits?: Record<string, RateLimitSpec>;
  /** false: the Cache API stores nothing (a benchmark's edge without its local stand-ins); true by default. */
  cacheApi?: boolean;
}

export interface RunningEdge {
  /** Where clients connect (the front, when there is one). */
  url: string;
  port: number;
  /** workerd's own socket. */
  workerUrl: string;
  miniflare: Miniflare;
  /** The directory of the stores not given one (removed at stop); null when both were given. */
  storesDir: string | null;
  stop(): Promise<void>;
}

/** Room /dev/shm must have free to be used: the Cache API also holds blobs when the edge delivers them (up to BLOB_CACHE_MAX_BYTES). */
const SHM_MIN_FREE_BYTES = 1024 ** 3;

/**
 * Where the local stand-ins for the Cache API and KV keep what they are not
 * told to keep elsewhere: in memory (/dev/shm) when the machine has it with
 * room to spare (a container's is often 64 MiB), else the temp directory.
 *
 * miniflare keeps them in SQLite files under the system's temp directory
 * even when nothing is to persist, and commits every write with fsync on
 * workerd's one thread. On Cloudflare these services are remote and the
 * Worker's thread never waits for a disk; here, while the origin was writing
 * layers, single fsyncs took up to 23 ms, and workerd answered nothing
 * meanwhile (bench:load, docs/operations.md).
 */
export function ephemeralRoot(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    const { bavail, bsize } = statfsSync('/dev/shm');
    return bavail * bsize >= SHM_MIN_FREE_BYTES ? '/dev/shm' : tmpdir();
  } catch {
    return tmpdir();
  }
}

export async function startEdge(options: StartEdgeOptions): Promise<RunningEdge> {
  const host = options.host ?? '127.0.0.1';
  const refuseTls = options.refuseTls ?? true;
  const stores = options.cachePersist === undefined || options.kvPersist === undefined ? await mkdtemp(join(ephemeralRoot(), 'nixery-edge-stores-')) : null;
  // In memory, a store left behind holds memory until the machine restarts: removed at stop, and at the
  // latest when this process exits (a test runner's forced exit does not stop what its tests started).
  const removeAtExit = () => rmSync(stores!, { recursive: true, force: true });
  if (stores !== null) process.once('exit', removeAtExit);
  const dropStores = async () => {
    if (stores === null) return;
    process.off('exit', removeAtExit);
    await rm(stores, { recursive: true, force: true });
  };
  let miniflare: Miniflare;
  try {
    // `stores` is null only when both directories are given.
    const persist = { cache: options.cachePersist ?? join(stores!, 'cache'), kv: options.kvPersist ?? join(stores!, 'kv') };
    miniflare = startMiniflare(options, host, refuseTls, persist);
  } catch (err) {
    await dropStores();
    throw err;
  }
  const dispose = async () => {
    try {
      await miniflare.dispose();
    } finally {
      await dropStores();
    }
  };
  const workerUrl = await miniflare.ready.catch(async (err: unknown) => {
    await dispose();
    throw err;
  });
  if (!refuseTls) {
    return { url: workerUrl.origin, port: Number(workerUrl.port), workerUrl: workerUrl.origin, miniflare, storesDir: stores, stop: dispose };
  }
  let front: Server;
  try {
    front = await listenFront(host, options.port ?? 0, Number(workerUrl.port));
  } catch (err) {
    await dispose();
    throw err;
  }
  const address = front.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://${host}:${port}`,
    port,
    workerUrl: workerUrl.origin,
    miniflare,
    storesDir: stores,
    async stop() {
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await dispose();
    },
  };
}

/** `persist`: the directories of the Cache API's and KV's stores. */
function startMiniflare(options: StartEdgeOptions, host: string, refuseTls: boolean, persist: { cache: string; kv: string }): Miniflare {
  const { bundle } = options;
  return new Miniflare({
    host,
    port: refuseTls ? 0 : (options.port ?? 0),
    modules: true,
    script: bundle.script,
    compatibilityDate: bundle.compatibilityDate,
    bindings: { ...bundle.vars, ...options.bindings },
    ratelimits: options.ratelimits ?? bundle.ratelimits,
    // The real Request.cf comes from workers.cloudflare.com; offline, miniflare's placeholder without trying.
    cf: false,
    cache: options.cacheApi ?? true,
    cachePersist: persist.cache,
    // Namespace id = binding name: every edge sharing kvPersist sees the same namespace.
    ...(options.globalStore !== false && bundle.kvNamespaces.length > 0 ? { kvNamespaces: Object.fromEntries(bundle.kvNamespaces.map((name) => [name, name])) } : {}),
    kvPersist: persist.kv,
    ...(options.log ? { log: new Log(LogLevel.INFO) } : {}),
  });
}

/** A TLS record starts with content type 22 (handshake); no HTTP request starts with that byte. */
const TLS_HANDSHAKE = 0x16;

function listenFront(host: string, port: number, workerPort: number): Promise<Server> {
  const sockets = new Set<Socket>();
  // noDelay: without it Nagle's algorithm meets delayed ACKs on every small response (40 ms each).
  const server = createServer({ noDelay: true }, (client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.once('error', () => client.destroy());
    client.once('data', (first: Buffer) => {
      if (first[0] === TLS_HANDSHAKE) {
        client.destroy();
        return;
      }
      client.pause();
      const upstream = connect({ port: workerPort, host, noDelay: true }, () => {
        upstream.write(first);
        client.pipe(upstream).pipe(client);
      });
      sockets.add(upstream);
      upstream.once('close', () => {
        sockets.delete(upstream);
        client.destroy();
      });
      upstream.once('error', () => upstream.destroy());
      client.once('close', () => upstream.destroy());
    });
  });
  // close() waits for open connections; keep-alive clients would hold it forever.
  const close = server.close.bind(server);
  server.close = (callback?: (err?: Error) => void) => {
    for (const socket of sockets) socket.destroy();
    return close(callback);
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

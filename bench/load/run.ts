// Load on a bounded origin, on loopback only: strangers asking for many
// distinct images and many distinct unknown names at once, one of them
// flooding, while one client keeps pulling an image that is already cached
// (through the edge: edge hits; straight at the origin, by digest: the
// origin's storage, no Nix). Nix processes under the origin are sampled from /proc.
//
// Through the edge, the cached client pulls two ways. Through the edge the
// strangers use: locally that is one workerd process, whose one thread runs
// every isolate, so the strangers' requests and the cached client's take
// turns on it (bench:burst measures what that costs any Worker). And
// through an edge of its own, pointed at the same origin: on Cloudflare, a
// burst from many clients is spread over many machines' isolates, and what
// reaches the cached client from the strangers is the origin's load, not
// their requests on its isolate's thread. Both edges cache alike; the
// second shares only the machine's cores with the rest.
//
// Goals: Nix processes never exceed the caps; every request ends with an
// image, a 404 for an unknown name, or a clear 429/503 (nothing hangs);
// the cached client's p99 stays within 2x its p99 on an idle origin.
//
// The load comes from a worker thread at LOAD_NICENESS (default 10, as Nix;
// 0 to let it compete with the servers as an equal): strangers' clients do
// not run on the origin's cores. The cached clients (one per way above) run
// in a thread of their own (cached-clients.ts), all at once, idle as under
// load, after a warm-up that is not counted: the two phases differ only by
// the load. Each sends LOAD_CACHED_RATE requests a second (200) on schedule
// and times each from when it was due, so a stall counts for every request
// it held up; LOAD_CACHED_RATE=0 sends back to back instead, each after the
// previous answer, which counts a stall once.
//
// Run: npm run bench:load   (LOAD_CLIENTS=N, default 30; LOAD_ROUNDS=N, default
// 3, each on a fresh origin and edge; prints markdown tables)
// LOAD_CPU_PROFILE=DIR has the origin write CPU profiles there (open them in
// Chrome's DevTools). LOAD_UNBOUNDED=1 lifts every limit (caps, queue, shares, failure memory,
// the edge's rate limit) to show what the same load does without them.
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { execa } from 'execa';
import { nixEnvironment } from '../../origin/nix/settings.ts';
import { Worker } from 'node:worker_threads';
import type { Peaks } from './sampler.ts';
import { cpuBetween, cpuSnapshot, type CpuUse } from './cpu.ts';
import { get, REQUEST_LIMIT_MS, type Outcome } from './http.ts';
import { median, percentile } from '../stats.ts';
import type { GeneratorInput, GeneratorOutput } from './generator.ts';
import type { CachedClientsInput, CachedClientsOutput, CachedClientsRequest } from './cached-clients.ts';
import { startOrigin } from '../../test/support/origin.ts';
import { startEdge } from '../../test/support/edge.ts';

const N = Number(process.env.LOAD_CLIENTS ?? 30);
const ROUNDS = Number(process.env.LOAD_ROUNDS ?? 3);
// Enough for a steady p99 (its 10th-worst); under load the clients run for as long as the load lasts, and at least this.
const IDLE_REQUESTS = 1000;
// Before the idle phase, not counted: the first requests after start-up run code the JIT has not compiled yet.
const WARM_UP_REQUESTS = 200;
const LOAD_NICENESS = Number(process.env.LOAD_NICENESS ?? 10);
/** Requests per second of each cached client, on schedule; 0 for back to back (cached-clients.ts). */
const CACHED_RATE = Number(process.env.LOAD_CACHED_RATE ?? 200);
/** Where the origin writes V8 CPU profiles of each round, one per thread (`node --cpu-prof`); none unless set. */
const PROFILE_DIR = process.env.LOAD_CPU_PROFILE;
const NAMES_PER_CLIENT = 5;
const FLOOD = 100;
const SECRET = 'bench-load-secret';
const CACHED = 'hello';
const OFFLINE = { NIX_CONFIG: 'substituters =' };

// Distinct images from the bundled set: pairs of packages.
const PACKAGES = ['hello', 'jq', 'git', 'htop', 'nano', 'curl', 'busybox', 'coreutils', 'zlib', 'openssl', 'cacert', 'ncurses', 'pcre2', 'bashinteractive', 'moreutils'];
const pairs: string[] = [];
for (let i = 0; i < PACKAGES.length; i++) for (let j = i + 1; j < PACKAGES.length; j++) pairs.push(`${PACKAGES[i]}/${PACKAGES[j]}`);


function statuses(outcomes: Outcome[]): string {
  const counts = new Map<string, number>();
  for (const o of outcomes) counts.set(String(o.status), (counts.get(String(o.status)) ?? 0) + 1);
  return [...counts].sort().map(([s, n]) => `${s}×${n}`).join(' ');
}

/** Samples the origin's Nix processes and RSS in a worker thread (sampler.ts). */
function sampler(originPid: number) {
  const worker = new Worker(new URL('./sampler.ts', import.meta.url), { workerData: { originPid } });
  return {
    stop: () =>
      new Promise<Peaks>((resolve) => {
        worker.once('message', (peaks: Peaks) => {
          void worker.terminate();
          resolve(peaks);
        });
        worker.postMessage('stop');
      }),
  };
}

/** The cached clients' worker thread (cached-clients.ts): runs a phase and answers with both clients' outcomes. */
function cachedClients(input: CachedClientsInput) {
  const worker = new Worker(new URL('./cached-clients.ts', import.meta.url), { workerData: input });
  const run = (requests: number, untilStopped = false) =>
    new Promise<CachedClientsOutput>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.postMessage({ type: 'run', requests, untilStopped } satisfies CachedClientsRequest);
    });
  return {
    run,
    /** Ends a phase started with `untilStopped` once its requests are done. */
    stop: () => worker.postMessage({ type: 'stop' } satisfies CachedClientsRequest),
    /** The thread's CPU is in /proc until then. */
    terminate: () => worker.terminate(),
  };
}

// The bundled set's store paths first, so builds measure the registry, not the fixture's builders.
await execa('nix-build', ['--no-out-link', 'bundled-pkgs/buildable.nix'], { env: nixEnvironment(OFFLINE) });

const UNBOUNDED = process.env.LOAD_UNBOUNDED === '1';
const unbounded = { NIX_MAX_EVALUATIONS: '1024', NIX_MAX_BUILDS: '1024', NIX_QUEUE_LENGTH: '100000', NIX_CLIENT_SHARE: '100000', FAILURE_TTL: '0' };

interface Lag {
  p99: number;
  max: number;
}

interface Round {
  loadBefore: number;
  seconds: number;
  imageOutcomes: Outcome[];
  unknownOutcomes: Outcome[];
  floodOutcomes: Outcome[];
  idleEdge: Outcome[];
  loadedEdge: Outcome[];
  /** Through an edge the strangers do not use (the header's second way). */
  idleOwnEdge: Outcome[];
  loadedOwnEdge: Outcome[];
  idleOrigin: Outcome[];
  loadedOrigin: Outcome[];
  /** The origin's own time for the cached client's requests (its request log's `ms`: from the request's first middleware to the response's end). */
  originMs: { idle: number[]; loaded: number[] };
  originLag: { idle: Lag; loaded: Lag };
  /** The origin's garbage collections during the load. */
  originGc: Gc;
  benchLag: { idle: Lag; loaded: Lag };
  cpu: CpuUse;
  peak: Peaks;
  metrics: string;
}

const p99 = (values: number[]) => percentile(values, 99);
const ms = (outcomes: Outcome[]) => outcomes.map((o) => o.ms);

/** The origin's event-loop delay since the previous scrape (prom-client resets its histogram on every scrape). */
function originLag(metrics: string): Lag {
  const value = (name: string) => Number(metrics.split('\n').find((l) => l.startsWith(`nixery_origin_nodejs_eventloop_lag_${name}_seconds `))?.split(' ').pop()) * 1000;
  return { p99: value('p99'), max: value('max') };
}

interface Gc {
  /** Per kind (major, minor, incremental): collections, seconds in all, collections longer than 100 ms. */
  [kind: string]: { count: number; seconds: number; over100ms: number };
}

/** The origin's GC counters (prom-client's histogram: cumulative, so two scrapes are subtracted). */
function gcOf(metrics: string): Gc {
  const gc: Gc = {};
  for (const line of metrics.split('\n')) {
    const m = /^nixery_origin_nodejs_gc_duration_seconds_(count|sum|bucket)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const kind = /kind="(\w+)"/.exec(m[2]!)?.[1];
    if (!kind) continue;
    const entry = (gc[kind] ??= { count: 0, seconds: 0, over100ms: 0 });
    const value = Number(m[3]);
    if (m[1] === 'count') entry.count = value;
    else if (m[1] === 'sum') entry.seconds = value;
    else if (/le="0\.1"/.test(m[2]!)) entry.over100ms -= value;
  }
  for (const entry of Object.values(gc)) entry.over100ms += entry.count;
  return gc;
}

function gcBetween(before: Gc, after: Gc): Gc {
  const out: Gc = {};
  for (const [kind, a] of Object.entries(after)) {
    const b = before[kind] ?? { count: 0, seconds: 0, over100ms: 0 };
    out[kind] = { count: a.count - b.count, seconds: a.seconds - b.seconds, over100ms: a.over100ms - b.over100ms };
  }
  return out;
}

async function round(): Promise<Round> {
  const origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET, ...(PROFILE_DIR ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${PROFILE_DIR}` } : {}), ...(UNBOUNDED ? unbounded : {}) } });
  const edgeOptions = {
    bindings: { ORIGIN_SECRET: SECRET },
    // HTTP clients only: without the tests' TCP front for container clients, which would relay every
    // request through the bench's own main thread.
    refuseTls: false,
    ...(UNBOUNDED ? { ratelimits: { ORIGIN_RATE_LIMITER: { simple: { limit: 1_000_000, period: 60 as const } } } } : {}),
  };
  let edge: Awaited<ReturnType<typeof startEdge>> | undefined;
  let ownEdge: Awaited<ReturnType<typeof startEdge>> | undefined;
  let stopClients: (() => Promise<number>) | undefined;
  const benchDelay = monitorEventLoopDelay({ resolution: 10 });
  benchDelay.enable();
  const benchLag = (): Lag => {
    const lag = { p99: benchDelay.percentile(99) / 1e6, max: benchDelay.max / 1e6 };
    benchDelay.reset();
    return lag;
  };
  try {
    edge = await startEdge(origin.url, edgeOptions);
    ownEdge = await startEdge(origin.url, edgeOptions);
    const direct = `${origin.url}/v2/${CACHED}/manifests/latest`;
    const viaEdge = `${edge.url}/v2/${CACHED}/manifests/latest`;
    const viaOwnEdge = `${ownEdge.url}/v2/${CACHED}/manifests/latest`;
    const secretHeaders = { 'X-Nixery-Edge-Secret': SECRET };
    const scrape = async () => (await fetch(`${origin.url}/metrics`)).text();
    const warm = await fetch(direct, { headers: { ...secretHeaders, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    if (warm.status !== 200) throw new Error(`cannot build ${CACHED}: ${await warm.text()}`);
    // By digest: a path source (the bundled set) evaluates on every request by tag, so only a digest is a cache hit at the origin.
    const digest = warm.headers.get('docker-content-digest')!;
    const byDigest = `${origin.url}/v2/${CACHED}/manifests/${digest}`;
    await get(viaEdge, '192.0.2.200');
    await get(viaOwnEdge, '192.0.2.200');
    const clients = cachedClients({ targets: [{ url: viaEdge }, { url: viaOwnEdge }, { url: byDigest, headers: secretHeaders }], client: '192.0.2.200', rate: CACHED_RATE });
    stopClients = clients.terminate;
    const originTimes = (from: number, to: number) =>
      origin.logs
        .slice(from, to)
        .filter((l) => l.msg === 'request' && typeof l.path === 'string' && l.path.endsWith(digest))
        .map((l) => Number(l.ms));
    // Log lines arrive through a pipe: a moment for the last ones before they are counted.
    const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

    // Idle: the cached clients alone, both at once as under load (sharing their thread), so that the two phases
    // differ only by the load.
    await clients.run(WARM_UP_REQUESTS);
    await scrape();
    benchLag();
    const idleLogs = origin.logs.length;
    const [idleEdge, idleOwnEdge, idleOrigin] = await clients.run(IDLE_REQUESTS);
    const idleBenchLag = benchLag();
    const atLoadStart = await scrape();
    const idleOriginLag = originLag(atLoadStart);
    await settle();
    const loadedLogs = origin.logs.length;
    const idleOriginMs = originTimes(idleLogs, loadedLogs);

    const loadBefore = loadavg()[0]!;
    const sample = sampler(origin.process.pid!);
    const cpuBefore = cpuSnapshot(origin.process.pid!);
    const started = performance.now();
    const generator = new Worker(new URL('./generator.ts', import.meta.url), {
      workerData: { edgeUrl: edge.url, images: pairs.slice(0, N), clients: N, namesPerClient: NAMES_PER_CLIENT, flood: FLOOD, niceness: LOAD_NICENESS } satisfies GeneratorInput,
    });
    const load = new Promise<GeneratorOutput>((resolve, reject) => {
      generator.once('message', resolve);
      generator.once('error', reject);
    });
    const loaded = clients.run(IDLE_REQUESTS, true);
    void load.then(clients.stop, clients.stop);
    const [loadedEdge, loadedOwnEdge, loadedOrigin] = await loaded;
    const { imageOutcomes, unknownOutcomes, floodOutcomes } = await load;
    // Before the generator's thread ends, so its CPU is still in /proc.
    const cpu = cpuBetween(cpuBefore, cpuSnapshot(origin.process.pid!), availableParallelism());
    await generator.terminate();
    const seconds = (performance.now() - started) / 1000;
    const loadedBenchLag = benchLag();
    const peak = await sample.stop();
    const metrics = await scrape();
    await settle();
    await clients.terminate();
    return {
      loadBefore,
      seconds,
      imageOutcomes,
      unknownOutcomes,
      floodOutcomes,
      idleEdge: idleEdge!,
      loadedEdge: loadedEdge!,
      idleOwnEdge: idleOwnEdge!,
      loadedOwnEdge: loadedOwnEdge!,
      idleOrigin: idleOrigin!,
      loadedOrigin: loadedOrigin!,
      originMs: { idle: idleOriginMs, loaded: originTimes(loadedLogs, origin.logs.length) },
      originLag: { idle: idleOriginLag, loaded: originLag(metrics) },
      originGc: gcBetween(gcOf(atLoadStart), gcOf(metrics)),
      benchLag: { idle: idleBenchLag, loaded: loadedBenchLag },
      cpu,
      peak,
      metrics,
    };
  } finally {
    benchDelay.disable();
    await stopClients?.();
    await edge?.stop();
    await ownEdge?.stop();
    await origin.stop();
  }
}

function report(r: Round, index: number): void {
  const metric = (prefix: string) =>
    r.metrics
      .split('\n')
      .filter((l) => l.startsWith(prefix))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
  const caps = r.metrics.split('\n').filter((l) => l.startsWith('nixery_origin_nix_queue_capacity'));
  console.log(`\n### Round ${index + 1} of ${ROUNDS}: load on ${UNBOUNDED ? 'an UNBOUNDED' : 'a bounded'} origin\n`);
  console.log(`Machine's 1-min load average before the load: ${r.loadBefore.toFixed(1)}; bundled package set, ${N} image clients, ${N}×${NAMES_PER_CLIENT} unknown names, 1 flood client of ${FLOOD}, generated at niceness ${LOAD_NICENESS}; ${r.seconds.toFixed(1)} s under load.\n`);
  console.log('| client class | requests | statuses | p50 ms | p99 ms | max ms |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  const row = (what: string, outcomes: Outcome[]) => {
    const values = ms(outcomes);
    console.log(`| ${what} | ${outcomes.length} | ${statuses(outcomes)} | ${percentile(values, 50).toFixed(1)} | ${percentile(values, 99).toFixed(1)} | ${Math.max(...values).toFixed(1)} |`);
  };
  row(`distinct images (${N} clients, 1 each)`, r.imageOutcomes);
  row(`distinct unknown names (${N} clients, ${NAMES_PER_CLIENT} each)`, r.unknownOutcomes);
  row(`flood: one client, ${FLOOD} unknown names, 10 at a time`, r.floodOutcomes);
  row('cached image via the strangers\' edge, idle', r.idleEdge);
  row('cached image via the strangers\' edge, under load', r.loadedEdge);
  row('cached image via an edge of its own, idle', r.idleOwnEdge);
  row('cached image via an edge of its own, under load', r.loadedOwnEdge);
  row('cached image at the origin (by digest), idle', r.idleOrigin);
  row('cached image at the origin (by digest), under load', r.loadedOrigin);

  const all = [...r.imageOutcomes, ...r.unknownOutcomes, ...r.floodOutcomes];
  const hung = all.filter((o) => o.status === 'timeout' || o.status === 'error').length;
  const unclear = all.filter((o) => typeof o.status === 'number' && ![200, 404, 429, 503].includes(o.status)).length;
  const capOf = (queue: string) => Number(caps.find((l) => l.includes(`queue="${queue}"`) && l.includes('kind="slots"'))?.split(' ').pop());
  const refused = (reason: string) => metric(`nixery_origin_nix_queue_refused_total{queue="evaluation",reason="${reason}"}`) + metric(`nixery_origin_nix_queue_refused_total{queue="build",reason="${reason}"}`);
  console.log('\n| measure | value | goal |');
  console.log('| --- | --- | --- |');
  console.log(`| peak nix-instantiate processes | ${r.peak.evaluations} | ≤ NIX_MAX_EVALUATIONS = ${capOf('evaluation')} |`);
  console.log(`| peak nix-build processes | ${r.peak.builds} | ≤ NIX_MAX_BUILDS = ${capOf('build')} |`);
  console.log(`| peak nix-store processes (closure queries, in their build's slot) | ${r.peak.nixStore} | ≤ NIX_MAX_BUILDS = ${capOf('build')} |`);
  console.log(`| peak Nix processes in all | ${r.peak.nixTotal} | ≤ NIX_MAX_EVALUATIONS + NIX_MAX_BUILDS = ${capOf('evaluation') + capOf('build')} |`);
  console.log(`| peak RSS of the Nix processes | ${r.peak.nixRssMiB.toFixed(0)} MiB | |`);
  console.log(`| peak RSS of the origin | ${r.peak.originRssMiB.toFixed(0)} MiB | |`);
  console.log(`| requests that hung (no answer in ${REQUEST_LIMIT_MS / 1000} s) or failed | ${hung} | 0 |`);
  console.log(`| answers other than 200, 404, 429, 503 | ${unclear} | 0 |`);
  console.log(`| origin 429s: queue full / client share / wait | ${refused('queue-full')} / ${refused('client-share')} / ${refused('wait-timeout')} | |`);
  console.log(`| cached p99 under load / idle, via the strangers' edge (one workerd thread for all) | ${ratio(r.loadedEdge, r.idleEdge).toFixed(2)}× | ≤ 2× |`);
  console.log(`| cached p99 under load / idle, via an edge of its own | ${ratio(r.loadedOwnEdge, r.idleOwnEdge).toFixed(2)}× | ≤ 2× |`);
  console.log(`| cached p99 under load / idle, at the origin | ${ratio(r.loadedOrigin, r.idleOrigin).toFixed(2)}× | ≤ 2× |`);

  console.log('\nWhere the cached client\'s time goes (ms):\n');
  console.log('| | idle | under load |');
  console.log('| --- | --- | --- |');
  console.log(`| cached at the origin, p99 as the client sees it | ${p99(ms(r.idleOrigin)).toFixed(1)} | ${p99(ms(r.loadedOrigin)).toFixed(1)} |`);
  console.log(`| cached at the origin, p99 of the origin's own handling (request log) | ${p99(r.originMs.idle).toFixed(1)} | ${p99(r.originMs.loaded).toFixed(1)} |`);
  console.log(`| origin event-loop delay, p99 / max (a 10 ms timer's lateness: an idle loop reads about 11-13) | ${r.originLag.idle.p99.toFixed(1)} / ${r.originLag.idle.max.toFixed(1)} | ${r.originLag.loaded.p99.toFixed(1)} / ${r.originLag.loaded.max.toFixed(1)} |`);
  const gc = (kind: string) => r.originGc[kind] ?? { count: 0, seconds: 0, over100ms: 0 };
  console.log(`| origin GC under load: major / minor collections (seconds in all; longer than 100 ms) | | ${gc('major').count} (${gc('major').seconds.toFixed(2)} s; ${gc('major').over100ms}) / ${gc('minor').count} (${gc('minor').seconds.toFixed(2)} s; ${gc('minor').over100ms}) |`);
  const sendDelay = (o: Outcome[]) => {
    const late = o.flatMap((x) => (x.late === undefined ? [] : [x.late]));
    return late.length === 0 ? 'n/a (back to back)' : `${percentile(late, 99).toFixed(1)} / ${Math.max(...late).toFixed(1)}`;
  };
  console.log(`| cached clients' own delay in sending a due request, p99 / max (their thread waiting for a core) | ${sendDelay([...r.idleEdge, ...r.idleOwnEdge, ...r.idleOrigin])} | ${sendDelay([...r.loadedEdge, ...r.loadedOwnEdge, ...r.loadedOrigin])} |`);
  console.log(`| bench's own event-loop delay, p99 / max (the same timer) | ${r.benchLag.idle.p99.toFixed(1)} / ${r.benchLag.idle.max.toFixed(1)} | ${r.benchLag.loaded.p99.toFixed(1)} / ${r.benchLag.loaded.max.toFixed(1)} |`);

  console.log(`\nWhere the CPU went under load (${r.cpu.seconds.toFixed(1)} s × ${availableParallelism()} cores):\n`);
  console.log('| what | CPU s | share of the machine |');
  console.log('| --- | --- | --- |');
  for (const c of r.cpu.rows) console.log(`| ${c.what} | ${c.cpuSeconds.toFixed(1)} | ${(c.share * 100).toFixed(0)} % |`);
  console.log(`\nThe origin's main thread waited ${r.cpu.originMainWaitSeconds.toFixed(2)} s in all for a core while ready to run, over ${r.cpu.originMainRuns} times it was put on one (${((r.cpu.originMainWaitSeconds * 1000) / r.cpu.originMainRuns).toFixed(2)} ms each on average; schedstat).`);
}

function ratio(loaded: Outcome[], idle: Outcome[]): number {
  return p99(ms(loaded)) / p99(ms(idle));
}

const rounds: Round[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const r = await round();
  rounds.push(r);
  report(r, i);
}

console.log(
  `\n### The goal over ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}: cached p99 under load within 2× of idle (load generated at niceness ${LOAD_NICENESS}; cached clients ${CACHED_RATE > 0 ? `on schedule, ${CACHED_RATE} requests/s each` : 'back to back'})\n`,
);
const ways: [string, (r: Round) => [Outcome[], Outcome[]]][] = [
  ['via the strangers\' edge', (r) => [r.idleEdge, r.loadedEdge]],
  ['via an edge of its own', (r) => [r.idleOwnEdge, r.loadedOwnEdge]],
  ['at the origin', (r) => [r.idleOrigin, r.loadedOrigin]],
];
console.log(`| round | load average before | ${ways.map(([way]) => `${way}: idle → loaded p99 ms | ratio`).join(' | ')} |`);
console.log(`| --- | --- | ${ways.map(() => '--- | ---').join(' | ')} |`);
rounds.forEach((r, i) =>
  console.log(
    `| ${i + 1} | ${r.loadBefore.toFixed(1)} | ${ways
      .map(([, of]) => {
        const [idle, loaded] = of(r);
        return `${p99(ms(idle)).toFixed(1)} → ${p99(ms(loaded)).toFixed(1)} | ${ratio(loaded, idle).toFixed(2)}×`;
      })
      .join(' | ')} |`,
  ),
);
const medianRatio = (of: (r: Round) => [Outcome[], Outcome[]]) => median(rounds.map((r) => ratio(of(r)[1], of(r)[0])));
console.log(`| median | | ${ways.map(([, of]) => `| ${medianRatio(of).toFixed(2)}×`).join(' | ')} |`);

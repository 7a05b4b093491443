// Load on a bounded origin, on loopback only: strangers asking for many
// distinct images and many distinct unknown names at once, one of them
// flooding, while one client keeps pulling an image that is already cached
// (through the edge: edge hits; straight at the origin, by digest: the
// origin's storage, no Nix). Nix processes under the origin are sampled from /proc.
//
// Goals: Nix processes never exceed the caps; every request ends with an
// image, a 404 for an unknown name, or a clear 429/503 (nothing hangs);
// the cached client's p99 stays within 2x its p99 on an idle origin.
//
// Run: npm run bench:load   (LOAD_CLIENTS=N, default 30; prints markdown tables)
// LOAD_UNBOUNDED=1 lifts every limit (caps, queue, shares, failure memory,
// the edge's rate limit) to show what the same load does without them.
import { loadavg } from 'node:os';
import { execa } from 'execa';
import { nixEnvironment } from '../../origin/nix/settings.ts';
import { Worker } from 'node:worker_threads';
import type { Peaks } from './sampler.ts';
import { startOrigin } from '../../test/support/origin.ts';
import { startEdge } from '../../test/support/edge.ts';

const N = Number(process.env.LOAD_CLIENTS ?? 30);
const NAMES_PER_CLIENT = 5;
const FLOOD = 100;
const REQUEST_LIMIT_MS = 120_000;
const SECRET = 'bench-load-secret';
const CACHED = 'hello';
const OFFLINE = { NIX_CONFIG: 'substituters =' };

// Distinct images from the bundled set: pairs of packages.
const PACKAGES = ['hello', 'jq', 'git', 'htop', 'nano', 'curl', 'busybox', 'coreutils', 'zlib', 'openssl', 'cacert', 'ncurses', 'pcre2', 'bashinteractive', 'moreutils'];
const pairs: string[] = [];
for (let i = 0; i < PACKAGES.length; i++) for (let j = i + 1; j < PACKAGES.length; j++) pairs.push(`${PACKAGES[i]}/${PACKAGES[j]}`);

interface Outcome {
  status: number | 'timeout' | 'error';
  ms: number;
}

async function get(url: string, client: string): Promise<Outcome> {
  const started = performance.now();
  try {
    const res = await fetch(url, { headers: { 'CF-Connecting-IP': client, Accept: 'application/vnd.oci.image.manifest.v1+json' }, signal: AbortSignal.timeout(REQUEST_LIMIT_MS) });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  } catch (err) {
    return { status: (err as Error).name === 'TimeoutError' ? 'timeout' : 'error', ms: performance.now() - started };
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

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

/** Pulls the cached image one request after another until `stop` resolves. */
async function cachedClient(url: string, stop: Promise<unknown>, minimum = 0): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let done = false;
  void stop.then(() => (done = true));
  while (!done || outcomes.length < minimum) outcomes.push(await get(url, '192.0.2.200'));
  return outcomes;
}

// The bundled set's store paths first, so builds measure the registry, not the fixture's builders.
await execa('nix-build', ['--no-out-link', 'bundled-pkgs/buildable.nix'], { env: nixEnvironment(OFFLINE) });

const UNBOUNDED = process.env.LOAD_UNBOUNDED === '1';
const unbounded = { NIX_MAX_EVALUATIONS: '1024', NIX_MAX_BUILDS: '1024', NIX_QUEUE_LENGTH: '100000', NIX_CLIENT_SHARE: '100000', FAILURE_TTL: '0' };
const origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET, ...(UNBOUNDED ? unbounded : {}) } });
const edge = await startEdge(origin.url, {
  bindings: { ORIGIN_SECRET: SECRET },
  ...(UNBOUNDED ? { ratelimits: { ORIGIN_RATE_LIMITER: { simple: { limit: 1_000_000, period: 60 as const } } } } : {}),
});
try {
  const direct = `${origin.url}/v2/${CACHED}/manifests/latest`;
  const viaEdge = `${edge.url}/v2/${CACHED}/manifests/latest`;
  const secretHeaders = { 'X-Nixery-Edge-Secret': SECRET };
  const warm = await fetch(direct, { headers: { ...secretHeaders, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  if (warm.status !== 200) throw new Error(`cannot build ${CACHED}: ${await warm.text()}`);
  // By digest: a path source (the bundled set) evaluates on every request by tag, so only a digest is a cache hit at the origin.
  const byDigest = `${origin.url}/v2/${CACHED}/manifests/${warm.headers.get('docker-content-digest')}`;
  await get(viaEdge, '192.0.2.200');
  const directGet = async (): Promise<Outcome> => {
    const started = performance.now();
    const res = await fetch(byDigest, { headers: { ...secretHeaders, Accept: 'application/vnd.oci.image.manifest.v1+json' }, signal: AbortSignal.timeout(REQUEST_LIMIT_MS) });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  };

  // Idle: the cached client alone.
  const idleEdge: Outcome[] = [];
  const idleOrigin: Outcome[] = [];
  for (let i = 0; i < 300; i++) idleEdge.push(await get(viaEdge, '192.0.2.200'));
  for (let i = 0; i < 300; i++) idleOrigin.push(await directGet());

  const loadBefore = loadavg()[0]!;
  const sample = sampler(origin.process.pid!);
  const started = performance.now();
  const images = Promise.all(pairs.slice(0, N).map((image, i) => get(`${edge.url}/v2/${image}/manifests/latest`, `198.51.100.${i + 1}`)));
  const unknown = Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const outcomes: Outcome[] = [];
      for (let k = 0; k < NAMES_PER_CLIENT; k++) outcomes.push(await get(`${edge.url}/v2/nosuch${i}x${k}/manifests/latest`, `203.0.113.${i + 1}`));
      return outcomes;
    }),
  ).then((lists) => lists.flat());
  const flood = (async () => {
    const outcomes: Outcome[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < FLOOD) {
          const k = next++;
          outcomes.push(await get(`${edge.url}/v2/flood${k}/manifests/latest`, '192.0.2.66'));
        }
      }),
    );
    return outcomes;
  })();
  const load = Promise.all([images, unknown, flood]);
  const [loadedEdge, loadedOrigin] = await Promise.all([
    cachedClient(viaEdge, load, 300),
    (async () => {
      const outcomes: Outcome[] = [];
      let done = false;
      void load.then(() => (done = true));
      while (!done || outcomes.length < 300) outcomes.push(await directGet());
      return outcomes;
    })(),
  ]);
  const [imageOutcomes, unknownOutcomes, floodOutcomes] = await load;
  const seconds = (performance.now() - started) / 1000;
  const peak = await sample.stop();
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  const metric = (prefix: string) =>
    metrics
      .split('\n')
      .filter((l) => l.startsWith(prefix))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);

  const caps = metrics.split('\n').filter((l) => l.startsWith('nixery_origin_nix_queue_capacity'));
  console.log(`\nLoad on ${UNBOUNDED ? 'an UNBOUNDED' : 'a bounded'} origin (machine's 1-min load average before the load: ${loadBefore.toFixed(1)}; bundled package set, ${N} image clients, ${N}×${NAMES_PER_CLIENT} unknown names, 1 flood client of ${FLOOD}; ${seconds.toFixed(1)} s under load)\n`);
  console.log('| client class | requests | statuses | p50 ms | p99 ms | max ms |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  const row = (what: string, outcomes: Outcome[]) => {
    const ms = outcomes.map((o) => o.ms);
    console.log(`| ${what} | ${outcomes.length} | ${statuses(outcomes)} | ${percentile(ms, 50).toFixed(1)} | ${percentile(ms, 99).toFixed(1)} | ${Math.max(...ms).toFixed(1)} |`);
  };
  row(`distinct images (${N} clients, 1 each)`, imageOutcomes);
  row(`distinct unknown names (${N} clients, ${NAMES_PER_CLIENT} each)`, unknownOutcomes);
  row(`flood: one client, ${FLOOD} unknown names, 10 at a time`, floodOutcomes);
  row('cached image via the edge, idle', idleEdge);
  row('cached image via the edge, under load', loadedEdge);
  row('cached image at the origin (by digest), idle', idleOrigin);
  row('cached image at the origin (by digest), under load', loadedOrigin);

  const ratio = (loaded: Outcome[], idle: Outcome[]) => percentile(loaded.map((o) => o.ms), 99) / percentile(idle.map((o) => o.ms), 99);
  const hung = [...imageOutcomes, ...unknownOutcomes, ...floodOutcomes].filter((o) => o.status === 'timeout' || o.status === 'error').length;
  const unclear = [...imageOutcomes, ...unknownOutcomes, ...floodOutcomes].filter((o) => typeof o.status === 'number' && ![200, 404, 429, 503].includes(o.status)).length;
  const capOf = (queue: string) => Number(caps.find((l) => l.includes(`queue="${queue}"`) && l.includes('kind="slots"'))?.split(' ').pop());
  console.log('\n| measure | value | goal |');
  console.log('| --- | --- | --- |');
  console.log(`| peak nix-instantiate processes | ${peak.evaluations} | ≤ NIX_MAX_EVALUATIONS = ${capOf('evaluation')} |`);
  console.log(`| peak nix-build processes | ${peak.builds} | ≤ NIX_MAX_BUILDS = ${capOf('build')} |`);
  console.log(`| peak nix-store processes (closure queries, not queued) | ${peak.nixStore} | ≤ NIX_MAX_BUILDS (one per build) |`);
  console.log(`| peak Nix processes in all | ${peak.nixTotal} | |`);
  console.log(`| peak RSS of the Nix processes | ${peak.nixRssMiB.toFixed(0)} MiB | |`);
  console.log(`| peak RSS of the origin | ${peak.originRssMiB.toFixed(0)} MiB | |`);
  console.log(`| requests that hung (no answer in ${REQUEST_LIMIT_MS / 1000} s) or failed | ${hung} | 0 |`);
  console.log(`| answers other than 200, 404, 429, 503 | ${unclear} | 0 |`);
  console.log(`| origin 429s: queue full / client share / wait | ${metric('nixery_origin_nix_queue_refused_total{queue="evaluation",reason="queue-full"}') + metric('nixery_origin_nix_queue_refused_total{queue="build",reason="queue-full"}')} / ${metric('nixery_origin_nix_queue_refused_total{queue="evaluation",reason="client-share"}') + metric('nixery_origin_nix_queue_refused_total{queue="build",reason="client-share"}')} / ${metric('nixery_origin_nix_queue_refused_total{queue="evaluation",reason="wait-timeout"}') + metric('nixery_origin_nix_queue_refused_total{queue="build",reason="wait-timeout"}')} | |`);
  console.log(`| cached p99 under load / idle, via the edge | ${ratio(loadedEdge, idleEdge).toFixed(2)}× | ≤ 2× |`);
  console.log(`| cached p99 under load / idle, at the origin | ${ratio(loadedOrigin, idleOrigin).toFixed(2)}× | ≤ 2× |`);
} finally {
  await edge.stop();
  await origin.stop();
}

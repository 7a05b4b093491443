// How much of a cached pull's delay, while a burst of requests for other
// images arrives, is our code, and how much is the runtime each side runs
// on (bench:load's strangers arrive so, and its 2x goal is set against it).
//
// Through the edge: the same load on our Worker and on a baseline Worker that
// does the least an edge can (answers the cached tag from a module variable,
// forwards every other request to the origin), one after the other in each
// round, both in workerd through miniflare exactly as the tests and
// bench:load run ours.
//
// At the origin: the same load on our origin (the cached client by digest,
// as bench:load's) and on a bare Node server (bare-origin.ts) that answers
// the same manifest from memory and refuses the rest at once.
//
// Load: one client pulls the cached tag on schedule (HITS_RATE a second,
// timed from when each request was due, bench/load/cached-clients.ts's
// method); after an idle phase, bursts of BURST requests for distinct
// unknown names (BURST_NAMES), each from its own client address on a new
// connection, as bench:load's strangers arrive. Both Workers forward the same names to the
// same real origin, which refuses or evaluates them alike.
//
// And at the origin, what a refusal costs, alone: how many a second each
// origin answers to LOOP_CONNECTIONS keep-alive clients that send the next
// request as soon as the last was answered (a closed loop, for LOOP_MS),
// for names the grammar refuses (400) and for unknown names it remembers
// (404 from its failure memory: no Nix). The bare server refuses
// everything with a 429. The loop's client runs on the bench's main thread,
// on the same two cores: for the bare server it may be the client that
// sets the pace, so its figure is a floor's order of magnitude, not a limit.
//
// A third run is ours without the local stand-ins for Cloudflare's services
// (KV, the Cache API, the rate limiter). miniflare runs each as a Worker on
// workerd's one thread, so here every miss pays for their JavaScript too;
// on Cloudflare they are remote, and a miss waits for them without using
// the isolate's thread. The gap between the two runs of ours is theirs.
//
// Run: npm run bench:burst   (BURST_ROUNDS=N, default 3; BURST_SIZE=N
// requests per burst, default 70: bench:load's first second;
// BURST_NAMES=invalid for names the grammar refuses; BURST_CPU_PROFILE=DIR
// has our origin write CPU profiles; prints markdown tables)
import { Agent, request } from 'node:http';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { startOrigin } from '../../test/support/origin.ts';
import { startEdge, workerBundle } from '../../test/support/edge.ts';
import { startEdge as startWorker } from '../../scripts/edge-runtime.ts';
import { CLIENT_ADDRESS_HEADER, ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';
import type { HitsInput, HitsOutput } from './hits.ts';
import type { Outcome } from '../load/http.ts';
import { median, percentile } from '../stats.ts';

const ROUNDS = Number(process.env.BURST_ROUNDS ?? 3);
/** Where our origin writes V8 CPU profiles, one per thread (`node --cpu-prof`); none unless set. */
const PROFILE_DIR = process.env.BURST_CPU_PROFILE;
const BURST = Number(process.env.BURST_SIZE ?? 70);
/**
 * What the bursts ask for: `unknown` names (the default: each costs the
 * origin an evaluation or a refusal from its queue, as bench:load's), or
 * `invalid` ones, refused by the name grammar with a 400 before any cache,
 * queue or Nix work: what is left is each side's bare request handling.
 * (Through the edge, ours then answers them itself, while the baseline
 * Worker forwards them to the origin.)
 */
const BURST_NAMES = process.env.BURST_NAMES ?? 'unknown';
if (BURST_NAMES !== 'unknown' && BURST_NAMES !== 'invalid') throw new Error(`BURST_NAMES must be unknown or invalid, not ${BURST_NAMES}`);
const BURSTS = 5;
const BURST_INTERVAL_MS = 1_000;
const HITS_RATE = 200;
const IDLE_HITS = 1_000;
const WARM_UP_HITS = 200;
const SECRET = 'bench-burst-secret';
const CACHED = '/v2/hello/manifests/latest';
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';
/** The cached client's address (CF-Connecting-IP), as bench:load's. */
const CACHED_CLIENT = '192.0.2.200';

// The least an edge can do: no cache but one module variable, no rate
// limit, no checks; it passes the client's address as ours does, so the
// origin shares its queue alike. What it costs under a burst is the
// runtime's share.
const BASELINE = `
let cached = null;
export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === ${JSON.stringify(CACHED)} && cached !== null) return new Response(cached.bytes, { headers: cached.headers });
    const answer = await fetch(env.ORIGIN_URL + path, {
      headers: {
        Accept: request.headers.get('Accept') ?? '',
        ${JSON.stringify(ORIGIN_SECRET_HEADER)}: env.ORIGIN_SECRET,
        // The client's address, as ours passes it: the origin's fair shares then refuse alike.
        ${JSON.stringify(CLIENT_ADDRESS_HEADER)}: request.headers.get('CF-Connecting-IP') ?? '',
      },
    });
    const bytes = await answer.arrayBuffer();
    if (path === ${JSON.stringify(CACHED)} && answer.status === 200) cached = { bytes, headers: new Headers(answer.headers) };
    return new Response(bytes, { status: answer.status, headers: answer.headers });
  },
};
`;

interface Phase {
  idle: Outcome[];
  loaded: Outcome[];
  burstStatuses: Map<string, number>;
}

const LOOP_CONNECTIONS = 8;
const LOOP_MS = 3_000;
/** Unknown names the origin is asked once before its closed loop, so that the loop's answers come from its failure memory. */
const REMEMBERED = 8;

/**
 * Answers a second to a closed loop: LOOP_CONNECTIONS keep-alive connections,
 * each sending `path(i)` for the next i as soon as its last answer came, for
 * LOOP_MS. Every answer must be `expected`: a loop of anything else measures
 * something else.
 */
async function closedLoop(base: string, headers: Record<string, string>, path: (i: number) => string, expected: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: LOOP_CONNECTIONS });
  const one = (i: number) =>
    new Promise<number>((resolve, reject) => {
      const req = request(`${base}${path(i)}`, { agent, headers: { Accept: ACCEPT, ...headers } }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode!));
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.once('error', reject);
      req.end();
    });
  let sent = 0;
  const started = performance.now();
  const end = started + LOOP_MS;
  try {
    await Promise.all(
      Array.from({ length: LOOP_CONNECTIONS }, async () => {
        while (performance.now() < end) {
          const status = await one(sent++);
          if (status !== expected) throw new Error(`${base}${path(sent - 1)} answered ${status}, not ${expected}`);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return sent / ((performance.now() - started) / 1000);
}

/** Refusals a second (closedLoop) for invalid names and for remembered unknown names; `expected` the statuses of each. */
async function refusalRates(base: string, headers: Record<string, string>, expected: { invalid: number; remembered: number }): Promise<{ invalid: number; remembered: number }> {
  const remembered = (i: number) => `/v2/refused${i % REMEMBERED}/manifests/latest`;
  for (let i = 0; i < REMEMBERED; i++) {
    const first = await fetch(`${base}${remembered(i)}`, { headers: { Accept: ACCEPT, ...headers } });
    await first.arrayBuffer();
    if (first.status !== expected.remembered) throw new Error(`${base}${remembered(i)} answered ${first.status}, not ${expected.remembered}`);
  }
  return {
    invalid: await closedLoop(base, headers, (i) => `/v2/Refused_${i}/manifests/latest`, expected.invalid),
    remembered: await closedLoop(base, headers, remembered, expected.remembered),
  };
}

/** The path of burst `k`'s request `i`; `label` keeps names distinct between runs. */
function burstPath(label: string, k: number, i: number): string {
  // Upper case and an underscore first: not a name the grammar accepts.
  return BURST_NAMES === 'invalid' ? `/v2/Burst_${label}${k}x${i}/manifests/latest` : `/v2/burst${label}${k}x${i}/manifests/latest`;
}

/** One request on a connection of its own (no keep-alive): a new client, as in a burst. */
function burstRequest(url: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, headers: { Accept: ACCEPT, ...headers } }, (res) => {
      res.resume();
      res.once('end', () => resolve(String(res.statusCode)));
      res.once('error', () => resolve('error'));
    });
    req.setTimeout(120_000, () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve('error'));
    req.end();
  });
}

function hits(url: string, headers: Record<string, string>) {
  const worker = new Worker(new URL('./hits.ts', import.meta.url), { workerData: { url, rate: HITS_RATE, client: CACHED_CLIENT, headers } satisfies HitsInput });
  return {
    run: (count: number) =>
      new Promise<Outcome[]>((resolve, reject) => {
        worker.once('message', (out: HitsOutput) => resolve(out.hits));
        worker.once('error', reject);
        worker.postMessage(count);
      }),
    stop: () => worker.terminate(),
  };
}

/** The server under load: where the cached client pulls, and where each burst request goes (burst k, request i). */
interface Target {
  cached: { url: string; headers: Record<string, string> };
  burst(label: string, k: number, i: number): { url: string; headers: Record<string, string> };
}

async function measure(target: Target, label: string): Promise<Phase> {
  const first = await fetch(target.cached.url, { headers: { Accept: ACCEPT, ...target.cached.headers } });
  await first.arrayBuffer();
  if (first.status !== 200) throw new Error(`${label}: the cached manifest answered ${first.status}`);
  const client = hits(target.cached.url, target.cached.headers);
  try {
    await client.run(WARM_UP_HITS);
    const idle = await client.run(IDLE_HITS);
    const loadedRun = client.run(IDLE_HITS);
    const statuses: Promise<string>[] = [];
    for (let k = 0; k < BURSTS; k++) {
      await new Promise((resolve) => setTimeout(resolve, k === 0 ? BURST_INTERVAL_MS / 4 : BURST_INTERVAL_MS));
      for (let i = 0; i < BURST; i++) {
        const { url, headers } = target.burst(label, k, i);
        statuses.push(burstRequest(url, headers));
      }
    }
    const loaded = await loadedRun;
    // A failed pull is not a fast one: a run in which the cached client got anything but its manifest is void.
    const failed = [...idle, ...loaded].filter((h) => h.status !== 200).length;
    if (failed > 0) throw new Error(`${label}: ${failed} of the cached client's pulls did not get the manifest`);
    const burstStatuses = new Map<string, number>();
    for (const status of await Promise.all(statuses)) burstStatuses.set(status, (burstStatuses.get(status) ?? 0) + 1);
    // Unknown names must reach the work they stand for: a 400 means the bench made names the grammar refuses.
    if (BURST_NAMES === 'unknown' && burstStatuses.has('400')) throw new Error(`${label}: ${burstStatuses.get('400')} burst names were refused as invalid`);
    return { idle, loaded, burstStatuses };
  } finally {
    await client.stop();
  }
}

function p99(values: Outcome[]): number {
  return percentile(
    values.map((h) => h.ms),
    99,
  );
}

const statusText = (m: Map<string, number>) => [...m].sort().map(([s, n]) => `${s}×${n}`).join(' ');

/** Starts the bare Node server with the origin's manifest for `path`; stops with the returned function. */
async function startBareOrigin(path: string, bytes: Uint8Array, mediaType: string): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'nixery-edge-bare-origin-'));
  const file = join(dir, 'manifest');
  await writeFile(file, bytes);
  const child = spawn(process.execPath, [new URL('./bare-origin.ts', import.meta.url).pathname], {
    env: { ...process.env, BARE_MANIFEST: file, BARE_PATH: path, BARE_MEDIA_TYPE: mediaType },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    child.kill();
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const port = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', () => reject(new Error('the bare origin exited before it listened')));
    });
    return { url: `http://127.0.0.1:${port}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

type EdgeWhich = 'ours' | 'withoutStandIns' | 'baseline';
type OriginWhich = 'ours' | 'node';
interface Row<W extends string> {
  round: number;
  phases: Record<W, Phase>;
}

/** Runs each of `which` once, in an order that turns with the round, so that none always goes first. */
async function inTurn<W extends string>(which: readonly W[], round: number, run: (w: W) => Promise<Phase>): Promise<Row<W>> {
  const phases = {} as Record<W, Phase>;
  for (let i = 0; i < which.length; i++) {
    const w = which[(i + round) % which.length]!;
    phases[w] = await run(w);
  }
  return { round, phases };
}

const EDGE_WHICH: readonly EdgeWhich[] = ['ours', 'withoutStandIns', 'baseline'];
const ORIGIN_WHICH: readonly OriginWhich[] = ['ours', 'node'];
const secretHeaders = { [ORIGIN_SECRET_HEADER]: SECRET };
const bundle = await workerBundle();
const edgeRows: Row<EdgeWhich>[] = [];
const originRows: Row<OriginWhich>[] = [];
const refusalRows: Record<OriginWhich, { invalid: number; remembered: number }>[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  const origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET, ...(PROFILE_DIR ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${PROFILE_DIR}` } : {}) } });
  try {
    edgeRows.push(
      await inTurn(EDGE_WHICH, round, async (which) => {
        let edge: { url: string; stop(): Promise<void> };
        if (which === 'ours') edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET }, refuseTls: false });
        else if (which === 'withoutStandIns')
          edge = await startEdge(origin.url, { bindings: { ORIGIN_SECRET: SECRET }, refuseTls: false, globalStore: false, ratelimits: {}, cacheApi: false });
        else
          edge = await startWorker({
            bundle: { script: BASELINE, compatibilityDate: bundle.compatibilityDate, vars: {}, kvNamespaces: [], ratelimits: {} },
            bindings: { ORIGIN_URL: origin.url, ORIGIN_SECRET: SECRET },
            refuseTls: false,
          });
        try {
          const target: Target = {
            cached: { url: `${edge.url}${CACHED}`, headers: {} },
            burst: (label, k, i) => ({ url: `${edge.url}${burstPath(label, k, i)}`, headers: { 'CF-Connecting-IP': `198.18.${k}.${i + 1}` } }),
          };
          return await measure(target, `${which.toLowerCase()}${round}x`);
        } finally {
          await edge.stop();
        }
      }),
    );

    // By digest: a tag of the bundled set is evaluated on every request, so only a digest is a cache hit at the origin.
    const tagged = await fetch(`${origin.url}${CACHED}`, { headers: { Accept: ACCEPT, ...secretHeaders } });
    const manifest = new Uint8Array(await tagged.arrayBuffer());
    if (tagged.status !== 200) throw new Error(`the origin answered ${tagged.status} for ${CACHED}: ${new TextDecoder().decode(manifest)}`);
    const byDigest = `/v2/hello/manifests/${tagged.headers.get('Docker-Content-Digest')}`;
    const refusals = {} as Record<OriginWhich, { invalid: number; remembered: number }>;
    originRows.push(
      await inTurn(ORIGIN_WHICH, round, async (which) => {
        const server = which === 'ours' ? { url: origin.url, stop: async () => undefined } : await startBareOrigin(byDigest, manifest, tagged.headers.get('Content-Type')!);
        try {
          const clientHeaders = { ...secretHeaders, [CLIENT_ADDRESS_HEADER]: '198.19.0.1' };
          refusals[which] = await refusalRates(server.url, clientHeaders, which === 'ours' ? { invalid: 400, remembered: 404 } : { invalid: 429, remembered: 429 });
          const target: Target = {
            cached: { url: `${server.url}${byDigest}`, headers: secretHeaders },
            burst: (label, k, i) => ({
              url: `${server.url}${burstPath(label, k, i)}`,
              headers: { ...secretHeaders, [CLIENT_ADDRESS_HEADER]: `198.18.${k}.${i + 1}` },
            }),
          };
          return await measure(target, `origin${which}${round}x`);
        } finally {
          await server.stop();
        }
      }),
    );
    refusalRows.push(refusals);
  } finally {
    await origin.stop();
  }
}

const ratio = (phase: Phase) => p99(phase.loaded) / p99(phase.idle);

function table<W extends string>(title: string, rows: Row<W>[], which: readonly W[], names: Record<W, string>, floor: W): void {
  console.log(`\n### ${title} (${BURSTS} bursts of ${BURST}, ${BURST_INTERVAL_MS} ms apart; the cached client on schedule at ${HITS_RATE}/s)\n`);
  console.log('| round | server | idle p99 ms | loaded p99 ms | max ms | ratio | burst answers |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const row of rows) {
    for (const w of which) {
      const phase = row.phases[w];
      const max = Math.max(...phase.loaded.map((h) => h.ms));
      console.log(`| ${row.round} | ${names[w]} | ${p99(phase.idle).toFixed(1)} | ${p99(phase.loaded).toFixed(1)} | ${max.toFixed(1)} | ${ratio(phase).toFixed(2)}× | ${statusText(phase.burstStatuses)} |`);
    }
  }
  console.log(`\n| server | median loaded p99 ms | median ratio, loaded / idle p99 | loaded p99 / ${names[floor]}'s, median of rounds |`);
  console.log('| --- | --- | --- | --- |');
  for (const w of which) {
    const loaded = median(rows.map((r) => p99(r.phases[w].loaded)));
    const ratios = median(rows.map((r) => ratio(r.phases[w])));
    const paired = median(rows.map((r) => p99(r.phases[w].loaded) / p99(r.phases[floor].loaded)));
    console.log(`| ${names[w]} | ${loaded.toFixed(1)} | ${ratios.toFixed(2)}× | ${paired.toFixed(2)} |`);
  }
}

table(
  `A cached pull through the edge while bursts of requests for ${BURST_NAMES} names arrive`,
  edgeRows,
  EDGE_WHICH,
  { ours: 'our Worker', withoutStandIns: 'our Worker without the local stand-ins (KV, Cache API, rate limiter)', baseline: 'the baseline Worker' },
  'baseline',
);
table(
  `A cached pull at the origin (by digest) while bursts of requests for ${BURST_NAMES} names arrive`,
  originRows,
  ORIGIN_WHICH,
  { ours: 'our origin', node: 'a bare Node server' },
  'node',
);

console.log(
  `\n### Refusals a second at the origin: a closed loop of ${LOOP_CONNECTIONS} keep-alive connections for ${LOOP_MS / 1000} s (the bare server refuses everything with a 429)\n`,
)
console.log('| round | our origin: invalid names (400) | remembered unknown names (404) | a bare Node server | ours / bare: invalid | remembered |');
console.log('| --- | --- | --- | --- | --- | --- |');
refusalRows.forEach((r, i) =>
  console.log(
    `| ${i + 1} | ${r.ours.invalid.toFixed(0)} | ${r.ours.remembered.toFixed(0)} | ${r.node.invalid.toFixed(0)} | ${(r.ours.invalid / r.node.invalid).toFixed(2)} | ${(r.ours.remembered / r.node.invalid).toFixed(2)} |`,
  ),
);
const medianOf = (f: (r: (typeof refusalRows)[number]) => number) => median(refusalRows.map(f));
console.log(
  `| median | ${medianOf((r) => r.ours.invalid).toFixed(0)} | ${medianOf((r) => r.ours.remembered).toFixed(0)} | ${medianOf((r) => r.node.invalid).toFixed(0)} | ${medianOf((r) => r.ours.invalid / r.node.invalid).toFixed(2)} | ${medianOf((r) => r.ours.remembered / r.node.invalid).toFixed(2)} |`,
);

// A manifest GET answered three ways, side by side in one run, with wrk on
// loopback: from the edge's cache (the Worker in workerd through miniflare),
// from the origin's own caches, and from the reference registry
// (docker-registry, Debian's distribution 2.8, filesystem storage) holding
// the very same manifest bytes.
//
// The edge rows run with hit reports on (the default: each manifest reported
// to the origin at most once an hour per isolate, docs/operations.md "Last
// use"). A table of its own then sets the same hits with reports on, off
// (USAGE_REPORT_INTERVAL=0) and every second side by side, interleaved over
// BENCH_HIT_ROUNDS rounds (default 5), medians: the cost of knowing which
// images are still used.
//
// Then, in the same run, two comparisons for the global tier and edge blob
// delivery (docs/edge.md):
// - a first pull of the manifest in a "second region" (a new edge, own
//   isolate and Cache API, sharing only the KV directory with the first)
//   against the same first pull by an edge without the global tier (which
//   crosses to the origin) and against the origin itself;
// - a repeat pull of a layer from the edge's cache (BLOB_DELIVERY=edge)
//   against the default redirect to storage (the GCS emulator) followed by
//   the client.
//
// Run: node bench/edge/run.ts   (prints markdown tables; about 5 min)
// Env: BENCH_DURATION (wrk -d, default 5s), BENCH_CONNECTIONS (wrk -c,
// default 16), BENCH_ROUNDS (default 2).
//
// Two cores are shared by wrk, the server under test and everything else:
// compare the rows of one run with each other, not with another machine.
// The targets take turns, round after round, and each row reports its best
// round, so a burst of load elsewhere does not decide the comparison.
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, type RunningOrigin } from '../../test/support/origin.ts';
import { bundleWorker, startEdge, type RunningEdge } from '../../scripts/edge-runtime.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { ORIGIN_SECRET_HEADER } from '../../shared/headers.ts';
import { HIT_REPORT_PATH } from '../../shared/hit-report.ts';
import { HitBatch } from '../../edge/hit-batch.ts';
import type { Digest } from '../../shared/digest.ts';
import { Miniflare } from 'miniflare';
import { createHash } from 'node:crypto';
import { Storage } from '@google-cloud/storage';
import { startGcsEmulator, type GcsEmulator } from '../../test/support/gcs-emulator.ts';
import { serviceAccountKeys } from '../../test/support/signing-key.ts';

const DURATION = process.env.BENCH_DURATION ?? '5s';
const CONNECTIONS = process.env.BENCH_CONNECTIONS ?? '16';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? '2');
/** New edges per kind for the second-region rows (each start takes about a second). */
const REGION_SAMPLES = Number(process.env.BENCH_REGION_SAMPLES ?? '7');
/** Concurrent clients and seconds per blob row. */
const BLOB_CLIENTS = Number(process.env.BENCH_BLOB_CLIENTS ?? '4');
const BLOB_SECONDS = Number(process.env.BENCH_BLOB_SECONDS ?? '5');
const SECRET = 'bench-secret';
/** Rounds of the hit report rows: their differences are small, so more rounds than the rest, and medians. */
const HIT_ROUNDS = Number(process.env.BENCH_HIT_ROUNDS ?? '5');
const IMAGE = 'hello';

interface Result {
  what: string;
  url: string;
  requestsPerSecond: number;
  p50: string;
  p99: string;
  errors: string;
}

/** wrk's latency line, e.g. "     50%    2.51ms", as written. */
function percentile(output: string, p: string): string {
  const m = new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(output);
  return m ? m[1]! : '?';
}

async function wrk(what: string, url: string, headers: Record<string, string>): Promise<Result> {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${DURATION}`, '--latency'];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  const { stdout } = await execa('wrk', [...args, url]);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
  const socketErrors = /Socket errors:([^\n]+)/.exec(stdout);
  return {
    what,
    url,
    requestsPerSecond: rps ? Number(rps[1]) : Number.NaN,
    p50: percentile(stdout, '50'),
    p99: percentile(stdout, '99'),
    errors: [non2xx ? `${non2xx[1]} non-2xx` : '', socketErrors ? socketErrors[1]!.trim() : ''].filter(Boolean).join('; ') || 'none',
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

async function startRegistry(dir: string): Promise<{ host: string; child: ChildProcess }> {
  const port = await freePort();
  const config = join(dir, 'config.yml');
  // Its best foot forward: no access log, the in-memory blob descriptor cache of Debian's default config.
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  cache:',
      '    blobdescriptor: inmemory',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    try {
      if ((await fetch(`http://${host}/v2/`)).ok) return { host, child };
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not start: ${stderr}`);
}

async function digestOf(url: string, headers: Record<string, string>): Promise<{ digest: string; bytes: number; cache: string | null }> {
  const res = await fetch(url, { headers });
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${new TextDecoder().decode(body)}`);
  return { digest: res.headers.get('docker-content-digest') ?? '?', bytes: body.byteLength, cache: res.headers.get('x-nixery-edge-cache') };
}

interface BlobLoad {
  rate: number;
  mbps: number;
  p50: number;
  p99: number;
  sources: string;
}

/**
 * Whole-blob GETs, as a client pulls a layer: BLOB_CLIENTS loops for
 * BLOB_SECONDS, following redirects, reading every byte and checking the
 * length (and the digest of the first answer of each loop).
 */
async function blobLoad(url: string, digest: string, size: number): Promise<BlobLoad> {
  const latencies: number[] = [];
  const sources = new Set<string>();
  const until = performance.now() + BLOB_SECONDS * 1000;
  await Promise.all(
    Array.from({ length: BLOB_CLIENTS }, async () => {
      let checked = false;
      while (performance.now() < until) {
        const started = performance.now();
        const res = await fetch(url);
        const body = new Uint8Array(await res.arrayBuffer());
        latencies.push(performance.now() - started);
        if (res.status !== 200 || body.byteLength !== size) throw new Error(`${url}: ${res.status}, ${body.byteLength} bytes`);
        sources.add(res.redirected ? 'redirected to storage' : (res.headers.get('x-nixery-edge-cache') ?? '?'));
        if (!checked) {
          if (`sha256:${createHash('sha256').update(body).digest('hex')}` !== digest) throw new Error(`${url}: wrong bytes`);
          checked = true;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  const rate = latencies.length / BLOB_SECONDS;
  return { rate, mbps: (rate * size) / 1024 / 1024, p50: at(0.5), p99: at(0.99), sources: [...sources].join(', ') };
}

const digestOfText = (text: string): Digest => `sha256:${createHash('sha256').update(text).digest('hex')}`;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

interface Target {
  what: string;
  url: string;
  headers: Record<string, string>;
}

const dir = await mkdtemp(join(tmpdir(), 'bench-edge-'));
let origin: RunningOrigin | undefined;
let edge: RunningEdge | undefined;
let fronted: RunningEdge | undefined;
let unreported: RunningEdge | undefined;
let chatty: RunningEdge | undefined;
let ceiling: Miniflare | undefined;
let registry: ChildProcess | undefined;
const results: Result[] = [];
const hitRows: { what: string; rounds: Result[]; reports: number }[] = [];
const notes: string[] = [];
const regionRows: { what: string; samples: number[]; sources: string }[] = [];
const blobRows: { what: string; rate: number; mbps: number; p50: number; p99: number; note: string }[] = [];
let emulator: GcsEmulator | undefined;
try {
  origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
  const bundle = await bundleWorker();
  const bindings = { ORIGIN_URL: origin.url, ORIGIN_SECRET: SECRET };
  // refuseTls: false measures workerd's own socket, as docs/edge.md's measurements did; `fronted` is what `npm run edge` serves.
  edge = await startEdge({ bundle, bindings, refuseTls: false });
  fronted = await startEdge({ bundle, bindings });
  unreported = await startEdge({ bundle, bindings: { ...bindings, USAGE_REPORT_INTERVAL: '0' }, refuseTls: false });
  chatty = await startEdge({ bundle, bindings: { ...bindings, USAGE_REPORT_INTERVAL: '1', USAGE_REPORT_DELAY_MS: '0' }, refuseTls: false });
  const docker = { Accept: MEDIA.dockerManifest };
  const originHeaders = { ...docker, [ORIGIN_SECRET_HEADER]: SECRET };

  // Warm every cache: the origin builds the image, the edges store the manifest.
  const viaEdge = await digestOf(`${edge.url}/v2/${IMAGE}/manifests/latest`, docker);
  await digestOf(`${fronted.url}/v2/${IMAGE}/manifests/latest`, docker);
  await digestOf(`${unreported.url}/v2/${IMAGE}/manifests/latest`, docker);
  await digestOf(`${chatty.url}/v2/${IMAGE}/manifests/latest`, docker);
  const viaOrigin = await digestOf(`${origin.url}/v2/${IMAGE}/manifests/latest`, originHeaders);

  // The reference registry gets the same image, manifest bytes unchanged (docker → docker, no conversion).
  const reg = await startRegistry(dir);
  registry = reg.child;
  await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests', `docker://${edge.url.slice('http://'.length)}/${IMAGE}:latest`, `docker://${reg.host}/${IMAGE}:latest`]);
  const viaRegistry = await digestOf(`http://${reg.host}/v2/${IMAGE}/manifests/latest`, docker);
  if (new Set([viaEdge.digest, viaOrigin.digest, viaRegistry.digest]).size !== 1) {
    throw new Error(`the three do not serve the same manifest: ${viaEdge.digest} ${viaOrigin.digest} ${viaRegistry.digest}`);
  }
  const digest = viaEdge.digest;
  notes.push(`manifest: ${digest} (${viaEdge.bytes} bytes, Docker schema2), identical from all three`);
  const edgeTag = `${edge.url}/v2/${IMAGE}/manifests/latest`;
  const edgeDigest = `${edge.url}/v2/${IMAGE}/manifests/${digest}`;
  notes.push(`edge hits come from: ${(await digestOf(edgeTag, docker)).cache} (by tag), ${(await digestOf(edgeDigest, docker)).cache} (by digest)`);

  // The ceiling: the same manifest bytes from a Worker that does nothing else, through the same miniflare.
  const manifestBytes = await (await fetch(edgeDigest, { headers: docker })).text();
  ceiling = new Miniflare({
    host: '127.0.0.1',
    port: 0,
    modules: true,
    cf: false,
    compatibilityDate: bundle.compatibilityDate,
    script: `const body = ${JSON.stringify(manifestBytes)}; export default { fetch() { return new Response(body, { headers: { 'Content-Type': ${JSON.stringify(MEDIA.dockerManifest)}, 'Docker-Content-Digest': ${JSON.stringify(digest)} } }); } };`,
  });
  const ceilingUrl = (await ceiling.ready).origin;

  const targets: Target[] = [
    { what: 'edge cache hit, by tag (workerd via miniflare)', url: edgeTag, headers: docker },
    { what: 'edge cache hit, by digest (workerd via miniflare)', url: edgeDigest, headers: docker },
    { what: 'origin, its caches warm, by tag', url: `${origin.url}/v2/${IMAGE}/manifests/latest`, headers: originHeaders },
    { what: 'origin, by digest', url: `${origin.url}/v2/${IMAGE}/manifests/${digest}`, headers: originHeaders },
    { what: 'docker-registry 2.8 (reference), by tag', url: `http://${reg.host}/v2/${IMAGE}/manifests/latest`, headers: docker },
    { what: 'docker-registry 2.8 (reference), by digest', url: `http://${reg.host}/v2/${IMAGE}/manifests/${digest}`, headers: docker },
    { what: 'edge cache hit, by tag, behind `npm run edge`’s TCP front', url: `${fronted.url}/v2/${IMAGE}/manifests/latest`, headers: docker },
    { what: 'ceiling: a Worker returning the manifest as a constant (workerd via miniflare)', url: `${ceilingUrl}/`, headers: docker },
  ];
  let originRequestsDuringEdgeRuns = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const [index, target] of targets.entries()) {
      const isEdge = target.url.startsWith(edge.url) || target.url.startsWith(fronted.url) || target.url.startsWith(ceilingUrl);
      const before = origin.logs.length;
      const result = await wrk(target.what, target.url, target.headers);
      if (isEdge) originRequestsDuringEdgeRuns += origin.logs.slice(before).filter((l) => l.msg === 'request' && l.path !== HIT_REPORT_PATH).length;
      const best = results[index];
      if (best === undefined || result.requestsPerSecond > best.requestsPerSecond) results[index] = result;
    }
  }
  notes.push(`origin requests during the edge runs: ${originRequestsDuringEdgeRuns} (revalidations of the tag, once per MANIFEST_TAG_TTL = 60 s), besides hit reports`);

  // --- Edge hits with hit reports on and off ---
  const hitTargets: Target[] = [
    { what: 'by tag, hit reports on (the default: each manifest once an hour per isolate)', url: edgeTag, headers: docker },
    { what: 'by tag, hit reports off (USAGE_REPORT_INTERVAL=0)', url: `${unreported.url}/v2/${IMAGE}/manifests/latest`, headers: docker },
    { what: 'by digest, hit reports on (the default)', url: edgeDigest, headers: docker },
    { what: 'by digest, hit reports off (USAGE_REPORT_INTERVAL=0)', url: `${unreported.url}/v2/${IMAGE}/manifests/${digest}`, headers: docker },
    { what: 'by digest, a report every second (USAGE_REPORT_INTERVAL=1, USAGE_REPORT_DELAY_MS=0)', url: `${chatty.url}/v2/${IMAGE}/manifests/${digest}`, headers: docker },
  ];
  // Each isolate has seen the manifest by tag and by digest before it is measured: steady hits.
  for (const target of hitTargets) await digestOf(target.url, target.headers);
  for (let round = 0; round < HIT_ROUNDS; round++) {
    for (const [index, target] of hitTargets.entries()) {
      const before = origin.logs.length;
      const result = await wrk(target.what, target.url, target.headers);
      // A report sent by the row's last hits is logged a moment later: count it for its own row.
      await new Promise((r) => setTimeout(r, 300));
      const reports = origin.logs.slice(before).filter((l) => l.msg === 'request' && l.path === HIT_REPORT_PATH).length;
      const row = (hitRows[index] ??= { what: target.what, rounds: [], reports: 0 });
      row.rounds.push(result);
      row.reports += reports;
    }
  }

  // --- A first pull in a second region ---
  const kvDir = join(dir, 'kv');
  const tagPath = `/v2/${IMAGE}/manifests/latest`;
  const firstRegion = await startEdge({ bundle, bindings, refuseTls: false, kvPersist: kvDir });
  try {
    await digestOf(`${firstRegion.url}${tagPath}`, docker);
    // The global tier is written after the response; wait until a fresh region answers from it.
    for (let attempt = 0; attempt < 50; attempt++) {
      const probe = await startEdge({ bundle, bindings, refuseTls: false, kvPersist: kvDir });
      const cache = (await digestOf(`${probe.url}${tagPath}`, docker)).cache;
      await probe.stop();
      if (cache === 'global') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const samples = { global: [] as number[], none: [] as number[], origin: [] as number[] };
    const sources = { global: new Set<string>(), none: new Set<string>() };
    for (let i = 0; i < REGION_SAMPLES; i++) {
      for (const kind of ['global', 'none'] as const) {
        // A new edge is a data centre that has never seen the image: empty memory, empty Cache API.
        const region = await startEdge({ bundle, bindings, refuseTls: false, kvPersist: kvDir, globalStore: kind === 'global' });
        try {
          await fetch(`${region.url}/v2/`).then((r) => r.arrayBuffer()); // the isolate is up: time the pull, not the start
          const started = performance.now();
          const { cache } = await digestOf(`${region.url}${tagPath}`, docker);
          samples[kind].push(performance.now() - started);
          sources[kind].add(cache ?? '?');
        } finally {
          await region.stop();
        }
      }
      const started = performance.now();
      await digestOf(`${origin.url}${tagPath}`, originHeaders);
      samples.origin.push(performance.now() - started);
    }
    regionRows.push(
      { what: 'second region, first pull, global tier (KV)', samples: samples.global, sources: [...sources.global].join(', ') },
      { what: 'second region, first pull, no global tier (edge → origin)', samples: samples.none, sources: [...sources.none].join(', ') },
      { what: 'the origin itself, its caches warm', samples: samples.origin, sources: 'origin' },
    );
  } finally {
    await firstRegion.stop();
  }

  // --- A repeat blob pull: the edge's cache against a redirect to storage ---
  const manifest = JSON.parse(manifestBytes) as { layers: { digest: string; size: number }[] };
  const layer = manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
  const layerRes = await fetch(`${origin.url}/v2/${IMAGE}/blobs/${layer.digest}`, { headers: { [ORIGIN_SECRET_HEADER]: SECRET } });
  const layerBytes = Buffer.from(await layerRes.arrayBuffer());
  if (`sha256:${createHash('sha256').update(layerBytes).digest('hex')}` !== layer.digest) throw new Error('the origin sent a layer that does not match its digest');
  emulator = await startGcsEmulator();
  const keys = serviceAccountKeys();
  const account = 'bench@demo-nixery-edge.iam.gserviceaccount.com';
  const bucket = 'bench-edge-blobs';
  const client = new Storage({ projectId: 'demo-nixery-edge', apiEndpoint: emulator.url, credentials: { client_email: account, private_key: keys.privateKey } });
  await client.bucket(bucket).file(`blobs/sha256/${layer.digest.slice('sha256:'.length)}`).save(layerBytes, { resumable: false });
  const gcs = { ...bindings, STORAGE_BACKEND: 'gcs', BUCKET: bucket, GCS_SIGNING_ACCOUNT: account, GCS_SIGNING_KEY: keys.privateKey, GCS_API_ENDPOINT: emulator.url };
  const servedByEdge = await startEdge({ bundle, bindings: { ...gcs, BLOB_DELIVERY: 'edge' }, refuseTls: false });
  const redirecting = await startEdge({ bundle, bindings: { ...gcs, BLOB_DELIVERY: 'redirect' }, refuseTls: false });
  try {
    const blobPath = `/v2/${IMAGE}/blobs/${layer.digest}`;
    // Fill the edge's cache (written after the first response).
    for (let attempt = 0; attempt < 50; attempt++) {
      const res = await fetch(`${servedByEdge.url}${blobPath}`);
      await res.arrayBuffer();
      if (res.headers.get('x-nixery-edge-cache') === 'cache') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const rounds: Record<'edge' | 'redirect', BlobLoad | undefined> = { edge: undefined, redirect: undefined };
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kind, target] of [['edge', servedByEdge], ['redirect', redirecting]] as const) {
        const load = await blobLoad(`${target.url}${blobPath}`, layer.digest, layerBytes.byteLength);
        if (rounds[kind] === undefined || load.rate > rounds[kind]!.rate) rounds[kind] = load;
      }
    }
    blobRows.push(
      { what: 'repeat pull from the edge cache (BLOB_DELIVERY=edge)', ...rounds.edge!, note: rounds.edge!.sources },
      { what: '307 from the edge, then the bytes from storage (BLOB_DELIVERY=redirect)', ...rounds.redirect!, note: rounds.redirect!.sources },
    );
    notes.push(`blob: the largest layer of ${IMAGE}, ${layer.digest.slice(0, 19)}…, ${(layerBytes.byteLength / 1024 / 1024).toFixed(2)} MiB; storage is the firebase-tools GCS emulator on loopback`);
  } finally {
    await redirecting.stop();
    await servedByEdge.stop();
  }
} finally {
  await emulator?.stop();
  await ceiling?.dispose();
  await chatty?.stop();
  await unreported?.stop();
  await fronted?.stop();
  await edge?.stop();
  await origin?.stop();
  if (registry && registry.exitCode === null) {
    const exited = new Promise((resolve) => registry!.once('exit', resolve));
    registry.kill('SIGTERM');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
}

console.log(`wrk -t1 -c${CONNECTIONS} -d${DURATION} --latency, one GET of the same manifest, loopback; best of ${ROUNDS} interleaved rounds per row\n`);
console.log('| what answered | req/s | p50 | p99 | errors |');
console.log('|---|---:|---:|---:|---|');
for (const r of results) console.log(`| ${r.what} | ${r.requestsPerSecond.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`);
console.log('');
for (const note of notes) console.log(`- ${note}`);
const edgeBest = Math.min(results[0]!.requestsPerSecond, results[1]!.requestsPerSecond);
const registryBest = Math.max(results[4]!.requestsPerSecond, results[5]!.requestsPerSecond);
console.log(`- edge hit / reference registry: ${(edgeBest / registryBest).toFixed(2)}× (slower edge row over faster registry row)`);
if (hitRows.length > 0) {
  const medianRound = (rounds: Result[]) => [...rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor(rounds.length / 2)]!;
  const ms = (text: string) => (text.endsWith('us') ? Number(text.slice(0, -2)) / 1000 : text.endsWith('ms') ? Number(text.slice(0, -2)) : text.endsWith('s') ? Number(text.slice(0, -1)) * 1000 : Number.NaN);
  const medianOf = (values: number[]) => median(values);
  console.log(`\nEdge hits (isolate memory) with hit reports on and off: wrk -t1 -c${CONNECTIONS} -d${DURATION}, ${HIT_ROUNDS} interleaved rounds; req/s: median and best round; p50 and p99: medians over the rounds\n`);
  console.log('| edge cache hit | req/s (median) | req/s (best) | p50 | p99 | reports the origin got |');
  console.log('|---|---:|---:|---:|---:|---:|');
  const summary = hitRows.map((row) => ({
    what: row.what,
    rate: medianRound(row.rounds).requestsPerSecond,
    best: Math.max(...row.rounds.map((r) => r.requestsPerSecond)),
    p50: medianOf(row.rounds.map((r) => ms(r.p50))),
    p99: medianOf(row.rounds.map((r) => ms(r.p99))),
    reports: row.reports,
  }));
  for (const r of summary) console.log(`| ${r.what} | ${r.rate.toFixed(0)} | ${r.best.toFixed(0)} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${r.reports} |`);
  const [onTag, offTag, onDigest, offDigest, chattyDigest] = summary;
  // What reporting adds to a hit between reports, timed alone: the batch's lookup of a digest reported already.
  const batch = new HitBatch({ intervalMs: 3_600_000, maxBatch: 256 });
  const hot = digestOfText('bench');
  batch.add(hot, 'https://registry.example', 0);
  const hits = 1_000_000;
  const started = performance.now();
  for (let i = 0; i < hits; i++) batch.add(hot, 'https://registry.example', i % 1000);
  const perHitNs = ((performance.now() - started) * 1e6) / hits;
  console.log('');
  console.log(`- the batch's work per hit between reports, timed alone in Node: ${perHitNs.toFixed(0)} ns, against ${(1e6 / onDigest!.rate).toFixed(0)} µs per hit served (1 / the median req/s above, 16 connections)`);
  for (const [on, off, how] of [[onTag!, offTag!, 'by tag'], [onDigest!, offDigest!, 'by digest'], [chattyDigest!, offDigest!, 'by digest, a report every second']] as const) {
    console.log(`- hit reports on / off, ${how}: ${(on.rate / off.rate).toFixed(2)}× req/s (medians), p50 ${on.p50.toFixed(2)} vs ${off.p50.toFixed(2)} ms, p99 ${on.p99.toFixed(2)} vs ${off.p99.toFixed(2)} ms`);
  }
}
if (regionRows.length > 0) {
  console.log(`\nA first pull of ${IMAGE}:latest's manifest in a region that never saw it (a new edge each sample: own isolate and Cache API), ${REGION_SAMPLES} samples each, interleaved; loopback\n`);
  console.log('| what answered | median | min | max | answered from |');
  console.log('|---|---:|---:|---:|---|');
  for (const r of regionRows) console.log(`| ${r.what} | ${median(r.samples).toFixed(1)} ms | ${Math.min(...r.samples).toFixed(1)} ms | ${Math.max(...r.samples).toFixed(1)} ms | ${r.sources} |`);
  const [global, none, direct] = regionRows.map((r) => median(r.samples));
  console.log(`\n- no global tier / global tier: ${(none! / global!).toFixed(2)}× (medians); origin itself / global tier: ${(direct! / global!).toFixed(2)}×`);
}
if (blobRows.length > 0) {
  console.log(`\nA repeat pull of one layer: ${BLOB_CLIENTS} clients (Node fetch, following redirects, reading every byte), ${BLOB_SECONDS} s, best of ${ROUNDS} interleaved rounds; loopback\n`);
  console.log('| what answered | pulls/s | MiB/s | p50 | p99 | answered from |');
  console.log('|---|---:|---:|---:|---:|---|');
  for (const r of blobRows) console.log(`| ${r.what} | ${r.rate.toFixed(0)} | ${r.mbps.toFixed(0)} | ${r.p50.toFixed(1)} ms | ${r.p99.toFixed(1)} ms | ${r.note} |`);
  console.log(`\n- edge cache / redirect to storage: ${(blobRows[0]!.rate / blobRows[1]!.rate).toFixed(2)}× pulls/s`);
}

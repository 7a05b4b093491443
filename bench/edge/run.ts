// A manifest GET answered three ways, side by side in one run, with wrk on
// loopback: from the edge's cache (the Worker in workerd through miniflare),
// from the origin's own caches, and from the reference registry
// (docker-registry, Debian's distribution 2.8, filesystem storage) holding
// the very same manifest bytes.
//
// Run: node bench/edge/run.ts   (prints a markdown table; about 90 s)
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
import { Miniflare } from 'miniflare';

const DURATION = process.env.BENCH_DURATION ?? '5s';
const CONNECTIONS = process.env.BENCH_CONNECTIONS ?? '16';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? '2');
const SECRET = 'bench-secret';
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

interface Target {
  what: string;
  url: string;
  headers: Record<string, string>;
}

const dir = await mkdtemp(join(tmpdir(), 'bench-edge-'));
let origin: RunningOrigin | undefined;
let edge: RunningEdge | undefined;
let fronted: RunningEdge | undefined;
let ceiling: Miniflare | undefined;
let registry: ChildProcess | undefined;
const results: Result[] = [];
const notes: string[] = [];
try {
  origin = await startOrigin({ env: { ORIGIN_SECRET: SECRET } });
  const bundle = await bundleWorker();
  const bindings = { ORIGIN_URL: origin.url, ORIGIN_SECRET: SECRET };
  // refuseTls: false measures workerd's own socket, as docs/edge.md's measurements did; `fronted` is what `npm run edge` serves.
  edge = await startEdge({ bundle, bindings, refuseTls: false });
  fronted = await startEdge({ bundle, bindings });
  const docker = { Accept: MEDIA.dockerManifest };
  const originHeaders = { ...docker, [ORIGIN_SECRET_HEADER]: SECRET };

  // Warm every cache: the origin builds the image, the edges store the manifest.
  const viaEdge = await digestOf(`${edge.url}/v2/${IMAGE}/manifests/latest`, docker);
  await digestOf(`${fronted.url}/v2/${IMAGE}/manifests/latest`, docker);
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
      if (isEdge) originRequestsDuringEdgeRuns += origin.logs.slice(before).filter((l) => l.msg === 'request').length;
      const best = results[index];
      if (best === undefined || result.requestsPerSecond > best.requestsPerSecond) results[index] = result;
    }
  }
  notes.push(`origin requests during the edge runs: ${originRequestsDuringEdgeRuns} (revalidations of the tag, once per MANIFEST_TAG_TTL = 60 s)`);
} finally {
  await ceiling?.dispose();
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

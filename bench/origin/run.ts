// The origin end to end on the bundled package set: what a first pull of a
// new image costs, what the same pull costs after a restart (the image
// cache in storage answers: no nix-build, no tar), and what a third image
// that shares layers writes (only its new layers).
//
// Then the cost of a new image against the tools that set the bar: the first
// manifest of an image (store realised, empty storage each time, so every
// layer is tarred and gzipped) beside `tar -c | pigz -p $(nproc)`,
// `tar -c | gzip -6` and a plain `tar -c` (a copy: the floor) of the same
// closure, interleaved round by round, as medians and ratios. Besides the
// bundled set's shell/bigpackage/hello, a large closure (about 480 MB of
// incompressible, half- and highly compressible files) comes from the
// bench-only set in bench/origin/large, built on first use.
//
// Run: node bench/origin/run.ts   (prints markdown tables)
//      BENCH_ROUNDS=5 to change the rounds of the side-by-side (default 3)
//      BENCH_CASES=large to run only some images of the side-by-side
import { nixEnvironment } from '../../origin/nix/settings.ts';
import { execa } from 'execa';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, REPO, FIXTURE_PKGS, type RunningOrigin } from '../../test/support/origin.ts';
import { readClosure, resolvePackages } from '../../origin/nix/nix.ts';
import { statFields } from '../../origin/nix/process-tree.ts';
import { NIX_SYSTEM, parseImageName } from '../../shared/names.ts';

interface Row {
  step: string;
  image: string;
  manifestMs: number;
  pullMs: number;
  builds: number;
  layersWritten: number;
  layers: number;
}

const count = (origin: RunningOrigin, msg: string) => origin.logs.filter((l) => l.msg === msg).length;

async function pull(origin: RunningOrigin, image: string, step: string): Promise<Row> {
  const builds = count(origin, 'image built');
  const written = count(origin, 'layer written');
  let started = performance.now();
  const res = await fetch(`${origin.url}/v2/${image}/manifests/latest`);
  const manifest = (await res.json()) as { layers: unknown[] };
  const manifestMs = performance.now() - started;
  if (res.status !== 200) throw new Error(`${image}: ${JSON.stringify(manifest)}`);
  const dir = await mkdtemp(join(tmpdir(), 'bench-pull-'));
  started = performance.now();
  await execa('skopeo', ['copy', '--src-tls-verify=false', `docker://127.0.0.1:${origin.port}/${image}:latest`, `oci:${dir}:latest`]);
  const pullMs = performance.now() - started;
  await rm(dir, { recursive: true, force: true });
  await new Promise((r) => setTimeout(r, 100));
  return {
    step,
    image,
    manifestMs,
    pullMs,
    builds: count(origin, 'image built') - builds,
    layersWritten: count(origin, 'layer written') - written,
    layers: manifest.layers.length,
  };
}

const storagePath = await mkdtemp(join(tmpdir(), 'bench-origin-'));
const rows: Row[] = [];
try {
  // Realise the store paths first so the first pull measures the registry's work, not the fixture's builders.
  await execa('nix-build', ['--no-out-link', 'bundled-pkgs', '-A', 'hello', '-A', 'bigPackage', '-A', 'htop', '-A', 'bashInteractive', '-A', 'coreutils'], { env: nixEnvironment({ NIX_CONFIG: 'substituters =' }) });
  let origin = await startOrigin({ storagePath });
  rows.push(await pull(origin, 'shell/bigpackage/hello', 'first pull, empty storage'));
  rows.push(await pull(origin, 'shell/bigpackage/hello', 'second pull, same origin'));
  await origin.stop();
  origin = await startOrigin({ storagePath });
  rows.push(await pull(origin, 'shell/bigpackage/hello', 'second pull, origin restarted'));
  rows.push(await pull(origin, 'shell/bigpackage/htop', 'third image sharing layers'));
  await origin.stop();
} finally {
  await rm(storagePath, { recursive: true, force: true });
}

console.log('| step | image | manifest ms | full skopeo pull ms | nix builds | layers written / layers |');
console.log('|---|---|---:|---:|---:|---|');
for (const r of rows) {
  console.log(`| ${r.step} | ${r.image} | ${r.manifestMs.toFixed(0)} | ${r.pullMs.toFixed(0)} | ${r.builds} | ${r.layersWritten} / ${r.layers} |`);
}

// ---- A new image against pigz, gzip and a copy of the same closure ----

const LARGE_PKGS = join(REPO, 'bench/origin/large');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CORES = availableParallelism();
const NIX_ENV = { env: nixEnvironment({ NIX_CONFIG: 'substituters =' }) };

interface Case {
  image: string;
  pkgs: string;
}

type Contender = 'origin' | 'pigz' | 'gzip -6' | 'tar (copy)';
const CONTENDERS: Contender[] = ['origin', 'pigz', 'gzip -6', 'tar (copy)'];

interface Sample {
  ms: number;
  /** CPU seconds, user and system, of every process and thread involved: robust to a busy machine, unlike wall time. */
  cpuSeconds: number;
  outputBytes: number;
  /** The origin's peak resident set (VmHWM, worker threads included). */
  peakRssBytes?: number;
  /** The origin's layer phase: from the first layer write's start to the last one's end (what tar | pigz does), without Nix's steps before it. */
  layersMs?: number;
}

/** The closure the origin would tar for this image, from the same resolution the origin runs. */
async function closureOf(c: Case): Promise<{ paths: string[]; bytes: number }> {
  const nix = { timeoutSeconds: 600 };
  const resolution = await resolvePackages({ type: 'path', path: c.pkgs }, NIX_SYSTEM.amd64, parseImageName(c.image).packages, nix);
  if (resolution.problems.length > 0) throw new Error(`${c.image}: ${JSON.stringify(resolution.problems)}`);
  const outputs = resolution.packages.flatMap((p) => p.outputs.map((o) => o.out));
  await execa('nix-build', ['--no-out-link', ...new Set(resolution.packages.flatMap((p) => p.outputs.map((o) => o.drv)))], NIX_ENV);
  const closure = await readClosure(outputs, nix);
  return { paths: closure.map((p) => p.path), bytes: closure.reduce((sum, p) => sum + p.narSize, 0) };
}

async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return kib ? Number(kib[1]) * 1024 : NaN;
}

/** CPU seconds of a process, its threads and its waited-for children (fields 14-17 of /proc/PID/stat, in ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = statFields(await readFile(`/proc/${pid}/stat`, 'utf8')) ?? [];
  // After the command name, field 3 is the state: utime is field 14 overall, index 11 here.
  return fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0) / 100;
}

async function originSample(c: Case): Promise<Sample> {
  const storage = await mkdtemp(join(tmpdir(), 'bench-origin-new-'));
  const origin = await startOrigin({ storagePath: storage, env: { NIXERY_PKGS_PATH: c.pkgs } });
  try {
    const pid = origin.process.pid!;
    const cpuBefore = await cpuSeconds(pid);
    const started = performance.now();
    const res = await fetch(`${origin.url}/v2/${c.image}/manifests/latest`);
    const manifest = (await res.json()) as { layers: { size: number }[] };
    const ms = performance.now() - started;
    if (res.status !== 200) throw new Error(`${c.image}: ${JSON.stringify(manifest)}`);
    const cpu = (await cpuSeconds(pid)) - cpuBefore;
    const peakRssBytes = await peakRss(pid);
    const writes = origin.logs.filter((l) => l.msg === 'layer written').map((l) => ({ end: Date.parse(String(l.time)), ms: Number(l.ms) }));
    const layersMs = Math.max(...writes.map((w) => w.end)) - Math.min(...writes.map((w) => w.end - w.ms));
    return { ms, cpuSeconds: cpu, outputBytes: manifest.layers.reduce((sum, l) => sum + l.size, 0), peakRssBytes, layersMs };
  } finally {
    await origin.stop();
    await rm(storage, { recursive: true, force: true });
  }
}

/** The closure tarred from / and piped through `filter` (nothing: a copy) into a file on the same disk as the origin's storage. */
async function shellSample(paths: string[], contender: Exclude<Contender, 'origin'>): Promise<Sample> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-tar-'));
  const out = join(dir, 'out');
  const filter = { pigz: `| pigz -6 -p ${CORES}`, 'gzip -6': '| gzip -6', 'tar (copy)': '' }[contender];
  try {
    const started = performance.now();
    // Paths are argv ("$@"), never spliced into the script. `times` prints the CPU time of the shell's children (tar and the compressor).
    const { stdout } = await execa(
      'bash',
      ['-c', `set -o pipefail; tar -cf - -C / -- "$@" ${filter} > "$OUT"; times`, 'bench', ...paths.map((p) => p.replace(/^\/+/, ''))],
      { env: { OUT: out } },
    );
    const ms = performance.now() - started;
    return { ms, cpuSeconds: childCpuSeconds(stdout), outputBytes: (await stat(out)).size };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The second line of bash's `times`: children's user and system time, as `0m1.234s 0m0.567s`. */
function childCpuSeconds(times: string): number {
  const line = times.trim().split('\n')[1] ?? '';
  return [...line.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, m) => sum + Number(m[1]) * 60 + Number(m[2]), 0);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

const cases: Case[] = [
  { image: 'shell/bigpackage/hello', pkgs: FIXTURE_PKGS },
  { image: 'large', pkgs: LARGE_PKGS },
  // 200 MB of random bytes alone: every piece stored, so the origin should cost about a copy.
  { image: 'assets', pkgs: LARGE_PKGS },
];
const only = process.env.BENCH_CASES?.split(',');
const results: { c: Case; closureBytes: number; samples: Map<Contender, Sample[]> }[] = [];
for (const c of cases.filter((c) => !only || only.includes(c.image))) {
  const closure = await closureOf(c);
  // Warm the page cache, so the first contender does not pay for the disk.
  await shellSample(closure.paths, 'tar (copy)');
  const samples = new Map<Contender, Sample[]>(CONTENDERS.map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, each round in another order: a noisy machine penalises every contender alike.
    const order = CONTENDERS.map((_, i) => CONTENDERS[(i + round) % CONTENDERS.length]!);
    for (const contender of order) {
      samples.get(contender)!.push(contender === 'origin' ? await originSample(c) : await shellSample(closure.paths, contender));
    }
  }
  results.push({ c, closureBytes: closure.bytes, samples });
}

console.log(`\nA new image's first manifest (store realised, empty storage) against the same closure through tar: ${ROUNDS} rounds interleaved, ${CORES} cores, medians.\n`);
console.log('| image | closure MB | contender | median ms | min–max ms | × pigz | × gzip -6 | CPU s (median) | CPU × pigz | output MB | peak RSS MB | origin: layers ms (× pigz) |');
console.log('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const { c, closureBytes, samples } of results) {
  const med = (k: Contender) => median(samples.get(k)!.map((s) => s.ms));
  const cpu = (k: Contender) => median(samples.get(k)!.map((s) => s.cpuSeconds));
  for (const contender of CONTENDERS) {
    const list = samples.get(contender)!;
    const ms = list.map((s) => s.ms);
    const rss = list.map((s) => s.peakRssBytes).filter((x): x is number => x !== undefined);
    const layers = list.map((s) => s.layersMs).filter((x): x is number => x !== undefined);
    const layersCell = layers.length ? `${median(layers).toFixed(0)} (${(median(layers) / med('pigz')).toFixed(2)})` : '';
    console.log(
      `| ${c.image} | ${mb(closureBytes)} | ${contender} | ${med(contender).toFixed(0)} | ${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)} | ` +
        `${(med(contender) / med('pigz')).toFixed(2)} | ${(med(contender) / med('gzip -6')).toFixed(2)} | ${cpu(contender).toFixed(2)} | ${(cpu(contender) / cpu('pigz')).toFixed(2)} | ${mb(median(list.map((s) => s.outputBytes)))} | ${rss.length ? mb(Math.max(...rss)) : ''} | ${layersCell} |`,
    );
  }
}

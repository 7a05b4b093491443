// The origin end to end on the bundled package set: what a first pull of a
// new image costs, what the same pull costs after a restart (the image
// cache in storage answers: no nix-build, no tar), and what a third image
// that shares layers writes (only its new layers).
//
// Run: node bench/origin/run.ts   (prints a markdown table)
import { nixEnvironment } from '../../origin/nix/settings.ts';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrigin, type RunningOrigin } from '../../test/support/origin.ts';

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
  await execa('nix-build', ['--no-out-link', 'test/fixtures/pkgs', '-A', 'hello', '-A', 'bigPackage', '-A', 'htop', '-A', 'bashInteractive', '-A', 'coreutils'], { env: nixEnvironment({ NIX_CONFIG: 'substituters =' }) });
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

// arm64 next to amd64 on this x86_64 machine: what the first pull of an
// image costs when every package is built from scratch (a copy of the
// bundled set with a fresh nonce in every derivation), what it costs when the
// store has them (another origin, empty storage), a full skopeo pull, and
// running the image's program in a chroot (native, or under qemu).
// Needs what the arm64 tests need (scripts/setup-arm64.sh, root).
//
// Run: node bench/arm64/run.ts   (prints a markdown table)
import { startOrigin, type RunningOrigin } from '../../test/support/origin.ts';
import { freshFixture } from '../../test/support/fresh-fixture.ts';
import { ARM64_NIX_CONFIG, requireArm64 } from '../../test/support/arm64.ts';
import { pullAndUnpack, runInRootfs } from '../../test/support/clients.ts';

await requireArm64();

const IMAGES: { image: string; command: string[] }[] = [
  { image: 'hello', command: ['/bin/hello'] },
  { image: 'shell', command: ['/bin/bash', '-c', 'echo $((6*7))'] },
];
const ARCHES = ['amd64', 'arm64'] as const;
type Arch = (typeof ARCHES)[number];
const nameFor = (arch: Arch, image: string) => (arch === 'arm64' ? `arm64/${image}` : image);

async function manifestMs(origin: RunningOrigin, name: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${name}: ${res.status} ${body}`);
  return performance.now() - started;
}

/** Unknown names make the origin evaluate the set for both systems, so the first measured pull is not also the first request. */
async function warmUp(origin: RunningOrigin): Promise<void> {
  for (const arch of ARCHES) await fetch(`${origin.url}/v2/${nameFor(arch, 'no-such-package')}/manifests/latest`).then((res) => res.text());
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const rows = new Map<string, Record<Arch, number>>();
function record(step: string, arch: Arch, ms: number): void {
  const row = rows.get(step) ?? ({} as Record<Arch, number>);
  row[arch] = ms;
  rows.set(step, row);
}

const pkgs = await freshFixture();
const env = { NIX_CONFIG: ARM64_NIX_CONFIG, NIXERY_PKGS_PATH: pkgs.path, NIX_TIMEOUT: '300' };
try {
  const first = await startOrigin({ env });
  try {
    await warmUp(first);
    for (const { image } of IMAGES) for (const arch of ARCHES) record(`${image}: first pull, nothing built`, arch, await manifestMs(first, nameFor(arch, image)));
  } finally {
    await first.stop();
  }
  const second = await startOrigin({ env });
  try {
    await warmUp(second);
    for (const { image, command } of IMAGES) {
      for (const arch of ARCHES) {
        const name = nameFor(arch, image);
        record(`${image}: first pull, store built, empty storage`, arch, await manifestMs(second, name));
        record(`${image}: manifest again, same origin`, arch, await manifestMs(second, name));
        let started = performance.now();
        const pulled = await pullAndUnpack(`127.0.0.1:${second.port}`, `${name}:latest`, ['--override-arch', arch]);
        record(`${image}: skopeo copy + umoci unpack`, arch, performance.now() - started);
        try {
          const runs: number[] = [];
          for (let i = 0; i < 5; i++) {
            started = performance.now();
            await runInRootfs(pulled.rootfs, command);
            runs.push(performance.now() - started);
          }
          record(`${image}: run \`${command.join(' ')}\` in a chroot (median of 5)`, arch, median(runs));
        } finally {
          await pulled.remove();
        }
      }
    }
  } finally {
    await second.stop();
  }
} finally {
  await pkgs.remove();
}

console.log('| step | amd64 ms | arm64 ms | arm64 / amd64 |');
console.log('|---|---:|---:|---:|');
for (const [step, { amd64, arm64 }] of rows) {
  console.log(`| ${step} | ${amd64.toFixed(0)} | ${arm64.toFixed(0)} | ${(arm64 / amd64).toFixed(2)} |`);
}

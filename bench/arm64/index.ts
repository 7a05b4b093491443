// What one name for two platforms costs: the first pull of an image by an
// index-reading client (docker's Accept) from an origin with
// NIXERY_PLATFORMS=amd64 (a manifest) and with NIXERY_PLATFORMS=amd64,arm64
// (an index; both images built at once), when nothing is built (a copy of the
// bundled set with a fresh nonce in every derivation), when the store has the
// packages but storage is empty (layers written again), and once known.
// Runs interleave the two configurations, alternating which goes first.
// Needs what the arm64 tests need (scripts/setup-arm64.sh, root).
//
// Run: node bench/arm64/index.ts [rounds]   (prints a markdown table; medians)
import { startOrigin, type RunningOrigin } from '../../test/support/origin.ts';
import { freshFixture } from '../../test/support/fresh-fixture.ts';
import { ARM64_NIX_CONFIG, requireArm64 } from '../../test/support/arm64.ts';
import { MEDIA } from '../../shared/media-types.ts';

await requireArm64();

const ROUNDS = Number(process.argv[2] ?? 3);
const IMAGES = ['hello', 'shell'];
const CONFIGS = { one: 'amd64', two: 'amd64,arm64' } as const;
type Config = keyof typeof CONFIGS;
const DOCKER_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerManifestList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

async function pullMs(origin: RunningOrigin, name: string, expected: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`, { headers: { accept: DOCKER_ACCEPT } });
  const body = await res.text();
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`${name}: ${res.status} ${body}`);
  if (res.headers.get('content-type') !== expected) throw new Error(`${name}: answered ${res.headers.get('content-type')}, not ${expected}`);
  return ms;
}

/** An unknown name makes the origin evaluate the set for its platforms, so the first measured pull is not also the first request. */
async function warmUp(origin: RunningOrigin): Promise<void> {
  await fetch(`${origin.url}/v2/no-such-package/manifests/latest`, { headers: { accept: DOCKER_ACCEPT } }).then((res) => res.text());
}

const samples = new Map<string, Record<Config, number[]>>();
function record(step: string, config: Config, ms: number): void {
  const row = samples.get(step) ?? { one: [], two: [] };
  row[config].push(ms);
  samples.set(step, row);
}

async function round(config: Config): Promise<void> {
  const pkgs = await freshFixture();
  const env = { NIX_CONFIG: ARM64_NIX_CONFIG, NIXERY_PKGS_PATH: pkgs.path, NIX_TIMEOUT: '300', NIXERY_PLATFORMS: CONFIGS[config] };
  const expected = config === 'two' ? MEDIA.dockerManifestList : MEDIA.dockerManifest;
  try {
    const first = await startOrigin({ env });
    try {
      await warmUp(first);
      for (const image of IMAGES) record(`${image}: first pull, nothing built`, config, await pullMs(first, image, expected));
    } finally {
      await first.stop();
    }
    const second = await startOrigin({ env });
    try {
      await warmUp(second);
      for (const image of IMAGES) {
        record(`${image}: first pull, store built, empty storage`, config, await pullMs(second, image, expected));
        record(`${image}: pull again, same origin`, config, await pullMs(second, image, expected));
      }
    } finally {
      await second.stop();
    }
  } finally {
    await pkgs.remove();
  }
}

for (let r = 0; r < ROUNDS; r++) {
  const order: Config[] = r % 2 === 0 ? ['one', 'two'] : ['two', 'one'];
  for (const config of order) await round(config);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

console.log(`| step (median of ${ROUNDS}, interleaved) | amd64 only, ms | amd64,arm64 (index), ms | two / one |`);
console.log('|---|---:|---:|---:|');
for (const [step, { one, two }] of samples) {
  console.log(`| ${step} | ${median(one).toFixed(0)} | ${median(two).toFixed(0)} | ${(median(two) / median(one)).toFixed(2)} |`);
}

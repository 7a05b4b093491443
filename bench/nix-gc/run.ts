// What the origin's own Nix garbage collection costs builds: the same eight
// images built two at a time by an origin whose store is collected every
// second and by one whose store is never collected, each with a fresh store
// of its own (a private mount namespace over /nix, as root: the shared store
// is never touched), alternating, ROUNDS times. Prints a markdown table.
//
//   node bench/nix-gc/run.ts        (BENCH_ROUNDS=3 by default)
import { mapLimit } from '../../origin/image/map-limit.ts';
import { startPrivateNixOrigin } from '../../test/support/private-nix.ts';

const IMAGES = ['hello', 'shell/git', 'jq/curl', 'htop/hello', 'python3packages.requests', 'shell/bigpackage', 'envscript/git', 'openssl/curl/jq'];
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

interface Sample {
  seconds: number;
  runs: number;
  gcSeconds: number[];
  freedMiB: number;
  storeMiB: number;
}

async function once(collect: boolean): Promise<Sample> {
  const origin = await startPrivateNixOrigin({ env: { NIX_GC_INTERVAL_SECONDS: collect ? '1' : '0' } });
  try {
    const started = performance.now();
    await mapLimit(IMAGES, 2, async (name) => {
      const res = await fetch(`${origin.url}/v2/${name}/manifests/latest`);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
    }, () => 1);
    const seconds = (performance.now() - started) / 1000;
    const runs = origin.logs.filter((l) => l.msg === 'nix store garbage collected');
    const du = await origin.inNamespace('du', ['-sm', '/nix']);
    return {
      seconds,
      runs: runs.length,
      gcSeconds: runs.map((l) => Number(l.seconds)),
      freedMiB: runs.reduce((sum, l) => sum + Number(l.bytesFreed), 0) / 2 ** 20,
      storeMiB: Number(du.stdout.split('\t')[0]),
    };
  } finally {
    await origin.cleanup();
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
};

const samples: Record<'off' | 'every 1 s', Sample[]> = { off: [], 'every 1 s': [] };
for (let round = 0; round < ROUNDS; round++) {
  samples.off.push(await once(false));
  samples['every 1 s'].push(await once(true));
}

console.log(`8 images, 2 at a time, fresh private store, ${ROUNDS} rounds (medians)\n`);
console.log('| collection | wall time | collections during the builds | one collection | freed | store at the end |');
console.log('|---|---|---|---|---|---|');
for (const [name, list] of Object.entries(samples)) {
  const gc = list.flatMap((s) => s.gcSeconds);
  console.log(
    `| ${name} | ${median(list.map((s) => s.seconds)).toFixed(2)} s | ${median(list.map((s) => s.runs))} | ${gc.length ? `${(median(gc) * 1000).toFixed(0)} ms (max ${(Math.max(...gc) * 1000).toFixed(0)} ms)` : '—'} | ${median(list.map((s) => s.freedMiB)).toFixed(0)} MiB | ${median(list.map((s) => s.storeMiB))} MiB |`,
  );
}
const ratio = median(samples['every 1 s'].map((s) => s.seconds)) / median(samples.off.map((s) => s.seconds));
console.log(`\nwall time with collections every second ÷ without: ${ratio.toFixed(2)}`);

// Runs every benchmark in turn; each prints its own markdown table.
import { execa } from 'execa';

const benches = ['bench/layering/run.ts', 'bench/origin/run.ts', 'bench/arm64/run.ts', 'bench/arm64/index.ts', 'bench/gcs/upload-strategies.ts', 'bench/edge/run.ts', 'bench/edge/tee.ts', 'bench/search/run.ts', 'bench/load/run.ts', 'bench/burst/run.ts', 'bench/nix-gc/run.ts', 'bench/gc/run.ts'];
for (const bench of benches) {
  console.log(`\n## ${bench}\n`);
  await execa(process.execPath, [bench], { stdio: 'inherit', env: { NIX_CONFIG: process.env.NIX_CONFIG ?? 'substituters =' } });
}

// Runs `npm run gc` (origin/gc/cli.ts) as an operator would: a process of its
// own, configured by the origin's variables, beside an origin on the same storage.
import { execa } from 'execa';
import { join } from 'node:path';
import { FIXTURE_PKGS, NODE, OFFLINE_NIX_CONFIG, REPO } from './origin.ts';

export interface GcResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

export async function runGc(args: string[], env: Record<string, string>): Promise<GcResult> {
  const { exitCode, stdout, stderr } = await execa(NODE, [join(REPO, 'origin/gc/cli.ts'), ...args], {
    cwd: REPO,
    reject: false,
    env: { NIX_CONFIG: OFFLINE_NIX_CONFIG, NIXERY_PKGS_PATH: FIXTURE_PKGS, STORAGE_BACKEND: 'filesystem', ...env },
  });
  return { exitCode, stdout, stderr };
}

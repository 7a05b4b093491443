// Helpers for the operations tests: an origin on the tiny package set of
// test/fixtures/slow-pkgs with fresh builds (a new salt per origin) and its
// own TMPDIR (where Nix makes its build directories), plus ways to wait for
// log lines and for the process to exit, and to list what a run left behind.
import { nixEnvironment } from '../../origin/nix/settings.ts';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { OFFLINE_NIX_CONFIG, REPO, startOrigin, type RunningOrigin } from './origin.ts';
import { eventually } from './eventually.ts';

export const SLOW_PKGS = join(REPO, 'test/fixtures/slow-pkgs');

export interface OpsOrigin extends RunningOrigin {
  /** TMPDIR of the origin and of the Nix commands it runs. */
  tmp: string;
  /** A file that, once created, lets the `slow` package's build finish. */
  gate: string;
  /** Stops the origin if still running, removes its storage and TMPDIR. */
  cleanup(): Promise<void>;
}

export async function startOpsOrigin(env: Record<string, string> = {}): Promise<OpsOrigin> {
  const tmp = await mkdtemp(join(tmpdir(), 'nixery-ops-tmp-'));
  // Nix running as root builds as a nixbld user, who must see the gate file.
  await chmod(tmp, 0o755);
  const gate = join(tmp, 'release-slow-build');
  const salt = randomBytes(8).toString('hex');
  let origin: RunningOrigin;
  try {
    origin = await startOrigin({
      env: {
        NIXERY_PKGS_PATH: SLOW_PKGS,
        SLOW_PKGS_SALT: salt,
        SLOW_PKGS_GATE: gate,
        TMPDIR: tmp,
        ...env,
      },
    });
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return {
    ...origin,
    tmp,
    gate,
    async cleanup() {
      await origin.stop();
      await rm(tmp, { recursive: true, force: true });
      await deleteFixtureOutputs({ SLOW_PKGS_SALT: salt, SLOW_PKGS_GATE: gate, ...env });
    },
  };
}

/**
 * Removes from the Nix store what one salted origin built (a test's `big`
 * package is tens of MiB), so test runs do not fill the store. Paths that
 * were never built or are still referred to are left alone.
 */
async function deleteFixtureOutputs(originEnv: Record<string, string>): Promise<void> {
  // The same SLOW_PKGS_* variables as the origin had, so the same derivations.
  const nixEnv = { ...originEnv, ...nixEnvironment({ NIX_CONFIG: OFFLINE_NIX_CONFIG }) };
  const expr = `with import ${JSON.stringify(SLOW_PKGS)} { }; map (p: p.outPath) [ hello slow big base ]`;
  const evaluated = await execa('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr], { env: nixEnv, reject: false });
  if (evaluated.exitCode !== 0) return;
  await execa('nix-store', ['--delete', ...(JSON.parse(evaluated.stdout) as string[])], { env: nixEnv, reject: false });
}

type Log = Record<string, unknown>;

/** Waits for a log line matching `match`, and returns it. */
export async function waitForLog(origin: RunningOrigin, match: (line: Log) => boolean, what: string, ms = 60_000): Promise<Log> {
  await eventually(() => origin.logs.some(match), what, ms);
  return origin.logs.find(match)!;
}

/** Polls an asynchronous condition until it holds. */
export async function until(condition: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Paths of the files under `dir`, relative to it; [] when it does not exist. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(relative: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(join(dir, relative), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const path = relative ? `${relative}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path);
      else out.push(path);
    }
  }
  await walk('');
  return out.sort();
}

/** The largest file directly in `dir`, in bytes; 0 when it is empty or absent. */
export async function largestFile(dir: string): Promise<number> {
  let largest = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const info = await stat(join(dir, name)).catch(() => null);
    if (info?.isFile()) largest = Math.max(largest, info.size);
  }
  return largest;
}

/** Processes whose command line mentions `marker` (a path unique to one test). */
export async function processesMentioning(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(marker)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

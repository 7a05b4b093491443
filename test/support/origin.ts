// Starts a real origin process for tests: the same entry point as
// `npm run origin`, on a free port, with its own temporary storage, building
// from the bundled package set unless told otherwise.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const FIXTURE_PKGS = join(REPO, 'bundled-pkgs');
/** Tests run with the repo's Node 22 (node_modules/.bin first on PATH via npm), whatever started them. */
export const NODE = process.execPath;
/** Offline: without this Nix spends 5 s per command trying cache.nixos.org. */
export const OFFLINE_NIX_CONFIG = 'substituters =';

export interface RunningOrigin {
  url: string;
  port: number;
  storagePath: string;
  /** Every JSON log line the origin printed so far, parsed. */
  logs: Record<string, unknown>[];
  process: ChildProcess;
  /** Stops the process (SIGTERM, then SIGKILL) and, unless kept, removes its storage. */
  stop(options?: { keepStorage?: boolean }): Promise<void>;
}

export interface StartOriginOptions {
  env?: Record<string, string>;
  /** Reuse a storage directory (e.g. to restart an origin over the same data). */
  storagePath?: string;
  /** The command that runs the origin, from node's; e.g. inside a private mount namespace (private-nix.ts). */
  wrap?: (command: string, args: string[]) => { command: string; args: string[] };
}

export async function startOrigin(options: StartOriginOptions = {}): Promise<RunningOrigin> {
  const storagePath = options.storagePath ?? (await mkdtemp(join(tmpdir(), 'nixery-edge-storage-')));
  const argv = (options.wrap ?? ((command, args) => ({ command, args })))(NODE, [join(REPO, 'origin/main.ts')]);
  const child = spawn(argv.command, argv.args, {
    cwd: REPO,
    env: {
      ...process.env,
      NIX_CONFIG: OFFLINE_NIX_CONFIG,
      PORT: '0',
      HOST: '127.0.0.1',
      NIXERY_PKGS_PATH: FIXTURE_PKGS,
      STORAGE_BACKEND: 'filesystem',
      STORAGE_PATH: storagePath,
      LOG_LEVEL: 'info',
      // The machine's store is shared by every test running: only an origin with a store of its own
      // (private-nix.ts) may collect garbage.
      NIX_GC_MIN_FREE_MIB: '0',
      NIX_GC_INTERVAL_SECONDS: '0',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`origin did not start within 15 s: ${stderr}`)), 15_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(parsed);
      if (typeof parsed.port === 'number' && String(parsed.msg).startsWith('origin listening')) {
        clearTimeout(timer);
        resolve(parsed.port);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`origin exited with ${code} before listening: ${stderr}`));
    });
  });
  let port: number;
  try {
    port = await listening;
  } catch (err) {
    // An origin that never said it listens is still a process: it must not outlive the test.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    if (options.storagePath === undefined) await rm(storagePath, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    storagePath,
    logs,
    process: child,
    async stop(stopOptions = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      if (!stopOptions.keepStorage && options.storagePath === undefined) await rm(storagePath, { recursive: true, force: true });
    },
  };
}

// A Nix command stopped (timed out or cancelled) before the launcher's
// report of its spawn arrived is still ended once the report comes. Real
// nix-instantiate fetches a tarball from a local server that accepts the
// connection and never answers, so Nix runs until it is killed. The launcher
// is the real one; only its spawn report is held back by the test (a HELD
// launcher), as a busy worker thread or event loop delays it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { fetchSource, NixError } from '../../origin/nix/nix.ts';
import { ProcessLauncher, type LaunchedProcess } from '../../origin/nix/process-launcher.ts';
import { statFields } from '../../origin/nix/process-tree.ts';
import { deferrer, type Defer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';

function gone(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return true;
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[0] === 'Z';
  } catch {
    return true;
  }
}

/** A server that takes connections and never answers; resolves `connected` at the first. */
async function silentServer(defer: Defer): Promise<{ url: string; connected: Promise<void> }> {
  const sockets: Socket[] = [];
  let onConnect!: () => void;
  const connected = new Promise<void>((resolve) => (onConnect = resolve));
  const server = createServer((socket) => {
    sockets.push(socket);
    onConnect();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/nixpkgs.tar.gz`, connected };
}

/** The real launcher with its spawn reports held until `release()`; `pid` is the real spawn. */
function heldLauncher(defer: Defer) {
  const launcher = new ProcessLauncher();
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let pid!: (pid: number) => void;
  const spawned = new Promise<number>((resolve) => (pid = resolve));
  defer(async () => {
    release();
    // Whatever the test found, nothing it started outlives it.
    const started = await Promise.race([spawned, new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000))]);
    if (started !== null && !gone(started)) {
      try {
        process.kill(-started, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
    await launcher.close();
  });
  const held: Pick<ProcessLauncher, 'launch'> = {
    launch(command, args, options): LaunchedProcess {
      const child = launcher.launch(command, args, options);
      child.started.then(pid, () => undefined);
      const started = child.started.then(async (value) => {
        await released;
        return value;
      });
      started.catch(() => undefined);
      return { ...child, started, onStderr: (listener) => child.onStderr(listener) };
    },
  };
  return { held, release, spawned };
}

const nixEnv = { NIX_CONFIG: 'substituters =' };

test('a Nix command that times out before its spawn is reported is killed once the report arrives', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const server = await silentServer(defer);
  const { held, release, spawned } = heldLauncher(defer);
  const fetching = fetchSource({ type: 'tarball', url: server.url }, { timeoutSeconds: 1, env: nixEnv, launcher: held });
  fetching.catch(() => undefined);
  const pid = await spawned;
  // Nix is downloading: left alone it would wait for the server for minutes.
  await server.connected;
  await assert.rejects(fetching, (err: unknown) => err instanceof NixError && err.timedOut);
  assert.ok(!gone(pid), 'nix-instantiate still runs while its spawn report is held');
  release();
  await eventually(() => gone(pid), `nix-instantiate (${pid}) to be killed`, 10_000);
});

test('a Nix command cancelled before its spawn is reported is killed, and the cancel answers once it is gone', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const server = await silentServer(defer);
  const { held, release, spawned } = heldLauncher(defer);
  const cancel = new AbortController();
  const fetching = fetchSource({ type: 'tarball', url: server.url }, { timeoutSeconds: 120, env: nixEnv, launcher: held, signal: cancel.signal });
  fetching.catch(() => undefined);
  const pid = await spawned;
  await server.connected;
  cancel.abort();
  release();
  await assert.rejects(fetching, /was cancelled/);
  await eventually(() => gone(pid), `nix-instantiate (${pid}) to be killed`, 10_000);
});

test('a Nix command started with its signal already aborted is killed once its spawn is reported', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const server = await silentServer(defer);
  const { held, release, spawned } = heldLauncher(defer);
  const fetching = fetchSource({ type: 'tarball', url: server.url }, { timeoutSeconds: 120, env: nixEnv, launcher: held, signal: AbortSignal.abort() });
  fetching.catch(() => undefined);
  const pid = await spawned;
  release();
  await assert.rejects(fetching, /was cancelled/);
  await eventually(() => gone(pid), `nix-instantiate (${pid}) to be killed`, 10_000);
});

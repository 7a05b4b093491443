// NIX_TIMEOUT holds even when what Nix started will not stop by itself: a
// FAKE nix-build (a shell script first on the origin's PATH, standing in for
// a builder that detaches a daemon) ignores SIGTERM and leaves a grandchild
// in a session of its own that keeps stdout and stderr open. At the timeout
// the origin answers at once, and nothing the fake started is left running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startOrigin } from '../support/origin.ts';
import { tempDir } from '../support/sources.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';
import { rm } from 'node:fs/promises';
import { fakeNixBuild } from '../support/fake-nix-build.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('at NIX_TIMEOUT the whole tree Nix started is killed and the origin answers at once', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const dir = await tempDir('fake-nix-build-');
  defer(() => rm(dir, { recursive: true, force: true }));
  const pids = join(dir, 'pids');
  // Once armed (after the origin's start-up check), ignores SIGTERM and detaches a
  // grandchild (new session) that holds the output open.
  const fake = await fakeNixBuild(
    dir,
    `trap '' TERM\necho "fake nix-build: building forever" >&2\nsetsid sleep 300 &\necho $! >> '${pids}'\necho $$ >> '${pids}'\nwhile :; do sleep 1; done\n`,
  );
  const origin = await startOrigin({ env: { NIX_TIMEOUT: '2', PATH: fake.path } });
  defer(() => origin.stop());
  defer(async () => {
    // Whatever the test found, nothing it started may outlive it.
    for (const pid of (await readFile(pids, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
  });

  await fake.arm();
  const started = performance.now();
  const res = await fetch(`${origin.url}/v2/hello/manifests/latest`, { signal: AbortSignal.timeout(30_000) });
  const seconds = (performance.now() - started) / 1000;
  assert.equal(res.status, 500);
  const body = (await res.json()) as { errors: { message: string; detail: { nix: string } }[] };
  assert.match(body.errors[0]!.message, /nix build timed out: nix-build timed out after 2 s/);
  assert.match(body.errors[0]!.detail.nix, /fake nix-build: building forever/);
  // Evaluation takes a second or two here; a wait for the streams to close would take 300 s.
  assert.ok(seconds < 15, `answered after ${seconds.toFixed(1)} s`);

  const started2 = (await readFile(pids, 'utf8')).split('\n').filter(Boolean).map(Number);
  assert.equal(started2.length, 2, 'the fake ran once and noted its grandchild and itself');
  await eventually(() => started2.every((pid) => !alive(pid)), 'the fake nix-build and its detached grandchild to be gone', 5_000);
});

// An origin in a private PID namespace (test/support/private-nix.ts) is not
// the namespace's PID 1: what a build leaves orphaned is reaped there rather
// than left a zombie for the origin's lifetime. A FAKE nix-build (a shell
// script first on the origin's PATH, once armed after the start-up check
// that runs the real one) leaves a background process behind and exits, so
// that process is orphaned and then ends (the origin kills the group of a
// command that exited).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeNixBuild } from '../support/fake-nix-build.ts';
import { statFields } from '../../origin/nix/process-tree.ts';
import { startPrivateNixOrigin } from '../support/private-nix.ts';
import { tempDir } from '../support/sources.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';

/** pid → [parent, state] of every process, from /proc. */
function processes(): Map<number, [number, string]> {
  const table = new Map<number, [number, string]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(readFileSync(`/proc/${entry}/stat`, 'utf8'));
      if (fields) table.set(Number(entry), [Number(fields[1]), fields[0]!]);
    } catch {
      // Exited while we looked.
    }
  }
  return table;
}

/** Zombies among the descendants of `root`. */
function zombiesUnder(root: number): number[] {
  const table = processes();
  const below = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, [ppid]] of table) {
      if (below.has(ppid) && !below.has(pid)) {
        below.add(pid);
        grew = true;
      }
    }
  }
  return [...below].filter((pid) => table.get(pid)?.[1] === 'Z');
}

test('a process a build left orphaned in a private-store origin’s namespace is reaped, not left a zombie', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) assert.fail('needs root: a private mount and PID namespace');
  const defer = deferrer(t);
  const dir = await tempDir('fake-nix-build-');
  defer(() => rm(dir, { recursive: true, force: true }));
  const orphans = join(dir, 'orphans');
  const fake = await fakeNixBuild(dir, `sleep 300 &\necho $! >> '${orphans}'\necho "fake nix-build: left a process behind" >&2\nexit 1\n`);
  const origin = await startPrivateNixOrigin({ env: { PATH: fake.path } });
  defer(() => origin.cleanup());

  await fake.arm();
  const res = await fetch(`${origin.url}/v2/hello/manifests/latest`, { signal: AbortSignal.timeout(60_000) });
  assert.equal(res.status, 500);
  const body = (await res.json()) as { errors: { detail: { nix: string } }[] };
  assert.match(body.errors[0]!.detail.nix, /fake nix-build: left a process behind/);
  assert.equal((await readFile(orphans, 'utf8')).split('\n').filter(Boolean).length, 1, 'the fake ran once');
  // The origin killed the group of the command that exited: the orphan ended, and someone must wait for it.
  await eventually(() => zombiesUnder(origin.process.pid!).length === 0, 'no zombie left in the origin’s namespace', 10_000);
});

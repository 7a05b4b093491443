// Nix stays below the origin on the CPU, builders included. On Linux with
// autogroups, CPU time is shared between sessions before niceness counts,
// and real Nix starts every builder in a session of its own (setsid): the
// builder's session must be lowered too, not only its niceness inherited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { descendants, parentTable, statFields } from '../../origin/nix/process-tree.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';
import { startOpsOrigin } from '../support/ops.ts';

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}


test(
  'a real builder runs in a session of its own at Nix’s niceness, and so does its session',
  { timeout: 120_000, skip: !existsSync('/proc/self/autogroup') && 'a kernel without autogroups' },
  async (t) => {
    const defer = deferrer(t);
    // The origin starts in this runner's session. A process that never left the
    // session it was booted in (a runner started by PID 1 without setsid) is in
    // the kernel's default autogroup, whose file reads empty: compare, do not
    // expect "nice 0".
    const ownSession = read('/proc/self/autogroup');
    const origin = await startOpsOrigin();
    defer(() => origin.cleanup());
    // The gate is not there yet: the build waits in its builder until the test opens it.
    const pull = fetch(`${origin.url}/v2/slow/manifests/latest`, { signal: AbortSignal.timeout(90_000) });
    // Settled before the origin stops, whatever the test found: the build finishes and the pull ends.
    defer(async () => {
      await writeFile(origin.gate, '');
      await pull.then((res) => res.arrayBuffer()).catch(() => undefined);
    });
    let builder: number | undefined;
    await eventually(
      () => {
        builder = descendants(origin.process.pid!, parentTable()).find((pid) => (read(`/proc/${pid}/cmdline`) ?? '').includes('slow: waiting'));
        return builder !== undefined;
      },
      'the slow package’s builder',
      60_000,
    );
    const fields = statFields(read(`/proc/${builder}/stat`) ?? '') ?? [];
    assert.equal(fields[3], String(builder), 'Nix starts the builder in a session of its own');
    assert.equal(Number(fields[16]), 10, 'the builder inherits Nix’s niceness');
    await eventually(() => /nice 10$/m.test(read(`/proc/${builder}/autogroup`) ?? ''), 'the builder’s session at niceness 10', 5_000);
    // The origin's own session is left at the priority it was given.
    assert.equal(read(`/proc/${origin.process.pid}/autogroup`), ownSession);
    assert.doesNotMatch(ownSession ?? '', /nice 10$/m);

    await writeFile(origin.gate, '');
    assert.equal((await pull).status, 200);
  },
);

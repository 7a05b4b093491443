import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LaunchError, ProcessLauncher } from '../../origin/nix/process-launcher.ts';
import { descendants, killTree, parentTable, statFields } from '../../origin/nix/process-tree.ts';
import { startWorker, workerExecArgv } from '../../origin/worker-argv.ts';
import { deferrer } from '../support/cleanup.ts';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
const options = { env, niceness: 0, maxStdoutBytes: 1024 * 1024 };

function fieldsOf(pid: number): string[] {
  return statFields(readFileSync(`/proc/${pid}/stat`, 'utf8')) ?? [];
}

function gone(pid: number): boolean {
  return !existsSync(`/proc/${pid}`) || fieldsOf(pid)[0] === 'Z';
}

test('a launched command’s stdout, stderr and exit code come back', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const launcher = new ProcessLauncher();
  defer(() => launcher.close());
  const child = launcher.launch('sh', ['-c', 'echo out; printf "é" >&2; echo rr >&2; exit 3'], options);
  let stderr = '';
  child.onStderr((text) => (stderr += text));
  assert.ok((await child.started) > 0);
  const finished = await child.finished;
  assert.deepEqual(finished, { exitCode: 3, signal: null, stdout: 'out\n', stdoutOverflow: false });
  assert.equal(stderr, 'érr\n');
  await child.exited;
});

test('a launched command runs at the niceness it was given, in a process group of its own', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const launcher = new ProcessLauncher();
  defer(() => launcher.close());
  const child = launcher.launch('sleep', ['30'], { ...options, niceness: 9 });
  const pid = await child.started;
  defer(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Ended already.
    }
  });
  const fields = fieldsOf(pid);
  // Field 19: niceness; field 5: process group.
  assert.equal(Number(fields[16]), 9);
  assert.equal(Number(fields[2]), pid);
  process.kill(-pid, 'SIGKILL');
  const finished = await child.finished;
  assert.equal(finished.exitCode, null);
  assert.equal(finished.signal, 'SIGKILL');
});

/** The niceness of the autogroup `pid`'s session belongs to ("/autogroup-N nice K"). */
function autogroupNice(pid: number): number {
  return Number(/nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'))?.[1]);
}

test(
  'a launched command’s session, and every session its children start, run at its niceness too (Linux autogroups)',
  { timeout: 30_000, skip: !existsSync('/proc/self/autogroup') && 'a kernel without autogroups' },
  async (t) => {
    const defer = deferrer(t);
    const launcher = new ProcessLauncher();
    defer(() => launcher.close());
    // As Nix does for a builder: a child that starts a session of its own.
    const child = launcher.launch('sh', ['-c', 'setsid sleep 30 & wait'], { ...options, niceness: 9 });
    const pid = await child.started;
    defer(() => killTree(pid));
    assert.equal(autogroupNice(pid), 9);
    let grandchild: number | undefined;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      grandchild = descendants(pid, parentTable()).find((p) => p !== pid && fieldsOf(p)[3] === String(p));
      if (grandchild !== undefined && autogroupNice(grandchild) === 9) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(grandchild !== undefined, 'the child’s own session was started');
    // A session of its own: the niceness it inherited alone would not hold against other sessions.
    assert.notEqual(readFileSync(`/proc/${grandchild}/autogroup`, 'utf8'), readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
    assert.equal(autogroupNice(grandchild), 9);
  },
);

test('a command at niceness 0 leaves its session’s priority alone', { timeout: 30_000, skip: !existsSync('/proc/self/autogroup') && 'a kernel without autogroups' }, async (t) => {
  const defer = deferrer(t);
  const launcher = new ProcessLauncher();
  defer(() => launcher.close());
  const child = launcher.launch('sleep', ['30'], options);
  const pid = await child.started;
  defer(() => killTree(pid));
  assert.equal(autogroupNice(pid), 0);
  assert.equal(Number(fieldsOf(pid)[16]), 0);
});

test('output past the limit is cut and reported as an overflow', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const launcher = new ProcessLauncher();
  defer(() => launcher.close());
  // (Its exit code is not checked: head may exit by itself before the overflow's kill reaches it.)
  const finished = await launcher.launch('head', ['-c', '5000', '/dev/zero'], { ...options, maxStdoutBytes: 1000 }).finished;
  assert.equal(finished.stdoutOverflow, true);
  assert.ok(finished.stdout.length <= 1000);
});

test('a command whose output overflows is killed there rather than left to run', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const launcher = new ProcessLauncher();
  defer(() => launcher.close());
  const child = launcher.launch('sh', ['-c', 'head -c 5000 /dev/zero; exec sleep 300'], { ...options, maxStdoutBytes: 1000 });
  const pid = await child.started;
  defer(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Ended, as it should be.
    }
  });
  const finished = await child.finished;
  assert.equal(finished.stdoutOverflow, true);
  assert.ok(finished.stdout.length <= 1000);
  assert.equal(finished.signal, 'SIGKILL');
  assert.ok(gone(pid), `sh (${pid}) still runs`);
});

test('closing the launcher kills what the commands still running started in sessions of their own', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const launcher = new ProcessLauncher();
  const child = launcher.launch('sh', ['-c', 'setsid sleep 300 & echo $! >&2; wait'], options);
  let stderr = '';
  child.onStderr((text) => (stderr += text));
  await child.started;
  while (!/^\d+\n/.test(stderr)) await new Promise((resolve) => setTimeout(resolve, 20));
  const detached = Number(stderr.trim());
  defer(() => {
    try {
      process.kill(detached, 'SIGKILL');
    } catch {
      // Ended, as it should be.
    }
  });
  assert.notEqual(Number(fieldsOf(detached)[2]), await child.started, 'the sleep is in a process group of its own');
  await launcher.close();
  const until = Date.now() + 5000;
  while (!gone(detached) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(gone(detached), `the detached sleep (${detached}) still runs`);
});

test('a command that is not installed is a LaunchError with ENOENT', { timeout: 30_000 }, async (t) => {
  const defer = deferrer(t);
  const launcher = new ProcessLauncher();
  defer(() => launcher.close());
  const child = launcher.launch('no-such-command-nixery-edge', [], options);
  await assert.rejects(child.started, (err: unknown) => err instanceof LaunchError && err.code === 'ENOENT');
  await assert.rejects(child.finished, LaunchError);
  await child.exited;
});

test('closing the launcher kills the commands still running and rejects their promises', { timeout: 30_000 }, async () => {
  const launcher = new ProcessLauncher();
  const child = launcher.launch('sleep', ['30'], options);
  const pid = await child.started;
  await launcher.close();
  await assert.rejects(child.finished, /closed/);
  const until = Date.now() + 5000;
  while (!gone(pid) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(gone(pid), `sleep (${pid}) still runs`);
  await assert.rejects(launcher.launch('true', [], options).started, /closed/);
});

test('workers inherit the process’s Node options, V8 ones included, unless it ran code given on the command line', () => {
  assert.equal(workerExecArgv(['--max-old-space-size=512', '--stack-size=2000', '--enable-source-maps']), undefined);
  assert.equal(workerExecArgv([]), undefined);
});

test('workers leave out the code a script was started with and are given every other Node option', () => {
  assert.deepEqual(workerExecArgv(['--input-type=module', '--eval', 'code()', '--max-old-space-size=512']), ['--max-old-space-size=512']);
  assert.deepEqual(workerExecArgv(['-e', 'code()', '--inspect=0', '-p', '1', '--input-type', 'module']), ['--inspect=0']);
  assert.deepEqual(workerExecArgv(['--eval=code()', '--print=1', '--enable-source-maps']), ['--enable-source-maps']);
});

test('a worker starts for a script run with node -e and a V8 option, which Node refuses in a worker’s options', { timeout: 30_000 }, async () => {
  const url = new URL(`data:text/javascript,${encodeURIComponent("import { parentPort } from 'node:worker_threads'; parentPort.postMessage('up');")}`);
  const worker = startWorker(url, {}, ['--input-type=module', '-e', 'code()', '--max-old-space-size=512', '--expose-gc']);
  try {
    assert.equal(await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject)), 'up');
  } finally {
    await worker.terminate();
  }
});

test('a script run under node --max-old-space-size and --stack-size starts commands through the launcher', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const dir = await mkdtemp(join(tmpdir(), 'launcher-v8-options-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const script = join(dir, 'launch.mjs');
  await writeFile(
    script,
    `import { ProcessLauncher } from ${JSON.stringify(new URL('../../origin/nix/process-launcher.ts', import.meta.url).href)};
    const launcher = new ProcessLauncher();
    launcher.warm();
    const finished = await launcher.launch('sh', ['-c', 'echo launched'], { env: { PATH: process.env.PATH }, niceness: 0, maxStdoutBytes: 1024 }).finished;
    await launcher.close();
    process.stdout.write(finished.stdout);
  `,
  );
  const { stdout } = await execa(process.execPath, ['--max-old-space-size=256', '--stack-size=900', script]);
  assert.equal(stdout, 'launched');
});

test('a script run with node -e starts commands through the launcher', { timeout: 60_000 }, async () => {
  const script = `
    import { ProcessLauncher } from ${JSON.stringify(new URL('../../origin/nix/process-launcher.ts', import.meta.url).href)};
    const launcher = new ProcessLauncher();
    const finished = await launcher.launch('sh', ['-c', 'echo launched'], { env: { PATH: process.env.PATH }, niceness: 0, maxStdoutBytes: 1024 }).finished;
    await launcher.close();
    process.stdout.write(finished.stdout);
  `;
  const { stdout } = await execa(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(stdout, 'launched');
});

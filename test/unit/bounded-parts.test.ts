// The pure parts of a bounded origin: failure memory, image limits, client
// keys, default caps, and the process-tree walk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { errors, RegistryError } from '../../shared/errors.ts';
import { clientKey } from '../../shared/client-address.ts';
import { FailureMemory, isImageFailure } from '../../origin/image/failure-memory.ts';
import { checkPackages, checkSizes, MIB } from '../../origin/image/limits.ts';
import { defaultAdmission, NixAdmission } from '../../origin/nix/admission.ts';
import { descendants, killTree, parseStatParent, terminateTree } from '../../origin/nix/process-tree.ts';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';

test('a remembered image failure is replayed with the seconds it still holds, then forgotten', async () => {
  let now = 0;
  const memory = new FailureMemory({ ttlSeconds: 30, now: () => now });
  let runs = 0;
  const broken = () => {
    runs++;
    return Promise.reject(errors.internal('nix build failed: nix-build failed with exit code 1', { nix: 'broken on purpose' }));
  };
  await assert.rejects(memory.run('k', broken), (err: unknown) => err instanceof RegistryError && err.headers['Cache-Control'] === 'public, max-age=30');
  now = 10_500;
  await assert.rejects(memory.run('k', broken), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.headers['Cache-Control'], 'public, max-age=20');
    assert.match(err.message, /nix build failed/);
    assert.deepEqual(err.detail, { nix: 'broken on purpose' });
    return true;
  });
  assert.equal(runs, 1, 'the second request ran nothing');
  now = 30_001;
  await assert.rejects(memory.run('k', broken));
  assert.equal(runs, 2);
  assert.deepEqual(memory.stats, { remembered: 2, recalled: 1 });
});

test('refusals, a draining origin and internal faults are not remembered', async () => {
  const memory = new FailureMemory({ ttlSeconds: 30 });
  for (const err of [errors.tooManyRequests('busy', 5), errors.unavailable('draining'), errors.internal('internal server error'), new Error('storage down')]) {
    let runs = 0;
    const work = () => (runs++, Promise.reject(err));
    await assert.rejects(memory.run('k', work));
    await assert.rejects(memory.run('k', work));
    assert.equal(runs, 2, `${err.message} was not remembered`);
    assert.equal(isImageFailure(err), false);
  }
  assert.equal(isImageFailure(errors.manifestUnknown('unknown package: nope', { unknown: ['nope'] })), true);
});

test('with FAILURE_TTL=0 nothing is remembered but answers still say max-age=0', async () => {
  const memory = new FailureMemory({ ttlSeconds: 0 });
  let runs = 0;
  const work = () => (runs++, Promise.reject(errors.manifestUnknown('unknown package: nope')));
  await assert.rejects(memory.run('k', work), (err: unknown) => err instanceof RegistryError && err.headers['Cache-Control'] === 'public, max-age=0');
  await assert.rejects(memory.run('k', work));
  assert.equal(runs, 2);
});

test('too many packages is NAME_INVALID naming the limit; big closures and layers are DENIED', () => {
  const limits = { maxPackages: 3, maxClosureBytes: 10 * MIB, maxLayerBytes: 4 * MIB };
  checkPackages(limits, ['a', 'b', 'c']);
  assert.throws(() => checkPackages(limits, ['a', 'b', 'c', 'd']), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, 'NAME_INVALID');
    assert.equal(err.status, 400);
    assert.deepEqual(err.detail, { limit: 'packages', max: 3, actual: 4 });
    assert.match(err.message, /MAX_IMAGE_PACKAGES/);
    return true;
  });
  const path = (name: string, mib: number) => ({ path: `/nix/store/${name}`, narSize: mib * MIB, references: [] });
  const closure = [path('a', 3), path('b', 3), path('c', 3)];
  checkSizes(limits, closure, [['/nix/store/a'], ['/nix/store/b'], ['/nix/store/c']]);
  assert.throws(() => checkSizes(limits, closure, [['/nix/store/a', '/nix/store/b'], ['/nix/store/c']]), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, 'DENIED');
    assert.equal(err.status, 403);
    assert.deepEqual(err.detail, { limit: 'layerBytes', max: 4 * MIB, actual: 6 * MIB });
    return true;
  });
  assert.throws(
    () => checkSizes(limits, [...closure, path('d', 2)], []),
    (err: unknown) => err instanceof RegistryError && (err.detail as { limit: string }).limit === 'closureBytes' && /MAX_CLOSURE_MIB/.test(err.message),
  );
});

test('client keys: IPv4 as is, IPv6 by its /64, anything else null', () => {
  assert.equal(clientKey('203.0.113.7'), '203.0.113.7');
  assert.equal(clientKey('::ffff:203.0.113.7'), '203.0.113.7');
  assert.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:DB8:1:2::99'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  for (const bad of ['', 'evil', '999.1.1.1', '1:2:3', '1::2::3', 'a'.repeat(100), null, undefined]) assert.equal(clientKey(bad), null, String(bad));
});

test('default caps follow cores and memory, at least one of each', () => {
  const GIB = 1024 ** 3;
  assert.deepEqual(defaultAdmission(2, 23.5 * GIB), { maxEvaluations: 2, maxBuilds: 2, queueLength: 16 });
  assert.deepEqual(defaultAdmission(32, 16 * GIB), { maxEvaluations: 5, maxBuilds: 4, queueLength: 40 });
  assert.deepEqual(defaultAdmission(4, 1 * GIB), { maxEvaluations: 1, maxBuilds: 1, queueLength: 16 });
});

test('admission refuses with 429 TOOMANYREQUESTS and Retry-After; a step without a queue of its own runs at once', async () => {
  const admission = new NixAdmission({ maxEvaluations: 1, maxBuilds: 1, queueLength: 0, queueWaitSeconds: 5, clientShare: null });
  let release!: () => void;
  const held = admission.run('evaluation', 'a', () => new Promise<void>((resolve) => (release = resolve)));
  await assert.rejects(admission.run('evaluation', 'b', async () => 1), (err: unknown) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.status, 429);
    assert.equal(err.code, 'TOOMANYREQUESTS');
    assert.match(err.headers['Retry-After']!, /^\d+$/);
    return true;
  });
  // Builds have their own slots; a step that has no queue runs at once.
  assert.equal(await admission.run('build', 'b', async () => 'built'), 'built');
  assert.equal(await admission.run('hash query', 'b', async () => 'read'), 'read');
  release();
  await held;
});

test('/proc stat lines are read from the last parenthesis; descendants follow parent links', () => {
  assert.equal(parseStatParent('123 (a (weird) name) S 45 123 123 0 -1'), 45);
  assert.equal(parseStatParent('garbage'), null);
  const parents = new Map([[2, 1], [3, 2], [4, 3], [5, 1], [6, 4]]);
  assert.deepEqual(descendants(2, parents).sort(), [2, 3, 4, 6]);
});

test('killTree ends a child and a grandchild that left for a session of its own', { timeout: 20_000 }, async (t) => {
  const defer = deferrer(t);
  const child = spawn('sh', ['-c', "trap '' TERM; setsid sleep 300 & echo $!; wait"], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  defer(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Gone.
    }
  });
  const grandchild = await new Promise<number>((resolve) => child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  defer(() => {
    try {
      process.kill(grandchild, 'SIGKILL');
    } catch {
      // Gone.
    }
  });
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.ok(alive(grandchild));
  killTree(child.pid!);
  await eventually(() => !alive(grandchild) && child.exitCode === null && child.signalCode === 'SIGKILL', 'the child and its grandchild to be gone', 5_000);
});

test('terminateTree asks first (SIGTERM, so Nix can clean up), then kills what was left detached once the root exited', { timeout: 20_000 }, async (t) => {
  const defer = deferrer(t);
  const dir = await mkdtemp(join(tmpdir(), 'terminate-tree-'));
  defer(() => rm(dir, { recursive: true, force: true }));
  const cleaned = join(dir, 'cleaned');
  // Like Nix: on SIGTERM it cleans up and exits; unlike Nix's builders, its grandchild escaped to a session of its own.
  const child = spawn('sh', ['-c', `trap 'echo yes > ${cleaned}; exit 0' TERM; setsid sleep 300 & echo $!; while :; do sleep 0.1; done`], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  const grandchild = await new Promise<number>((resolve) => child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
  defer(() => {
    for (const pid of [grandchild, -child.pid!]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const started = performance.now();
  terminateTree(child.pid!, 10_000, exited);
  await exited;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await eventually(() => !alive(grandchild), 'the detached grandchild to be killed', 5_000);
  assert.ok(performance.now() - started < 9_000, 'killed when the root exited, not at the end of the grace');
  assert.equal((await readFile(cleaned, 'utf8')).trim(), 'yes');
});

// The pieces of the origin's Nix garbage collection that need no Nix: the
// lock between collections and evaluations/roots, the free-space plan, the
// parse of nix-store's summary, the root sets on a real filesystem, and the
// collector's scheduling, driven with a stand-in for `nix-store --gc` (named
// as such: the real command runs in test/integration/nix-gc*.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { GcLock } from '../../origin/nix/gc-lock.ts';
import { GcRoots } from '../../origin/nix/gc-roots.ts';
import { freeSpacePlan, NixGarbageCollector, type NixGcConfig } from '../../origin/nix/garbage-collector.ts';
import { parseGcSummary, type GcSummary } from '../../origin/nix/nix.ts';
import { readConfig, ConfigError } from '../../origin/config.ts';
import { deferrer } from '../support/cleanup.ts';

const MIB = 1024 * 1024;
const log = pino({ level: 'silent' });
const tick = () => new Promise((resolve) => setImmediate(resolve));

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

test('a collection waits for evaluations and roots under way, and evaluations that arrive meanwhile wait for the collection', async () => {
  const lock = new GcLock();
  const order: string[] = [];
  const evaluation = gate();
  const first = lock.makingRoots(async () => {
    order.push('evaluation 1 starts');
    await evaluation.promise;
    order.push('evaluation 1 ends');
  });
  await tick();
  const collection = gate();
  const gc = lock.collection(async () => {
    order.push('collection starts');
    await collection.promise;
    order.push('collection ends');
  });
  await tick();
  const second = lock.makingRoots(async () => void order.push('evaluation 2'));
  await tick();
  assert.deepEqual(order, ['evaluation 1 starts'], 'the collection waits; the later evaluation waits behind it');
  evaluation.open();
  await tick();
  await tick();
  assert.deepEqual(order, ['evaluation 1 starts', 'evaluation 1 ends', 'collection starts']);
  assert.equal(lock.busy, true);
  collection.open();
  await Promise.all([first, gc, second]);
  assert.deepEqual(order, ['evaluation 1 starts', 'evaluation 1 ends', 'collection starts', 'collection ends', 'evaluation 2']);
  assert.equal(lock.busy, false);
});

test('evaluations run side by side, and a failing one releases the lock', async () => {
  const lock = new GcLock();
  let running = 0;
  let peak = 0;
  const work = async () => {
    running++;
    peak = Math.max(peak, running);
    await tick();
    running--;
  };
  await Promise.all([lock.makingRoots(work), lock.makingRoots(work), lock.makingRoots(work)]);
  assert.equal(peak, 3);
  await assert.rejects(lock.makingRoots(async () => Promise.reject(new Error('nix failed'))), /nix failed/);
  assert.equal(await lock.collection(async () => 'ran'), 'ran');
});

test('a free-space collection frees up to the target, and none is planned above the threshold or when off', () => {
  const config = { minFreeBytes: 8192 * MIB, maxFreeBytes: 16384 * MIB };
  assert.equal(freeSpacePlan(9000 * MIB, config), null);
  assert.equal(freeSpacePlan(8192 * MIB, config), null);
  assert.equal(freeSpacePlan(1000 * MIB, config), 15384 * MIB);
  assert.equal(freeSpacePlan(0, { minFreeBytes: 0, maxFreeBytes: 0 }), null);
});

test("nix-store's summary is read in bytes; output without one is null", () => {
  assert.deepEqual(parseGcSummary('32 store paths deleted, 54.48 MiB freed\n'), { paths: 32, bytesFreed: Math.round(54.48 * MIB) });
  assert.deepEqual(parseGcSummary('1 store path deleted, 0.00 MiB freed'), { paths: 1, bytesFreed: 0 });
  assert.deepEqual(parseGcSummary('0 store paths deleted, 0.00 MiB freed'), { paths: 0, bytesFreed: 0 });
  assert.equal(parseGcSummary('finding garbage collector roots...'), null);
});

test('root sets are symlinks to their paths under this process\'s directory, report missing paths, and are removed on release; stale directories of dead origins are removed at start-up', async (t) => {
  const defer = deferrer(t);
  const base = await mkdtemp(join(tmpdir(), 'gc-roots-'));
  defer(() => rm(base, { recursive: true, force: true }));
  // A directory of an origin that no longer runs (pid 1 never has this start time), and something else that is kept.
  await mkdir(join(base, '1-1'));
  await mkdir(join(base, 'operator-notes'));
  const { roots, staleRemoved } = await GcRoots.open(join(base, 'roots'), new GcLock());
  assert.equal(staleRemoved, 0);
  const again = await GcRoots.open(base, new GcLock());
  assert.equal(again.staleRemoved, 1);
  assert.deepEqual((await readdir(base)).sort(), [again.roots.dir.split('/').at(-1)!, 'operator-notes', 'roots'].sort());

  const store = join(base, 'store');
  await mkdir(store);
  await writeFile(join(store, 'aaaa-hello.drv'), 'Derive(...)');
  const set = roots.hold();
  assert.equal(roots.held, 1);
  const missing = await set.protect([join(store, 'aaaa-hello.drv'), join(store, 'bbbb-hello'), join(store, 'aaaa-hello.drv')]);
  assert.deepEqual(missing, [join(store, 'bbbb-hello')]);
  assert.deepEqual((await readdir(set.dir)).sort(), ['aaaa-hello.drv', 'bbbb-hello']);
  await set.release();
  await set.release();
  assert.equal(roots.held, 0);
  assert.deepEqual(await readdir(roots.dir), []);
  await roots.close();
  assert.deepEqual(await readdir(join(base, 'roots')), []);
});

function gcConfig(overrides: Partial<NixGcConfig> = {}): NixGcConfig {
  return { minFreeBytes: 0, maxFreeBytes: 0, intervalSeconds: 0, checkSeconds: 30, storeDir: tmpdir(), rootsDir: '/unused', ...overrides };
}

test('collections never run two at once: a request during one joins it', async () => {
  const calls: (number | null)[] = [];
  const slow = gate();
  const collector = new NixGarbageCollector({
    config: gcConfig(),
    lock: new GcLock(),
    nix: { timeoutSeconds: 1 },
    log,
    // Stands in for nix-store --gc.
    collect: async (maxFreed): Promise<GcSummary> => {
      calls.push(maxFreed);
      await slow.promise;
      return { paths: 3, bytesFreed: 5 * MIB };
    },
  });
  const runs: string[] = [];
  collector.onRun((run) => runs.push(`${run.trigger} ${run.outcome} ${run.paths}`));
  const a = collector.collect('schedule', null);
  const b = collector.collect('free-space', 100);
  slow.open();
  assert.equal(await a, await b);
  assert.deepEqual(calls, [null]);
  assert.deepEqual(runs, ['schedule done 3']);
  await collector.collect('free-space', 100);
  assert.deepEqual(calls, [null, 100], 'the next request runs a new collection');
});

test('a full collection asked for during a bounded one runs after it rather than joining it', async () => {
  const calls: (number | null)[] = [];
  let running = 0;
  let peak = 0;
  const slow = gate();
  const collector = new NixGarbageCollector({
    config: gcConfig(),
    lock: new GcLock(),
    nix: { timeoutSeconds: 1 },
    log,
    // Stands in for nix-store --gc.
    collect: async (maxFreed): Promise<GcSummary> => {
      calls.push(maxFreed);
      peak = Math.max(peak, ++running);
      await slow.promise;
      running--;
      return { paths: 1, bytesFreed: MIB };
    },
  });
  const runs: string[] = [];
  collector.onRun((run) => runs.push(run.trigger));
  const bounded = collector.collect('free-space', 100);
  const scheduled = collector.collect('schedule', null);
  const again = collector.collect('schedule', null);
  await tick();
  assert.deepEqual(calls, [100], 'the full collection waits for the bounded one');
  slow.open();
  assert.equal((await bounded).trigger, 'free-space');
  assert.equal((await scheduled).trigger, 'schedule');
  assert.equal(await scheduled, await again, 'full collections asked for meanwhile share one run');
  assert.deepEqual(calls, [100, null]);
  assert.deepEqual(runs, ['free-space', 'schedule']);
  assert.equal(peak, 1, 'never two at once');
});

test('a check collects only under the threshold, asks Nix to free up to the target, and after a collection that freed nothing skips the next checks', async () => {
  const calls: (number | null)[] = [];
  const collector = new NixGarbageCollector({
    // Any machine has less than a petabyte free: every check is under the threshold.
    config: gcConfig({ minFreeBytes: 2 ** 50, maxFreeBytes: 2 ** 51 }),
    lock: new GcLock(),
    nix: { timeoutSeconds: 1 },
    log,
    collect: async (maxFreed) => (calls.push(maxFreed), { paths: 0, bytesFreed: 0 }),
  });
  const first = await collector.check();
  assert.equal(first?.trigger, 'free-space');
  assert.equal(first?.bytesFreed, 0);
  assert.ok(calls[0]! > 2 ** 50 && calls[0]! <= 2 ** 51, `max-freed ${calls[0]}`);
  for (let i = 0; i < 10; i++) assert.equal(await collector.check(), null, `check ${i} is skipped`);
  assert.equal(calls.length, 1);
  assert.ok(await collector.check(), 'then checks collect again');

  const off = new NixGarbageCollector({ config: gcConfig({ minFreeBytes: 1 }), lock: new GcLock(), nix: { timeoutSeconds: 1 }, log, collect: async () => assert.fail('no collection above the threshold') });
  assert.equal(await off.check(), null);
});

test('a collection that freed some space but left it under the threshold skips the next checks; one that got back above does not', async () => {
  const MIN = 1000 * MIB;
  // Scripted free space (a stand-in for statfs) and a stand-in for nix-store --gc that frees what it is told.
  let free = 100 * MIB;
  let frees = 0;
  let calls = 0;
  const collector = new NixGarbageCollector({
    config: gcConfig({ minFreeBytes: MIN, maxFreeBytes: 2 * MIN }),
    lock: new GcLock(),
    nix: { timeoutSeconds: 1 },
    log,
    freeBytes: async () => free,
    collect: async () => {
      calls++;
      free += frees;
      return { paths: 1, bytesFreed: frees };
    },
  });
  frees = 10 * MIB;
  assert.equal((await collector.check())?.bytesFreed, 10 * MIB);
  for (let i = 0; i < 10; i++) assert.equal(await collector.check(), null, `check ${i} is skipped: free space is still under the threshold`);
  assert.equal(calls, 1);
  frees = 2 * MIN;
  assert.ok(await collector.check(), 'then checks collect again');
  assert.ok(free >= MIN);
  // Something else fills the volume again: the next check collects at once.
  free = 100 * MIB;
  assert.ok(await collector.check(), 'no backoff after a collection that got back above the threshold');
  assert.equal(calls, 3);
});

test('a failed collection is reported as failed and the next one runs', async () => {
  let attempt = 0;
  const collector = new NixGarbageCollector({
    config: gcConfig(),
    lock: new GcLock(),
    nix: { timeoutSeconds: 1 },
    log,
    collect: async () => {
      if (attempt++ === 0) throw new Error('nix-store timed out after 1 s');
      return { paths: 1, bytesFreed: MIB };
    },
  });
  assert.equal((await collector.collect('schedule', null)).outcome, 'failed');
  assert.equal((await collector.collect('schedule', null)).outcome, 'done');
});

test('the schedule runs collections one after another, and stop ends it', async () => {
  let runs = 0;
  const collector = new NixGarbageCollector({
    config: gcConfig({ intervalSeconds: 0.01 }),
    lock: new GcLock(),
    nix: { timeoutSeconds: 1 },
    log,
    collect: async () => (runs++, { paths: 0, bytesFreed: 0 }),
  });
  collector.start();
  const deadline = Date.now() + 5000;
  while (runs < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  collector.stop();
  assert.ok(runs >= 3, `${runs} scheduled runs`);
  const stoppedAt = runs;
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(runs <= stoppedAt + 1, 'no collection starts after stop (one may have been under way)');
});

test('the configuration puts roots inside Nix\'s gcroots directory and refuses them elsewhere, and reads the thresholds in MiB', () => {
  const base = { NIXERY_PKGS_PATH: tmpdir() };
  const config = readConfig(base).nixGc;
  assert.equal(config.rootsDir, '/nix/var/nix/gcroots/nixery-edge');
  assert.equal(config.minFreeBytes, 8192 * MIB);
  assert.equal(config.maxFreeBytes, 16384 * MIB);
  assert.equal(config.intervalSeconds, 86_400);
  assert.equal(readConfig({ ...base, NIX_STATE_DIR: '/state' }).nixGc.rootsDir, '/state/gcroots/nixery-edge');
  assert.equal(readConfig({ ...base, NIX_GC_ROOTS_DIR: '/nix/var/nix/gcroots/per-user/nixery/roots' }).nixGc.rootsDir, '/nix/var/nix/gcroots/per-user/nixery/roots');
  assert.throws(() => readConfig({ ...base, NIX_GC_ROOTS_DIR: '/var/lib/roots' }), (err: unknown) => err instanceof ConfigError && err.variable === 'NIX_GC_ROOTS_DIR');
  assert.throws(() => readConfig({ ...base, NIX_GC_ROOTS_DIR: '/nix/var/nix/gcroots' }), ConfigError);
  assert.throws(() => readConfig({ ...base, NIX_GC_MIN_FREE_MIB: '100', NIX_GC_MAX_FREE_MIB: '50' }), /NIX_GC_MAX_FREE_MIB/);
  assert.equal(readConfig({ ...base, NIX_GC_MIN_FREE_MIB: '20000' }).nixGc.maxFreeBytes, 20000 * MIB, 'the target follows a threshold set above it');
});

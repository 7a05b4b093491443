// The admission queue for Nix work: caps, queue length, longest wait, and
// per-client shares, with a hand-driven clock and timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueRefusal, WorkQueue, type WorkQueueOptions } from '../../origin/nix/work-queue.ts';

/** Timers that fire only when the test says so. */
function manualTimers() {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let next = 1;
  return {
    options: {
      now: () => now,
      setTimer: (fn: () => void, ms: number) => {
        const id = next++;
        timers.set(id, { at: now + ms, fn });
        return id;
      },
      clearTimer: (id: unknown) => void timers.delete(id as number),
    } satisfies Partial<WorkQueueOptions>,
    advance(ms: number) {
      now += ms;
      for (const [id, timer] of [...timers]) {
        if (timer.at <= now) {
          timers.delete(id);
          timer.fn();
        }
      }
    },
  };
}

/** Work that ends when the test calls its `finish`. */
function gated() {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return { work: () => done.then(() => 'done'), finish };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

test('runs at most `concurrency` at once and admits waiters in order as slots free', async () => {
  const clock = manualTimers();
  const queue = new WorkQueue({ name: 'evaluation', concurrency: 2, maxQueue: 10, maxWaitMs: 60_000, clientShare: 10, ...clock.options });
  const jobs = Array.from({ length: 5 }, () => gated());
  const started: number[] = [];
  const results = jobs.map((job, i) => queue.run(`c${i}`, () => (started.push(i), job.work())));
  await flush();
  assert.deepEqual(started, [0, 1]);
  assert.equal(queue.running, 2);
  assert.equal(queue.waiting, 3);
  jobs[1]!.finish();
  await flush();
  assert.deepEqual(started, [0, 1, 2]);
  for (const job of jobs) job.finish();
  assert.deepEqual(await Promise.all(results), ['done', 'done', 'done', 'done', 'done']);
  assert.equal(queue.running, 0);
  assert.equal(queue.waiting, 0);
});

test('a full queue refuses at once with a Retry-After of at least 1 s', async () => {
  const clock = manualTimers();
  const queue = new WorkQueue({ name: 'build', concurrency: 1, maxQueue: 2, maxWaitMs: 30_000, clientShare: 2, ...clock.options });
  const job = gated();
  const running = queue.run('a', job.work);
  const waiting = [queue.run('b', job.work), queue.run('c', job.work)];
  await assert.rejects(queue.run('d', job.work), (err: unknown) => {
    assert.ok(err instanceof QueueRefusal);
    assert.equal(err.reason, 'queue-full');
    assert.equal(err.queue, 'build');
    assert.ok(err.retryAfterSeconds >= 1 && err.retryAfterSeconds <= 30);
    assert.match(err.message, /1 Nix builds running and 2 waiting/);
    return true;
  });
  assert.equal(queue.refused['queue-full'], 1);
  job.finish();
  await Promise.all([running, ...waiting]);
});

test('one client cannot hold more than its share of the waiting places; others still get in', async () => {
  const clock = manualTimers();
  // Share by default: max(1, floor(8 / 4)) = 2.
  const queue = new WorkQueue({ name: 'evaluation', concurrency: 1, maxQueue: 8, maxWaitMs: 30_000, ...clock.options });
  assert.equal(queue.clientShare, 2);
  const job = gated();
  const admitted = [queue.run('greedy', job.work), queue.run('greedy', job.work), queue.run('greedy', job.work)];
  await assert.rejects(queue.run('greedy', job.work), (err: unknown) => err instanceof QueueRefusal && err.reason === 'client-share');
  admitted.push(queue.run('polite', job.work));
  assert.equal(queue.waiting, 3);
  job.finish();
  await Promise.all(admitted);
  // Once its entries ran, the client has its share again.
  const again = gated();
  const more = [queue.run('greedy', again.work), queue.run('greedy', again.work), queue.run('greedy', again.work)];
  again.finish();
  await Promise.all(more);
});

test('a waiter past the longest wait is refused and leaves its place', async () => {
  const clock = manualTimers();
  const admits: number[] = [];
  const queue = new WorkQueue({ name: 'evaluation', concurrency: 1, maxQueue: 4, maxWaitMs: 5_000, clientShare: 4, onAdmit: (s) => admits.push(s), ...clock.options });
  const job = gated();
  const first = queue.run('a', job.work);
  const late = queue.run('b', job.work);
  clock.advance(2_000);
  const second = queue.run('c', job.work);
  clock.advance(3_000);
  await assert.rejects(late, (err: unknown) => err instanceof QueueRefusal && err.reason === 'wait-timeout' && /waited 5 s/.test(err.message));
  assert.equal(queue.waiting, 1);
  clock.advance(1_000);
  job.finish();
  await Promise.all([first, second]);
  // The first ran at once; the second waited 4 s of hand-driven time.
  assert.deepEqual(admits, [0, 4]);
});

test('a queue of length 0 refuses whatever cannot run now', async () => {
  const queue = new WorkQueue({ name: 'build', concurrency: 1, maxQueue: 0, maxWaitMs: 1_000 });
  const job = gated();
  const running = queue.run('a', job.work);
  await assert.rejects(queue.run('b', job.work), (err: unknown) => err instanceof QueueRefusal && err.reason === 'queue-full');
  job.finish();
  await running;
});

test('a failing job frees its slot; an aborted waiter leaves the queue', async () => {
  const clock = manualTimers();
  const queue = new WorkQueue({ name: 'build', concurrency: 1, maxQueue: 4, maxWaitMs: 60_000, clientShare: 4, ...clock.options });
  const job = gated();
  const failing = queue.run('a', () => job.work().then(() => Promise.reject(new Error('nix failed'))));
  const controller = new AbortController();
  const aborted = queue.run('b', job.work, controller.signal);
  const next = queue.run('c', async () => 'ran');
  controller.abort(new Error('shutting down'));
  await assert.rejects(aborted, /shutting down/);
  assert.equal(queue.waiting, 1);
  job.finish();
  await assert.rejects(failing, /nix failed/);
  assert.equal(await next, 'ran');
  assert.equal(queue.running, 0);
});

test('Retry-After grows with the queue ahead and the time entries take, up to the longest wait', async () => {
  let now = 0;
  const queue = new WorkQueue({ name: 'evaluation', concurrency: 1, maxQueue: 10, maxWaitMs: 20_000, clientShare: 10, now: () => now });
  await queue.run('a', async () => {
    now += 4_000;
  });
  assert.equal(queue.retryAfterSeconds(), 4);
  const job = gated();
  const held = [queue.run('a', job.work), queue.run('b', job.work), queue.run('c', job.work)];
  // Two waiting ahead, one at a time, 4 s each: 12 s.
  assert.equal(queue.retryAfterSeconds(), 12);
  job.finish();
  await Promise.all(held);
});

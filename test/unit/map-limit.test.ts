import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapLimit } from '../../origin/image/map-limit.ts';

test('work runs at most `limit` at a time, largest first, with results in the items’ order', async () => {
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  const results = await mapLimit(
    [1, 5, 3, 9, 2],
    2,
    async (item) => {
      started.push(item);
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      return item * 10;
    },
    (item) => item,
  );
  assert.deepEqual(results, [10, 50, 30, 90, 20]);
  assert.equal(peak, 2);
  assert.deepEqual(started.slice(0, 2), [9, 5]);
});

test('a failure rejects the whole map', async () => {
  await assert.rejects(mapLimit([1, 2, 3], 2, async (n) => (n === 2 ? Promise.reject(new Error('two')) : n)), /two/);
  assert.deepEqual(await mapLimit([], 3, async () => 1), []);
});

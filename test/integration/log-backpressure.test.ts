// A reader of the origin's stdout that falls behind (a stalled log shipper)
// must not stop the origin: Node writes to a pipe synchronously, and once the
// pipe's 64 KiB were full every request waited for the reader. Lines now wait
// in memory (log.ts) and all arrive once the reader reads again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startOrigin } from '../support/origin.ts';
import { deferrer } from '../support/cleanup.ts';
import { eventually } from '../support/eventually.ts';

const REQUESTS = 800;

test('the origin answers while nothing reads its log, and every line arrives once something does', { timeout: 60_000 }, async (t) => {
  const defer = deferrer(t);
  const origin = await startOrigin();
  defer(() => origin.stop());
  const logged = () => origin.logs.filter((l) => l.msg === 'request' && l.path === '/v2/').length;

  // Nothing reads the pipe now: it fills after a few hundred request lines.
  origin.process.stdout!.pause();
  for (let i = 0; i < REQUESTS; i++) {
    const res = await fetch(`${origin.url}/v2/`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  }
  // Well past a pipe's 64 KiB of lines, all answered; the lines wait.
  assert.ok(logged() < REQUESTS);

  origin.process.stdout!.resume();
  await eventually(() => logged() === REQUESTS, `${REQUESTS} request lines`, 20_000);
  const metrics = await (await fetch(`${origin.url}/metrics`)).text();
  assert.match(metrics, /^nixery_origin_log_lines_dropped_total 0$/m);
});

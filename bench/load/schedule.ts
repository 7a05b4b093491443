// Sending on schedule, for the benchmarks' cached clients (bench:load's and
// bench:burst's): request k is due at start + k / rate, goes out then
// whether or not earlier answers came, and is timed from when it was due, so
// a server that stalls is charged for every request that should have gone
// out meanwhile, not for one.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Outcome } from './http.ts';

/**
 * Sends `request()` at `rate` a second while `more(k)` says request k is
 * wanted, and resolves with every outcome once all have come, each timed
 * from when it was due (`late`: how late its client sent it, already within
 * that time).
 */
export async function onSchedule(rate: number, more: (k: number) => boolean, request: () => Promise<Outcome>): Promise<Outcome[]> {
  const interval = 1000 / rate;
  const start = performance.now();
  const pending: Promise<Outcome>[] = [];
  for (let k = 0; more(k); k++) {
    const due = start + k * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const late = Math.max(0, performance.now() - due);
    pending.push(request().then((o) => ({ status: o.status, ms: performance.now() - due, late })));
  }
  return Promise.all(pending);
}

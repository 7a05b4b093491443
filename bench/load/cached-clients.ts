// The cached clients of bench:load, in a worker thread of their own: one per
// target (through the edge the strangers use, through an edge of its own,
// straight from the origin by digest), all at once. Their thread does nothing else, so their timings are
// the servers' and the network's, not the delays of the bench's main thread
// (which runs Miniflare's side of the edge and parses every line the origin
// logs).
//
// Each client sends at a fixed rate (LOAD_CACHED_RATE per second, 200 by
// default), on schedule whether or not its previous answer came, and a
// request's time runs from when it was due: a server that stalls is charged
// for every request that should have gone out meanwhile, not for one (a
// client that waits for each answer before the next stops asking during a
// stall, and its p99 hides it). A rate of 0 sends back to back instead, each
// request after the previous answer: then the clients themselves keep the
// machine busy, idle or not, and measure throughput under contention as
// much as latency.
//
// Phases are asked for one at a time, each returning every client's outcomes:
// a fixed number of requests each, or at least that many and on until told
// to stop.
import { parentPort, workerData } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import { get, type Outcome } from './http.ts';
import { onSchedule } from './schedule.ts';

export interface CachedTarget {
  url: string;
  headers?: Record<string, string>;
}

export interface CachedClientsInput {
  targets: CachedTarget[];
  client: string;
  /** Requests per second per client; 0 for back to back. */
  rate: number;
}

export type CachedClientsRequest = { type: 'run'; requests: number; untilStopped: boolean } | { type: 'stop' };

/** Each target's outcomes, in the order of `targets`. */
export type CachedClientsOutput = Outcome[][];

const input = workerData as CachedClientsInput;
const port = parentPort!;
try {
  // Named, so bench:load's CPU table tells this thread from the others.
  writeFileSync('/proc/thread-self/comm', 'cached-clients');
} catch {
  // No /proc: the CPU table counts it with the other threads.
}

let stopped = false;

async function backToBack(request: () => Promise<Outcome>, requests: number, untilStopped: boolean): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  while (outcomes.length < requests || (untilStopped && !stopped)) outcomes.push(await request());
  return outcomes;
}

function scheduled(request: () => Promise<Outcome>, requests: number, untilStopped: boolean): Promise<Outcome[]> {
  return onSchedule(input.rate, (k) => k < requests || (untilStopped && !stopped), request);
}

port.on('message', (message: CachedClientsRequest) => {
  if (message.type === 'stop') {
    stopped = true;
    return;
  }
  stopped = false;
  const run = input.rate > 0 ? scheduled : backToBack;
  void Promise.all(input.targets.map((target) => run(() => get(target.url, input.client, target.headers), message.requests, message.untilStopped))).then((outcomes) =>
    port.postMessage(outcomes satisfies CachedClientsOutput),
  );
});

// bench:burst's cached client, in a thread of its own so that the
// bursts sent from the main thread never delay its timings: each run sends
// `count` requests on schedule (bench/load/schedule.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { get, type Outcome } from '../load/http.ts';
import { onSchedule } from '../load/schedule.ts';

export interface HitsInput {
  url: string;
  /** Requests per second. */
  rate: number;
  /** CF-Connecting-IP, as bench:load's cached client sends it. */
  client: string;
  headers: Record<string, string>;
}

export interface HitsOutput {
  hits: Outcome[];
}

const input = workerData as HitsInput;

parentPort!.on('message', async (count: number) => {
  const hits = await onSchedule(input.rate, (k) => k < count, () => get(input.url, input.client, input.headers));
  parentPort!.postMessage({ hits } satisfies HitsOutput);
});

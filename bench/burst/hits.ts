// bench:burst's cached client, in a thread of its own so that the
// bursts sent from the main thread never delay its timings: each run sends
// `count` requests on schedule (bench/load/schedule.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { onSchedule } from '../load/schedule.ts';

export interface HitsInput {
  url: string;
  /** Requests per second. */
  rate: number;
  headers: Record<string, string>;
}

export interface Hit {
  status: number | 'error';
  /** From when the request was due to the end of its answer. */
  ms: number;
}

export interface HitsOutput {
  hits: Hit[];
}

const input = workerData as HitsInput;

async function one(due: number): Promise<Hit> {
  try {
    const res = await fetch(input.url, { headers: input.headers, signal: AbortSignal.timeout(60_000) });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - due };
  } catch {
    return { status: 'error', ms: performance.now() - due };
  }
}

parentPort!.on('message', async (count: number) => {
  const hits = await onSchedule(input.rate, (k) => k < count, one);
  parentPort!.postMessage({ hits } satisfies HitsOutput);
});

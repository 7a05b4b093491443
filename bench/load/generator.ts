// The load of bench:load, generated in a worker thread of its own at a
// lower priority (LOAD_NICENESS, default 10: Nix's): clients elsewhere do
// not share the origin's cores, so here the generator takes only what the
// server under test leaves, and its event loop never delays the cached
// client's timings on the main thread. The same requests are sent with the
// same concurrency whatever its priority: distinct images at once, each
// unknown-name client's names one after another, the flood 10 at a time.
import { writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { get, type Outcome } from './http.ts';

export interface GeneratorInput {
  edgeUrl: string;
  images: string[];
  clients: number;
  namesPerClient: number;
  flood: number;
  niceness: number;
}

export interface GeneratorOutput {
  imageOutcomes: Outcome[];
  unknownOutcomes: Outcome[];
  floodOutcomes: Outcome[];
}

const input = workerData as GeneratorInput;
try {
  // Named, so bench:load's CPU table tells this thread from the others.
  writeFileSync('/proc/thread-self/comm', 'load-generator');
} catch {
  // No /proc: the CPU table counts it with the other threads.
}
if (input.niceness > 0) setPriority(0, input.niceness);

const images = Promise.all(input.images.map((image, i) => get(`${input.edgeUrl}/v2/${image}/manifests/latest`, `198.51.100.${i + 1}`)));
const unknown = Promise.all(
  Array.from({ length: input.clients }, async (_, i) => {
    const outcomes: Outcome[] = [];
    for (let k = 0; k < input.namesPerClient; k++) outcomes.push(await get(`${input.edgeUrl}/v2/nosuch${i}x${k}/manifests/latest`, `203.0.113.${i + 1}`));
    return outcomes;
  }),
).then((lists) => lists.flat());
const flood = (async () => {
  const outcomes: Outcome[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (next < input.flood) {
        const k = next++;
        outcomes.push(await get(`${input.edgeUrl}/v2/flood${k}/manifests/latest`, '192.0.2.66'));
      }
    }),
  );
  return outcomes;
})();
const [imageOutcomes, unknownOutcomes, floodOutcomes] = await Promise.all([images, unknown, flood]);
parentPort!.postMessage({ imageOutcomes, unknownOutcomes, floodOutcomes } satisfies GeneratorOutput);
// Alive until terminated: a thread that ended by itself would be gone from /proc, and its CPU from the bench's table.
setInterval(() => undefined, 1 << 30);

// What reading a blob miss at the pace of the slower side costs
// (edge/paced-tee.ts), against the streams standard's tee(): a 256 MiB
// stream of 64 KiB chunks (what a fetch body hands over) split in two, both
// sides read as fast as they go, as the client and the Cache API do on a
// fast link. Node's Web Streams stand in for workerd's: the same standard,
// another engine, so the ratio is the figure, not the MB/s. Rounds
// alternate, each prints a row, and the medians end the table.
//
// Run: node bench/edge/tee.ts   (TEE_ROUNDS=N, default 5)
import { pacedTee } from '../../edge/paced-tee.ts';
import { median } from '../stats.ts';

const ROUNDS = Number(process.env.TEE_ROUNDS ?? 5);
const CHUNK = 64 * 1024;
const TOTAL = 256 * 1024 * 1024;

function source(): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(CHUNK).fill(7);
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= TOTAL) {
        controller.close();
        return;
      }
      sent += CHUNK;
      // A new view each time, as a fetch body's chunks are distinct objects.
      controller.enqueue(chunk.subarray(0));
    },
  });
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.byteLength;
  return bytes;
}

async function time(split: (s: ReadableStream<Uint8Array>) => [ReadableStream<Uint8Array>, ReadableStream<Uint8Array>]): Promise<number> {
  const started = performance.now();
  const [a, b] = split(source());
  const [x, y] = await Promise.all([drain(a), drain(b)]);
  if (x !== TOTAL || y !== TOTAL) throw new Error(`read ${x} and ${y} of ${TOTAL} bytes`);
  return (TOTAL / 2 ** 20) / ((performance.now() - started) / 1000);
}

const standard: number[] = [];
const paced: number[] = [];
console.log(`| round | standard tee(), MiB/s | pacedTee, MiB/s | paced / standard |`);
console.log('| --- | --- | --- | --- |');
for (let round = 1; round <= ROUNDS; round++) {
  // Turns with the round, so that neither always goes first.
  const order = round % 2 === 0 ? (['paced', 'standard'] as const) : (['standard', 'paced'] as const);
  const speeds: Record<string, number> = {};
  for (const which of order) speeds[which] = await time(which === 'paced' ? (s) => pacedTee(s).sides : (s) => s.tee());
  standard.push(speeds.standard!);
  paced.push(speeds.paced!);
  console.log(`| ${round} | ${speeds.standard!.toFixed(0)} | ${speeds.paced!.toFixed(0)} | ${(speeds.paced! / speeds.standard!).toFixed(2)} |`);
}
console.log(`| median | ${median(standard).toFixed(0)} | ${median(paced).toFixed(0)} | ${median(paced.map((p, i) => p / standard[i]!)).toFixed(2)} |`);

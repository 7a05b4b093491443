// edge/paced-tee.ts: two readers of one stream at the pace of the slower
// (the standard tee() reads at the faster's pace and queues the rest for
// the slower), with Node's Web Streams, which the Worker's code is written
// against as workerd runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pacedTee } from '../../edge/paced-tee.ts';

const CHUNKS = 100;

/** A source of CHUNKS chunks of 1 KiB that counts how many were taken from it. */
function counted(): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (pulled === CHUNKS) {
          controller.close();
          return;
        }
        pulled++;
        controller.enqueue(new Uint8Array(1024).fill(pulled % 256));
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulled };
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.byteLength;
  return bytes;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

test('with one side read fast and the other not at all, only a few chunks are taken from the source', { timeout: 10_000 }, async () => {
  const source = counted();
  const [fast, slow] = pacedTee(source.stream).sides;
  const fastRead = readAll(fast);
  await settle();
  assert.ok(source.pulled() <= 3, `${source.pulled()} chunks taken while the slow side read none`);
  // The standard tee, for contrast: the fast side takes all of it, and the slow side's queue holds it.
  const standard = counted();
  const [fast2] = standard.stream.tee();
  await readAll(fast2);
  assert.equal(standard.pulled(), CHUNKS);

  // Once the slow side reads, both get every byte.
  assert.equal(await readAll(slow), CHUNKS * 1024);
  assert.equal(await fastRead, CHUNKS * 1024);
});

test('a side whose reader goes away is dropped, and the other reads to the end', { timeout: 10_000 }, async () => {
  const source = counted();
  const [client, cache] = pacedTee(source.stream).sides;
  const reader = client.getReader();
  await reader.read();
  await reader.cancel('the client hung up');
  assert.equal(await readAll(cache), CHUNKS * 1024);
});

test('an error of the source fails both sides', { timeout: 10_000 }, async () => {
  let sent = 0;
  const failing = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ === 3) controller.error(new Error('digest mismatch'));
      else controller.enqueue(new Uint8Array(16));
    },
  });
  const [a, b] = pacedTee(failing).sides;
  // Read together, as the client and the cache do: each side waits for the other.
  await Promise.all([assert.rejects(readAll(a), /digest mismatch/), assert.rejects(readAll(b), /digest mismatch/)]);
});

test('a side its owner drops (a cache write that failed without reading on) no longer holds the other back', { timeout: 10_000 }, async () => {
  const source = counted();
  const tee = pacedTee(source.stream);
  const [client, cache] = tee.sides;
  const clientRead = readAll(client);
  await settle();
  assert.ok(source.pulled() <= 3, 'held back by the side nobody reads');
  tee.drop(1, new Error('the cache refused the entry'));
  assert.equal(await clientRead, CHUNKS * 1024);
  await assert.rejects(readAll(cache), /the cache refused the entry/);
});

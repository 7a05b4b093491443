// A worker thread of the deflate pool (deflate-pool.ts): compresses the
// pieces of one job in order, each with the 32 KiB before it as dictionary.
import { writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { compressPiece, WINDOW } from './deflate-chunk.ts';
import type { DeflateJob, DeflateResult, DeflateWorkerData } from './deflate-pool.ts';

if (!parentPort) throw new Error('deflate-worker.ts runs as a worker thread');
const port = parentPort;

try {
  // Named, so `top -H` and /proc tell these threads from V8's and libuv's (Linux; elsewhere they stay unnamed).
  writeFileSync('/proc/thread-self/comm', 'deflate');
} catch {
  // No /proc: only the name is lost.
}

const { niceness } = workerData as DeflateWorkerData;
if (niceness > 0) {
  try {
    // pid 0 is the calling thread on Linux (setpriority on its TID): this worker only, never the origin's event loop.
    setPriority(0, niceness);
  } catch {
    // Not allowed: the worker compresses at the origin's priority.
  }
}

/** A piece's output in one buffer of its own: a pooled small Buffer must never be transferred (it would detach its neighbours). */
function ownBuffer(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

port.on('message', (job: DeflateJob) => {
  try {
    const parts: Uint8Array[] = [];
    let storedPieces = 0;
    let pieces = 0;
    const { data, pieceSize } = job;
    // Only the stream's last piece may be short (or empty): it is what remains of the last job after its full pieces.
    for (let offset = 0; ; offset += pieceSize) {
      const remaining = data.length - offset;
      const final = job.last && remaining < pieceSize;
      if (!job.last && remaining === 0) break;
      if (!final && remaining < pieceSize) throw new Error(`a job that is not the last must hold whole pieces: ${data.length} bytes`);
      const piece = data.subarray(offset, final ? data.length : offset + pieceSize);
      const dictionary = offset === 0 ? job.dictionary : data.subarray(Math.max(0, offset - WINDOW), offset);
      const out = compressPiece(piece, { level: job.level, dictionary, last: final });
      parts.push(out.bytes);
      pieces++;
      if (out.stored) storedPieces++;
      if (final) break;
    }
    const bytes = ownBuffer(parts);
    const result: DeflateResult = { id: job.id, bytes, pieces, storedPieces };
    // A fresh Uint8Array owns a plain ArrayBuffer.
    port.postMessage(result, [bytes.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ id: job.id, error: (err as Error).message } satisfies DeflateResult);
  }
});

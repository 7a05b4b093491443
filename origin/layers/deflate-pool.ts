// Worker threads that deflate jobs (runs of pieces, deflate-chunk.ts) for
// every gzip stream of the process: one pool, shared, so concurrent layers
// never run more compressions at once than there are cores.
//
// Workers may run below the origin's priority (`niceness`): a layer's
// compression is background work next to answering cached pulls, and on
// Linux os.setPriority(0, n) inside a thread changes that thread only.
//
// Idle workers are unref'd: a pool nobody closes never keeps a process (a
// test, a script) alive. A worker is ref'd while it holds a job, so awaiting
// a job keeps the process running as it should. `close()` ends the workers
// (origin shutdown, tests' after hooks).
import type { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { startWorker } from '../worker-argv.ts';

export interface DeflateJob {
  id: number;
  /** Whole pieces, except in the stream's last job, whose final piece is what remains (possibly nothing). */
  data: Uint8Array;
  /** Up to 32 KiB of input just before `data`; empty at the stream's start. */
  dictionary: Uint8Array;
  pieceSize: number;
  /** The job that ends the deflate stream. */
  last: boolean;
  level: number;
}

export interface DeflateWorkerData {
  niceness: number;
}

export type DeflateResult = { id: number; bytes: Uint8Array; pieces: number; storedPieces: number } | { id: number; error: string };

export interface DeflateOutput {
  bytes: Uint8Array;
  pieces: number;
  storedPieces: number;
}

interface Pending {
  job: DeflateJob;
  resolve: (output: DeflateOutput) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  current: Pending | null;
}

const WORKER = new URL('./deflate-worker.ts', import.meta.url);

/** Transferable only if the view owns its whole buffer; otherwise a copy that does. */
function owned(view: Uint8Array): Uint8Array {
  return view.byteOffset === 0 && view.byteLength === view.buffer.byteLength && view.buffer instanceof ArrayBuffer ? view : view.slice();
}

export interface DeflatePoolOptions {
  /** Niceness of the worker threads, 0 (the process's own) to 19 (lowest); 0 unless told. */
  niceness?: number;
}

export class DeflatePool {
  readonly size: number;
  readonly niceness: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(size: number, options: DeflatePoolOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`a deflate pool needs at least one worker, not ${size}`);
    const niceness = options.niceness ?? 0;
    if (!Number.isInteger(niceness) || niceness < 0 || niceness > 19) throw new Error(`a deflate pool's niceness must be 0-19, not ${niceness}`);
    this.size = size;
    this.niceness = niceness;
  }

  /** Compresses a job on the next free worker; jobs start in the order they were submitted. Takes ownership of `data` and `dictionary`: a view of a whole buffer moves to the worker (detached here) rather than being copied. */
  run(job: Omit<DeflateJob, 'id'>): Promise<DeflateOutput> {
    if (this.closed) return Promise.reject(new Error('the deflate pool is closed'));
    return new Promise<DeflateOutput>((resolve, reject) => {
      this.queue.push({ job: { ...job, id: this.nextId++, data: owned(job.data), dictionary: owned(job.dictionary) }, resolve, reject });
      this.dispatch();
    });
  }

  /** Starts every worker now (a worker takes a tenth of a second to start): the first layer then finds them ready. */
  warm(): void {
    while (!this.closed && this.slots.length < this.size) this.spawn().worker.unref();
  }

  /** Ends every worker; jobs not yet finished are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    for (const pending of this.queue.splice(0)) pending.reject(new Error('the deflate pool is closed'));
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      slot.current?.reject(new Error('the deflate pool is closed'));
      slot.current = null;
    }
    // Ref'd so the loop waits for the exit that terminate() resolves on: an idle worker is unref'd.
    await Promise.all(
      slots.map((slot) => {
        slot.worker.ref();
        return slot.worker.terminate();
      }),
    );
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.current === null);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const pending = this.queue.shift()!;
      slot.current = pending;
      slot.worker.ref();
      slot.worker.postMessage(pending.job, [pending.job.data.buffer as ArrayBuffer, pending.job.dictionary.buffer as ArrayBuffer]);
    }
  }

  private spawn(): Slot {
    const slot: Slot = { worker: startWorker(WORKER, { workerData: { niceness: this.niceness } satisfies DeflateWorkerData }), current: null };
    const fail = (err: Error) => {
      const index = this.slots.indexOf(slot);
      if (index >= 0) this.slots.splice(index, 1);
      slot.current?.reject(err);
      slot.current = null;
      // Later jobs get a fresh worker.
      if (!this.closed) this.dispatch();
    };
    slot.worker.on('message', (result: DeflateResult) => {
      // A result that arrives while the pool closes: its job was rejected, and an unref here would let the process exit before terminate() settles.
      if (this.closed) return;
      const pending = slot.current;
      slot.current = null;
      if (pending && pending.job.id === result.id) {
        if ('error' in result) pending.reject(new Error(`deflate worker: ${result.error}`));
        else pending.resolve({ bytes: result.bytes, pieces: result.pieces, storedPieces: result.storedPieces });
      }
      if (this.queue.length === 0) slot.worker.unref();
      this.dispatch();
    });
    slot.worker.on('error', fail);
    slot.worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`deflate worker exited with code ${code}`));
    });
    this.slots.push(slot);
    return slot;
  }
}

let shared: DeflatePool | null = null;
let sharedOptions: DeflatePoolOptions = {};

/** How the shared pool's workers run (the origin's LAYER_NICENESS); for workers started after the call. */
export function configureSharedDeflatePool(options: DeflatePoolOptions): void {
  sharedOptions = options;
}

/**
 * Workers at most. availableParallelism() counts the node's cores, not a
 * pod's CPU share, and each worker holds about 23 MB; past 8 cores a layer
 * is rarely large enough to keep them all busy.
 */
const MAX_WORKERS = 8;

/** The process's pool: one worker per core, up to MAX_WORKERS. */
export function sharedDeflatePool(): DeflatePool {
  shared ??= new DeflatePool(Math.min(MAX_WORKERS, availableParallelism()), sharedOptions);
  return shared;
}

/** Ends the shared pool's workers (it is created afresh if used again). */
export async function closeSharedDeflatePool(): Promise<void> {
  const pool = shared;
  shared = null;
  await pool?.close();
}

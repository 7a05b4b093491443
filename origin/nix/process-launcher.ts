// Starts Nix commands from a worker thread (launcher-worker.ts) rather than
// the origin's event loop. Node's spawn is synchronous: it returns once the
// child has exec'd, and on a loaded machine a new child first waits for a
// core. Measured under bench:load (2 cores, busy): 116 spawns took 2.2 s of
// the event loop, 20 ms each and up to 44 ms, back to back when a queue
// admitted several at once, so a cached manifest waited hundreds of ms
// behind them. From the worker, only the worker waits.
//
// The worker also reads the children's pipes, sets their niceness and kills
// a command whose output overflows its limit; the caller keeps the rest
// (timeouts, cancels, killing the tree: they work on pids, from any thread). Idle, the worker is unref'd: a launcher nobody
// closes never keeps a process alive; it is ref'd while a command runs.
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../worker-argv.ts';
import { killTree } from './process-tree.ts';

export interface LaunchRequest {
  id: number;
  command: string;
  args: string[];
  /** The whole environment of the command. */
  env: Record<string, string>;
  niceness: number;
  /** Output past this is dropped and reported as an overflow, and the command's process group is killed. */
  maxStdoutBytes: number;
}

export type LaunchEvent =
  | { type: 'spawned'; id: number; pid: number }
  | { type: 'stderr'; id: number; text: string }
  | { type: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { type: 'done'; id: number; code: number | null; signal: NodeJS.Signals | null; stdout: string; overflow: boolean }
  | { type: 'error'; id: number; code: string | null; message: string };

/** The command could not be started (ENOENT: not installed or not on PATH). */
export class LaunchError extends Error {
  readonly code: string | null;
  constructor(message: string, code: string | null) {
    super(message);
    this.name = 'LaunchError';
    this.code = code;
  }
}

export interface Finished {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout was longer than maxStdoutBytes, and the command was killed there; `stdout` holds its start. */
  stdoutOverflow: boolean;
}

export interface LaunchedProcess {
  /** The pid once the command runs; rejects with a LaunchError if it could not start. */
  readonly started: Promise<number>;
  /** The process exited (its pipes may still be open: a grandchild can hold them). Also resolves when it never started. */
  readonly exited: Promise<void>;
  /** The process exited and its output ended; rejects with a LaunchError if it never started. */
  readonly finished: Promise<Finished>;
  /** Called with stderr as it arrives (UTF-8, never a split character). */
  onStderr(listener: (text: string) => void): void;
}

export interface LaunchOptions {
  env: Record<string, string>;
  niceness: number;
  maxStdoutBytes: number;
}

interface Running {
  pid: number | null;
  stderrListeners: ((text: string) => void)[];
  started: Deferred<number>;
  exited: Deferred<void>;
  finished: Deferred<Finished>;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers may await only some of them: an unawaited rejection must not crash the process.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

const WORKER = new URL('./launcher-worker.ts', import.meta.url);

export class ProcessLauncher {
  private worker: Worker | null = null;
  private readonly running = new Map<number, Running>();
  private nextId = 1;
  private closed = false;

  launch(command: string, args: readonly string[], options: LaunchOptions): LaunchedProcess {
    const id = this.nextId++;
    const entry: Running = { pid: null, stderrListeners: [], started: deferred(), exited: deferred(), finished: deferred() };
    if (this.closed) {
      const err = new LaunchError('the process launcher is closed', null);
      entry.started.reject(err);
      entry.finished.reject(err);
      entry.exited.resolve();
    } else {
      // Before the entry is kept: a worker that cannot start leaves nothing behind.
      const worker = this.ensureWorker();
      this.running.set(id, entry);
      worker.ref();
      worker.postMessage({ id, command, args: [...args], env: options.env, niceness: options.niceness, maxStdoutBytes: options.maxStdoutBytes } satisfies LaunchRequest);
    }
    return {
      started: entry.started.promise,
      exited: entry.exited.promise,
      finished: entry.finished.promise,
      onStderr: (listener) => entry.stderrListeners.push(listener),
    };
  }

  /** Starts the worker now (it takes a tenth of a second): the first command then finds it ready. */
  warm(): void {
    if (!this.closed) this.ensureWorker();
  }

  /** Ends the worker. Commands still running are killed (with everything they started) and their promises rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    this.failAll(new LaunchError('the process launcher is closed', null));
    if (worker) {
      // Ref'd so the loop waits for the exit that terminate() resolves on: an idle worker is unref'd.
      worker.ref();
      await worker.terminate();
    }
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = startWorker(WORKER);
    worker.unref();
    worker.on('message', (event: LaunchEvent) => this.onEvent(event));
    const fail = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = null;
      // A fresh worker for later commands; these lost their output with this one.
      this.failAll(new LaunchError(`the process launcher's worker failed: ${err.message}`, null));
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private onEvent(event: LaunchEvent): void {
    const entry = this.running.get(event.id);
    if (!entry) return;
    switch (event.type) {
      case 'spawned':
        entry.pid = event.pid;
        entry.started.resolve(event.pid);
        break;
      case 'stderr':
        for (const listener of entry.stderrListeners) listener(event.text);
        break;
      case 'exit':
        entry.exited.resolve();
        break;
      case 'done':
        entry.exited.resolve();
        entry.finished.resolve({ exitCode: event.code, signal: event.signal, stdout: event.stdout, stdoutOverflow: event.overflow });
        this.forget(event.id);
        break;
      case 'error': {
        const err = new LaunchError(event.message, event.code);
        entry.started.reject(err);
        entry.finished.reject(err);
        entry.exited.resolve();
        this.forget(event.id);
        break;
      }
    }
  }

  private forget(id: number): void {
    this.running.delete(id);
    if (this.running.size === 0) this.worker?.unref();
  }

  private failAll(err: LaunchError): void {
    for (const [id, entry] of this.running) {
      // The tree, not only the group: Nix's builders run in sessions of their own (process-tree.ts).
      if (entry.pid !== null) killTree(entry.pid);
      entry.started.reject(err);
      entry.finished.reject(err);
      entry.exited.resolve();
      this.running.delete(id);
    }
  }
}

let shared: ProcessLauncher | null = null;

/** The process's launcher. */
export function sharedLauncher(): ProcessLauncher {
  shared ??= new ProcessLauncher();
  return shared;
}

/** Ends the shared launcher's worker (it is created afresh if used again). */
export async function closeSharedLauncher(): Promise<void> {
  const launcher = shared;
  shared = null;
  await launcher?.close();
}

// Admission for expensive work (Nix evaluations, Nix builds): at most
// `concurrency` run at once; the rest wait in a bounded queue, each for a
// bounded time, and no client may hold more than its share of the waiting
// places. Whatever cannot be admitted is refused at once with a hint of
// when to retry, so a crowd of strangers costs queue places, not memory.
//
// Pure except for timers: the clock and the timers can be passed in.

export type RefusalReason = 'queue-full' | 'client-share' | 'wait-timeout';

/** Work refused by the queue; the caller answers 429 with `retryAfterSeconds`. */
export class QueueRefusal extends Error {
  readonly reason: RefusalReason;
  readonly retryAfterSeconds: number;
  readonly queue: string;
  constructor(queue: string, reason: RefusalReason, retryAfterSeconds: number, message: string) {
    super(message);
    this.name = 'QueueRefusal';
    this.queue = queue;
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface WorkQueueOptions {
  /** What is queued, for messages and metrics ("evaluation", "build"). */
  name: string;
  /** Runs at once. */
  concurrency: number;
  /** Waiting places; 0: refuse whatever cannot run now; Infinity: never refuse. */
  maxQueue: number;
  /** Longest wait for a slot (ms); Infinity: as long as it takes. */
  maxWaitMs: number;
  /** Waiting places one client may hold; max(1, floor(maxQueue / 4)) by default. */
  clientShare?: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (timer: unknown) => void;
  /** Told how long each admitted entry waited (seconds), for metrics. */
  onAdmit?: (waitSeconds: number) => void;
  onRefuse?: (reason: RefusalReason) => void;
}

interface Waiter {
  client: string;
  enqueuedAt: number;
  timer: unknown;
  admit: () => void;
}

export interface WorkQueueStats {
  running: number;
  waiting: number;
  refused: Record<RefusalReason, number>;
}

export class WorkQueue {
  readonly name: string;
  readonly concurrency: number;
  readonly maxQueue: number;
  readonly maxWaitMs: number;
  readonly clientShare: number;
  private readonly options: WorkQueueOptions;
  private readonly now: () => number;
  private readonly waiters: Waiter[] = [];
  private readonly waitingByClient = new Map<string, number>();
  private active = 0;
  /** Smoothed seconds one entry runs: the base of Retry-After. */
  private meanRunSeconds = 0;
  readonly refused: Record<RefusalReason, number> = { 'queue-full': 0, 'client-share': 0, 'wait-timeout': 0 };

  constructor(options: WorkQueueOptions) {
    if (options.concurrency < 1) throw new Error(`${options.name}: concurrency must be at least 1`);
    this.options = options;
    this.name = options.name;
    this.concurrency = options.concurrency;
    this.maxQueue = Math.max(0, options.maxQueue);
    this.maxWaitMs = Math.max(0, options.maxWaitMs);
    this.clientShare = options.clientShare ?? Math.max(1, Math.floor(this.maxQueue / 4));
    this.now = options.now ?? (() => performance.now());
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  stats(): WorkQueueStats {
    return { running: this.active, waiting: this.waiters.length, refused: { ...this.refused } };
  }

  /**
   * A guess of when a place frees up: the waiting entries ahead, run
   * `concurrency` at a time, at the mean run time so far; at least 1 s, at
   * most the longest wait.
   */
  retryAfterSeconds(): number {
    const rounds = (this.waiters.length + 1) / this.concurrency;
    const guess = Math.ceil(rounds * this.meanRunSeconds);
    return Math.max(1, Math.min(Math.max(1, Math.ceil(this.maxWaitMs / 1000)), guess));
  }

  /** Runs `work` when a slot is free, or refuses with QueueRefusal; `signal` takes a waiting entry out. */
  async run<T>(client: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(client, signal);
    const started = this.now();
    try {
      return await work();
    } finally {
      const seconds = (this.now() - started) / 1000;
      this.meanRunSeconds = this.meanRunSeconds === 0 ? seconds : 0.8 * this.meanRunSeconds + 0.2 * seconds;
      this.release();
    }
  }

  private refuse(reason: RefusalReason, message: string): QueueRefusal {
    this.refused[reason]++;
    this.options.onRefuse?.(reason);
    return new QueueRefusal(this.name, reason, this.retryAfterSeconds(), message);
  }

  private acquire(client: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
    if (this.active < this.concurrency && this.waiters.length === 0) {
      this.active++;
      this.options.onAdmit?.(0);
      return Promise.resolve();
    }
    if (this.waiters.length >= this.maxQueue) {
      return Promise.reject(this.refuse('queue-full', `this origin is busy: ${this.active} Nix ${this.name}s running and ${this.waiters.length} waiting, the most it queues; retry later`));
    }
    const mine = this.waitingByClient.get(client) ?? 0;
    if (mine >= this.clientShare) {
      return Promise.reject(this.refuse('client-share', `too many of your requests wait for a Nix ${this.name} (${mine}, the most one client may queue); retry later`));
    }
    return new Promise<void>((resolve, reject) => {
      const setTimer = this.options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
      const clearTimer = this.options.clearTimer ?? ((timer) => clearTimeout(timer as NodeJS.Timeout));
      const onAbort = () => {
        if (this.remove(waiter)) {
          clearTimer(waiter.timer);
          reject(signal?.reason ?? new Error('aborted'));
        }
      };
      const waiter: Waiter = {
        client,
        enqueuedAt: this.now(),
        timer: undefined,
        admit: () => {
          clearTimer(waiter.timer);
          signal?.removeEventListener('abort', onAbort);
          this.active++;
          this.options.onAdmit?.((this.now() - waiter.enqueuedAt) / 1000);
          resolve();
        },
      };
      // An infinite wait has no timer (setTimeout would take Infinity for 1 ms).
      if (Number.isFinite(this.maxWaitMs)) {
        waiter.timer = setTimer(() => {
          if (!this.remove(waiter)) return;
          signal?.removeEventListener('abort', onAbort);
          reject(this.refuse('wait-timeout', `this origin is busy: waited ${Math.round(this.maxWaitMs / 1000)} s for a Nix ${this.name} slot; retry later`));
        }, this.maxWaitMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.waitingByClient.set(client, mine + 1);
    });
  }

  /** Takes a waiter out of the queue; false when it was admitted or removed already. */
  private remove(waiter: Waiter): boolean {
    const index = this.waiters.indexOf(waiter);
    if (index < 0) return false;
    this.waiters.splice(index, 1);
    this.forget(waiter.client);
    return true;
  }

  private forget(client: string): void {
    const left = (this.waitingByClient.get(client) ?? 1) - 1;
    if (left <= 0) this.waitingByClient.delete(client);
    else this.waitingByClient.set(client, left);
  }

  private release(): void {
    this.active--;
    const next = this.waiters.shift();
    if (next === undefined) return;
    this.forget(next.client);
    next.admit();
  }
}

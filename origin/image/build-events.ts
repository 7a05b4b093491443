// What a build is doing, as it does it, for whoever watches (the page's
// server-sent events): one channel per image and tag, with a bounded backlog
// so someone arriving late sees how far it got, and a bounded ring of the
// latest failures.
//
// The builder reaches the channel of the build it runs through
// `currentBuildChannel()` (an AsyncLocalStorage set by `trackBuild`), so
// hooking a build takes one line per event and no parameter threading.
//
// In memory, per origin replica, on purpose: progress is only interesting
// while the replica building it runs, and failures are a diagnostic of what
// this replica saw. Sharing them would mean a storage write per Nix line or
// per failure (GCS has no append, and ordering across replicas needs more
// than object names), for data that is stale within minutes.
import { AsyncLocalStorage } from 'node:async_hooks';
import { errorBody, toRegistryError } from '../../shared/errors.ts';

export type BuildEvent =
  /** A step began: evaluation, build, closure query, layers. */
  | { type: 'step'; step: string }
  /** One of Nix's own progress lines ("building '…drv'", "copying …"). */
  | { type: 'nix'; line: string }
  /** The image's layers are known: how many will be written or found. */
  | { type: 'layers'; total: number }
  /** A layer is in storage: `written` by this build (else another build had written it). */
  | { type: 'layer'; bytes: number; written: boolean; done: number; total: number; bytesWritten: number }
  | { type: 'done'; result: unknown }
  | { type: 'failed'; error: { code: string; message: string; detail: unknown } };

export interface Failure {
  image: string;
  at: string;
  error: { code: string; message: string; detail: unknown };
}

export type Listener = (event: BuildEvent, seq: number) => void;

export class BuildChannel {
  readonly key: string;
  private readonly backlogSize: number;
  private readonly backlog: { event: BuildEvent; seq: number }[] = [];
  private readonly listeners = new Set<Listener>();
  private seq = 0;
  private layersTotal = 0;
  private layersDone = 0;
  private bytesWritten = 0;
  finished = false;
  /** Events dropped from the backlog (the oldest Nix lines of a long build). */
  dropped = 0;

  constructor(key: string, backlogSize: number) {
    this.key = key;
    this.backlogSize = backlogSize;
  }

  publish(event: BuildEvent): void {
    if (this.finished) return;
    const seq = ++this.seq;
    this.backlog.push({ event, seq });
    if (this.backlog.length > this.backlogSize) {
      // Nix lines go first: the steps, layers and the outcome are what a late watcher needs.
      const index = this.backlog.findIndex((e) => e.event.type === 'nix');
      this.backlog.splice(index === -1 ? 0 : index, 1);
      this.dropped++;
    }
    if (event.type === 'done' || event.type === 'failed') this.finished = true;
    for (const listener of this.listeners) listener(event, seq);
    if (this.finished) this.listeners.clear();
  }

  step(step: string): void {
    this.publish({ type: 'step', step });
  }

  nix(line: string): void {
    this.publish({ type: 'nix', line: line.slice(0, 1000) });
  }

  layersPlanned(total: number): void {
    this.layersTotal = total;
    this.publish({ type: 'layers', total });
  }

  layerDone(bytes: number, written: boolean): void {
    this.layersDone++;
    if (written) this.bytesWritten += bytes;
    this.publish({ type: 'layer', bytes, written, done: this.layersDone, total: this.layersTotal, bytesWritten: this.bytesWritten });
  }

  /** Replays the backlog to `listener`, then tells it every new event until the build ends; returns how to stop listening. */
  subscribe(listener: Listener): () => void {
    for (const { event, seq } of this.backlog) listener(event, seq);
    if (this.finished) return () => {};
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface BuildChannelsOptions {
  /** Events kept per build for late watchers. */
  backlog?: number;
  /** Channels remembered (finished ones are forgotten first). */
  channels?: number;
  /** Failures remembered. */
  failures?: number;
}

export class BuildChannels {
  private readonly backlog: number;
  private readonly maxChannels: number;
  private readonly maxFailures: number;
  private readonly channels = new Map<string, BuildChannel>();
  private readonly failureRing: Failure[] = [];
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(options: BuildChannelsOptions = {}) {
    this.backlog = options.backlog ?? 500;
    this.maxChannels = options.channels ?? 256;
    this.maxFailures = options.failures ?? 20;
  }

  get(key: string): BuildChannel | undefined {
    return this.channels.get(key);
  }

  /** A new channel for a build of `key`, replacing a finished one. */
  open(key: string): BuildChannel {
    const channel = new BuildChannel(key, this.backlog);
    this.channels.delete(key);
    this.channels.set(key, channel);
    while (this.channels.size > this.maxChannels) {
      const victim = [...this.channels.values()].find((c) => c.finished) ?? this.channels.values().next().value!;
      this.channels.delete(victim.key);
    }
    for (const wake of this.waiting.get(key) ?? []) wake();
    this.waiting.delete(key);
    return channel;
  }

  /** Resolves once a channel for `key` opens after now, or when `until` settles, whichever is first. */
  opened(key: string, until: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.waiting.get(key) ?? new Set<() => void>();
      const wake = () => {
        waiters.delete(wake);
        if (waiters.size === 0 && this.waiting.get(key) === waiters) this.waiting.delete(key);
        resolve();
      };
      waiters.add(wake);
      this.waiting.set(key, waiters);
      void until.then(wake, wake);
    });
  }

  /** The latest failures, newest first. */
  failures(): Failure[] {
    return [...this.failureRing].reverse();
  }

  /** Runs a build of `key` with its own channel, which ends with the build's outcome. */
  async track<T>(key: string, work: () => Promise<T>): Promise<T> {
    const channel = this.open(key);
    let result: T;
    try {
      result = await storage.run(channel, work);
    } catch (err) {
      const registryError = toRegistryError(err);
      const error = errorBody(registryError).errors[0]!;
      channel.publish({ type: 'failed', error });
      // Server-side failures (Nix failed, timed out) are news; unknown names and shutdown are not.
      if (registryError.status >= 500 && registryError.code !== 'UNAVAILABLE') {
        this.failureRing.push({ image: key, at: new Date().toISOString(), error });
        if (this.failureRing.length > this.maxFailures) this.failureRing.shift();
      }
      throw err;
    }
    channel.publish({ type: 'done', result });
    return result;
  }
}

const storage = new AsyncLocalStorage<BuildChannel>();

/** The channel of the build this code runs for, if someone tracks it. */
export function currentBuildChannel(): BuildChannel | undefined {
  return storage.getStore();
}

/** `work` tracked on `channels` when there are any, else just run. */
export function trackBuild<T>(channels: BuildChannels | undefined, key: string, work: () => Promise<T>): Promise<T> {
  return channels === undefined ? work() : channels.track(key, work);
}

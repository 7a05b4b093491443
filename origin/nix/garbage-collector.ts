// The origin collects its own Nix garbage: a store that only grows fills its
// volume, and then every new image fails. A collection runs
// - when free space on the store's file system falls under a threshold
//   (checked every few seconds and after each build): it frees up to a target
//   (`nix-store --gc --max-freed`), as Nix's own min-free and max-free do;
// - on a schedule: a full collection, which bounds a long-lived store to
//   roughly what one interval's builds fetched.
// Never two at once; each is one Nix command (nix.ts: niced, its own process
// group, NIX_TIMEOUT), run under the GC lock so that no build makes roots
// while it runs (gc-lock.ts, gc-roots.ts). What a build in flight uses is
// rooted, so a collection never takes it.
import { statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import { collectGarbage, type GcSummary, type NixOptions } from './nix.ts';
import type { GcLock } from './gc-lock.ts';

export interface NixGcConfig {
  /** Collect when the store's file system has less free than this; 0: never for free space. */
  minFreeBytes: number;
  /** A free-space collection frees until this much is free (Nix's max-freed is the difference). */
  maxFreeBytes: number;
  /** Seconds between full collections; 0: none. */
  intervalSeconds: number;
  /** Seconds between free-space checks. */
  checkSeconds: number;
  /** The store directory, whose file system is watched. */
  storeDir: string;
  /** Where the roots of builds in flight are (gc-roots.ts). */
  rootsDir: string;
}

export type GcTrigger = 'free-space' | 'schedule';

/** One collection, as reported once it ended. */
export interface GcRun {
  trigger: GcTrigger;
  outcome: 'done' | 'failed';
  seconds: number;
  paths: number;
  bytesFreed: number;
}

/** How much a free-space collection should free, or null when none is needed. Pure. */
export function freeSpacePlan(freeBytes: number, config: Pick<NixGcConfig, 'minFreeBytes' | 'maxFreeBytes'>): number | null {
  if (config.minFreeBytes <= 0 || freeBytes >= config.minFreeBytes) return null;
  return Math.max(config.maxFreeBytes, config.minFreeBytes) - freeBytes;
}

/**
 * Free-space checks skipped after a free-space collection that left free
 * space under the threshold (everything else live, or a run cut short): a
 * store that cannot get back above it would otherwise be scanned in full,
 * under the exclusive lock, at every check and after every build.
 */
const BACKOFF_CHECKS = 10;

/** Free bytes for an unprivileged user on the file system holding `path`. */
async function freeBytesAt(path: string): Promise<number> {
  const stats = await statfs(path);
  return stats.bavail * stats.bsize;
}

export interface GcOptions {
  config: NixGcConfig;
  lock: GcLock;
  /** Timeout, cancellation and environment of the collection's Nix command. */
  nix: NixOptions;
  log: Logger;
  /** Runs one collection; nix.ts's by default (a test may count or slow it). */
  collect?: (maxFreedBytes: number | null, options: NixOptions) => Promise<GcSummary>;
  /** Reads the free bytes of the store's file system; statfs by default (a test may script it). */
  freeBytes?: (storeDir: string) => Promise<number>;
}

export class NixGarbageCollector {
  private readonly opts: GcOptions;
  private running: { run: Promise<GcRun>; maxFreedBytes: number | null } | null = null;
  private readonly listeners = new Set<(run: GcRun) => void>();
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private skipChecks = 0;

  constructor(opts: GcOptions) {
    this.opts = opts;
  }

  /** Told about every collection once it ended; returns the unsubscribe. */
  onRun(listener: (run: GcRun) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Free bytes on the store's file system now. */
  freeBytes(): Promise<number> {
    return (this.opts.freeBytes ?? freeBytesAt)(this.opts.config.storeDir);
  }

  /** Starts the checks and the schedule; timers never keep the process alive. */
  start(): void {
    const { checkSeconds, intervalSeconds, minFreeBytes } = this.opts.config;
    if (minFreeBytes > 0) this.every(checkSeconds, () => this.check());
    if (intervalSeconds > 0) this.every(intervalSeconds, () => this.collect('schedule', null));
  }

  /** No more collections start (shutdown); one running ends with its command. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
  }

  /** Collects if free space is under the threshold; null when nothing ran. */
  async check(): Promise<GcRun | null> {
    if (this.stopped) return null;
    if (this.skipChecks > 0) {
      this.skipChecks--;
      return null;
    }
    let free: number;
    try {
      free = await this.freeBytes();
    } catch (err) {
      this.opts.log.warn({ err, storeDir: this.opts.config.storeDir }, 'cannot read free space of the Nix store');
      return null;
    }
    const toFree = freeSpacePlan(free, this.opts.config);
    if (toFree === null) return null;
    const run = await this.collect('free-space', toFree, free);
    if (await this.stillUnder()) this.skipChecks = BACKOFF_CHECKS;
    return run;
  }

  /** Whether free space is under the threshold after a collection (unreadable counts as under: no rescan every check). */
  private async stillUnder(): Promise<boolean> {
    try {
      return freeSpacePlan(await this.freeBytes(), this.opts.config) !== null;
    } catch {
      return true;
    }
  }

  /**
   * One collection; joins the one running, if any (never two at once). A full
   * collection asked for during a bounded one runs after it: joining would
   * leave the store uncollected for a whole interval.
   */
  collect(trigger: GcTrigger, maxFreedBytes: number | null, freeBefore?: number): Promise<GcRun> {
    if (this.running) {
      if (maxFreedBytes === null && this.running.maxFreedBytes !== null) {
        // Runs once `running` is cleared; several such requests start one full run and join it.
        return this.running.run.then((bounded) => (this.stopped ? bounded : this.collect(trigger, null)));
      }
      return this.running.run;
    }
    const run = this.run(trigger, maxFreedBytes, freeBefore).finally(() => {
      this.running = null;
    });
    this.running = { run, maxFreedBytes };
    return run;
  }

  private async run(trigger: GcTrigger, maxFreedBytes: number | null, freeBefore?: number): Promise<GcRun> {
    const { lock, log, nix } = this.opts;
    const collect = this.opts.collect ?? collectGarbage;
    return lock.collection(async () => {
      const started = performance.now();
      let run: GcRun;
      try {
        const summary = await collect(maxFreedBytes, nix);
        run = { trigger, outcome: 'done', seconds: (performance.now() - started) / 1000, ...summary };
        log.info({ ...run, maxFreedBytes, freeBefore }, 'nix store garbage collected');
      } catch (err) {
        run = { trigger, outcome: 'failed', seconds: (performance.now() - started) / 1000, paths: 0, bytesFreed: 0 };
        log.warn({ err, trigger }, 'nix store garbage collection failed');
      }
      for (const listener of this.listeners) listener(run);
      return run;
    });
  }

  /** Runs `work` every `seconds`, counted from the end of the previous run. */
  private every(seconds: number, work: () => Promise<unknown>): void {
    const slot = this.timers.length;
    const schedule = () => {
      if (this.stopped) return;
      const timer = setTimeout(() => void work().catch(() => undefined).finally(schedule), seconds * 1000);
      timer.unref();
      this.timers[slot] = timer;
    };
    schedule();
  }
}

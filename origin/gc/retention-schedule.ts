// Runs retention on a schedule inside the origin. One run at a time in this
// process (a run still going when the next is due is joined, never doubled),
// and one at a time, about one per interval, across replicas sharing
// storage, through one record (`gc/retention-run.json`):
//
//   - a run starts by writing it as a lease ({at, replica, running: true})
//     and reading it back: a replica that finds another's name there leaves
//     the run to it. The lease is written again every check period while the
//     run lasts, so a run longer than the check period (hours over a large
//     bucket) is never joined by a second replica's;
//   - a lease not renewed for three check periods is a crashed run's, and
//     the next replica to check takes over;
//   - a run that ends records when it ended ({running: false}); a replica
//     whose turn comes while that is younger than the interval skips. A run
//     that fails puts back what was there, so the next check tries again.
//
// Two replicas that read the record at the same moment may still both
// write it, and one may read its own lease back before the other's write
// lands: then both run. That window is one storage round trip, and it only
// costs work as long as each run's own checks hold (every deletion is
// idempotent and both apply the same rules); concurrent runs were the
// common case before, every time a run outlasted the check period.
//
// Checks come every quarter interval (at most every 15 minutes), with a
// random first delay, so pods that live shorter than the interval (rollouts,
// the autoscaler) still run it when it is due, and replicas started together
// do not all check at the same moment.
import type { Digest } from '../../shared/digest.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import type { RetentionPolicy } from './retention.ts';
import { runRetention, type LastUsed, type RetentionReport } from './retention-run.ts';

export interface RetentionScheduleOptions {
  storage: Storage;
  policy: RetentionPolicy;
  lastUsed: LastUsed;
  intervalMs: number;
  replicaId: string;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** Makes a deleted object again that an image written during the run names (retention-run.ts). */
  repair?: (digest: Digest) => Promise<boolean>;
  /** Told each image key the run deleted, so this process stops serving it from memory. */
  forget?: (imageKey: string) => void;
  now?: () => number;
}

/** What the last run recorded in storage: when it ended, or while `running`, when its lease was last renewed. */
interface LastRun {
  at: number;
  replica: string;
  running?: boolean;
}

/** A lease not renewed for this many check periods belongs to a run that died. */
const LEASE_PERIODS = 3;

/** Seconds between two checks (and two renewals of a running lease). */
function checkPeriodMs(intervalMs: number): number {
  return Math.min(Math.max(intervalMs / 4, 1000), 15 * 60 * 1000);
}

export interface RetentionStats {
  runs: number;
  failures: number;
  bytesFreed: number;
  /** Blobs and manifests in storage as of the last listing; null before the first run. */
  storedObjects: number | null;
  storedBytes: number | null;
}

export class RetentionSchedule {
  private readonly opts: RetentionScheduleOptions;
  private running: Promise<RetentionReport | null> | null = null;
  private readonly listeners = new Set<(report: RetentionReport | null, seconds: number) => void>();
  readonly stats: RetentionStats = { runs: 0, failures: 0, bytesFreed: 0, storedObjects: null, storedBytes: null };

  constructor(opts: RetentionScheduleOptions) {
    this.opts = opts;
  }

  /** Told about every run that ended: its report, or null when it failed, and how long it took. */
  onRun(listener: (report: RetentionReport | null, seconds: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs retention now unless a replica ran it within the interval (then
   * null); a run already going in this process is joined. Never throws: a
   * failed run is logged and counted.
   */
  runIfDue(): Promise<RetentionReport | null> {
    this.running ??= this.run().finally(() => (this.running = null));
    return this.running;
  }

  private async run(): Promise<RetentionReport | null> {
    const { storage, log } = this.opts;
    const clock = this.opts.now ?? Date.now;
    const started = performance.now();
    const period = checkPeriodMs(this.opts.intervalMs);
    const replica = this.opts.replicaId;
    let last: LastRun | null = null;
    let leased = false;
    let renewal: NodeJS.Timeout | undefined;
    try {
      last = await readLastRun(storage);
      if (last !== null && clock() - last.at < (last.running ? LEASE_PERIODS * period : this.opts.intervalMs)) return null;
      await writeLastRun(storage, { at: clock(), replica, running: true });
      leased = true;
      // Another replica's lease written over ours: the run is its.
      if ((await readLastRun(storage))?.replica !== replica) {
        leased = false;
        return null;
      }
      renewal = setInterval(() => {
        writeLastRun(storage, { at: clock(), replica, running: true }).catch((err: unknown) => log.warn({ err }, 'retention lease not renewed'));
      }, period);
      renewal.unref();
      const report = await runRetention({ storage: this.opts.storage, policy: this.opts.policy, lastUsed: this.opts.lastUsed, now: clock, listDeletions: false, ...(this.opts.repair ? { repair: this.opts.repair } : {}) });
      clearInterval(renewal);
      for (const key of report.images) this.opts.forget?.(key);
      await writeLastRun(storage, { at: clock(), replica, running: false });
      leased = false;
      this.stats.runs++;
      this.stats.bytesFreed += report.bytes;
      this.stats.storedObjects = report.stored.objects;
      this.stats.storedBytes = report.stored.bytes;
      log.info(
        { images: report.images.length, objects: report.deleted.objects, bytes: report.bytes, records: report.deleted.records, remade: report.remade.length, pinnedBy: report.pinnedBy, storedObjects: report.stored.objects, storedBytes: report.stored.bytes, ms: report.ms },
        'retention run',
      );
      for (const listener of this.listeners) listener(report, (performance.now() - started) / 1000);
      return report;
    } catch (err) {
      clearInterval(renewal);
      // The lease goes, so the next check (here or on another replica) tries again.
      if (leased) await (last ? writeLastRun(storage, last) : storage.delete(STORAGE_KEYS.retentionRun(''))).catch(() => undefined);
      this.stats.failures++;
      log.warn({ err, ms: Math.round(performance.now() - started) }, 'retention run failed');
      for (const listener of this.listeners) listener(null, (performance.now() - started) / 1000);
      return null;
    }
  }

  /** Checks on a timer that never keeps the process alive; returns the stop function. */
  start(): () => void {
    const every = checkPeriodMs(this.opts.intervalMs);
    let timer: NodeJS.Timeout | undefined;
    const schedule = (delay: number) => {
      timer = setTimeout(() => {
        void this.runIfDue().finally(() => timer !== undefined && schedule(every));
      }, delay);
      timer.unref();
    };
    schedule(Math.random() * every);
    return () => {
      clearTimeout(timer);
      timer = undefined;
    };
  }
}

async function readLastRun(storage: Storage): Promise<LastRun | null> {
  const bytes = await storage.get(STORAGE_KEYS.retentionRun(''));
  if (!bytes) return null;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LastRun>;
    return typeof parsed.at === 'number' ? { at: parsed.at, replica: String(parsed.replica), ...(parsed.running === true ? { running: true } : {}) } : null;
  } catch {
    return null;
  }
}

async function writeLastRun(storage: Storage, run: LastRun): Promise<void> {
  await storage.put(STORAGE_KEYS.retentionRun(''), new TextEncoder().encode(JSON.stringify(run)), MEDIA.json);
}

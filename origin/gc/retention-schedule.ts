// Runs retention on a schedule inside the origin. One run at a time in this
// process (a run still going when the next is due is joined, never doubled),
// and about one per interval across replicas sharing storage: each run
// records when it ended (`gc/retention-run.json`), and a replica whose turn
// comes while that record is younger than the interval skips. Two replicas
// that check at the same moment may both run; that is only wasted work, as
// every deletion is idempotent and both apply the same rules.
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

/** What the last run recorded in storage. */
interface LastRun {
  at: number;
  replica: string;
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
    try {
      const last = await readLastRun(storage);
      if (last !== null && clock() - last.at < this.opts.intervalMs) return null;
      const report = await runRetention({ storage: this.opts.storage, policy: this.opts.policy, lastUsed: this.opts.lastUsed, now: clock, ...(this.opts.repair ? { repair: this.opts.repair } : {}) });
      for (const key of report.images) this.opts.forget?.(key);
      await storage.put(STORAGE_KEYS.retentionRun(''), new TextEncoder().encode(JSON.stringify({ at: clock(), replica: this.opts.replicaId } satisfies LastRun)), MEDIA.json);
      this.stats.runs++;
      this.stats.bytesFreed += report.bytes;
      this.stats.storedObjects = report.stored.objects;
      this.stats.storedBytes = report.stored.bytes;
      log.info(
        { images: report.images.length, objects: report.objects.length, bytes: report.bytes, records: report.records.length, remade: report.remade.length, pinnedBy: report.pinnedBy, storedObjects: report.stored.objects, storedBytes: report.stored.bytes, ms: report.ms },
        'retention run',
      );
      for (const listener of this.listeners) listener(report, (performance.now() - started) / 1000);
      return report;
    } catch (err) {
      this.stats.failures++;
      log.warn({ err, ms: Math.round(performance.now() - started) }, 'retention run failed');
      for (const listener of this.listeners) listener(null, (performance.now() - started) / 1000);
      return null;
    }
  }

  /** Checks on a timer that never keeps the process alive; returns the stop function. */
  start(): () => void {
    const every = Math.min(Math.max(this.opts.intervalMs / 4, 1000), 15 * 60 * 1000);
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
    return typeof parsed.at === 'number' ? { at: parsed.at, replica: String(parsed.replica) } : null;
  } catch {
    return null;
  }
}

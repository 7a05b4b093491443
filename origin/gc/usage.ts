// When each image was last requested: what the retention run (retention.ts)
// asks before deleting an image. One small object per image under
// `usage/<image key>.json`, holding the time of a use.
//
// A pull touches an image several times (the tag, then the manifest by
// digest), and a hot image is pulled all the time, so a touch is written only
// when the image's last write by this replica is at least one interval old
// (USAGE_WRITE_INTERVAL), remembered in a bounded memory map: a hot image
// costs one storage write per interval per replica, and a touch between
// writes costs nothing. The price is precision: a recorded time may be up to
// one interval older than the real last use, which is nothing next to a
// retention horizon of days. Replicas write the same object, last writer
// wins; their times differ by less than an interval, so it does not matter
// which wins.
import { Lru } from '../../shared/lru.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';

export interface UsageLog {
  /** Records that the image was used at `at` (ms); may skip the write when a recent one covers it. */
  touch(imageKey: string, at: number): Promise<void>;
  /** When the image was last recorded as used (ms), or null when never. */
  lastUsed(imageKey: string): Promise<number | null>;
}

/** What a usage object holds. */
interface UsageRecord {
  lastUsed: number;
}

/**
 * Whether a touch at `at` must be written, given when this replica last
 * wrote one for the image (undefined: not since it started, or forgotten).
 * A clock that went back (a write "in the future") writes again rather than
 * stay silent for as long as the clock was off.
 */
export function usageWriteDue(lastWritten: number | undefined, at: number, intervalMs: number): boolean {
  if (lastWritten === undefined) return true;
  return at - lastWritten >= intervalMs || at < lastWritten;
}

export interface StoredUsageLogOptions {
  /** A touch is written at most once per this many ms per image (per replica). */
  intervalMs: number;
  /** Images whose last write is remembered; one forgotten is written again at its next touch. */
  capacity?: number;
}

export class StoredUsageLog implements UsageLog {
  private readonly storage: Storage;
  private readonly intervalMs: number;
  /** Image key → when this replica last wrote (or began writing) its usage. */
  private readonly written: Lru<string, number>;

  constructor(storage: Storage, options: StoredUsageLogOptions) {
    this.storage = storage;
    this.intervalMs = options.intervalMs;
    this.written = new Lru(options.capacity ?? 100_000);
  }

  async touch(imageKey: string, at: number): Promise<void> {
    if (!usageWriteDue(this.written.get(imageKey), at, this.intervalMs)) return;
    // Marked before the write, so concurrent touches of a hot image write once.
    this.written.set(imageKey, at);
    const record: UsageRecord = { lastUsed: at };
    try {
      await this.storage.put(STORAGE_KEYS.usage(imageKey), new TextEncoder().encode(JSON.stringify(record)), MEDIA.json);
    } catch (err) {
      // Not written: the next touch tries again rather than wait an interval.
      this.written.delete(imageKey);
      throw err;
    }
  }

  async lastUsed(imageKey: string): Promise<number | null> {
    const stored = await this.storage.get(STORAGE_KEYS.usage(imageKey));
    if (stored === null) return null;
    try {
      const value = (JSON.parse(new TextDecoder().decode(stored)) as Partial<UsageRecord>).lastUsed;
      return typeof value === 'number' && Number.isFinite(value) ? value : null;
    } catch {
      // A damaged record says nothing; retention then falls back on when the image was written.
      return null;
    }
  }
}

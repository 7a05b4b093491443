// Which manifest hits the edge reports to the origin, and when (pure; the
// sending is hit-reports.ts's). A hit at the edge never reaches the origin,
// so the edge tells it which manifests it answered, for the images' last
// use (docs/operations.md, "Last use").
//
// Each digest is reported at most once per interval per isolate: a hot
// manifest costs one entry in a report per hour, not one per hit, and a hit
// between reports costs a map lookup. Digests wait in a batch that is sent
// when it is full or, at the latest, a short delay after its first digest
// (the sender's timer).
//
// No Workers-only API here: the Node unit tests import it.
import type { Digest } from '../shared/digest.ts';
import { Lru } from '../shared/lru.ts';

export interface HitBatchPolicy {
  /** A digest is queued at most once per this many ms. */
  intervalMs: number;
  /** A batch this large is sent at once (the origin's limit per report). */
  maxBatch: number;
  /** Digests whose last report is remembered; one forgotten is reported again early, which costs one entry. */
  capacity?: number;
}

/** What became of a hit: covered by a recent report, queued, or queued and filling the batch (send it now). */
export type HitOutcome = 'reported' | 'queued' | 'full';

export class HitBatch {
  private readonly policy: HitBatchPolicy;
  /** Digest → when it was last queued. */
  private readonly queued: Lru<Digest, number>;
  /** Digest → the Worker's origin (scheme and host) it was served under: its Cache API key depends on it. */
  private pending = new Map<Digest, string>();

  constructor(policy: HitBatchPolicy) {
    this.policy = policy;
    this.queued = new Lru(policy.capacity ?? 10_000);
  }

  get size(): number {
    return this.pending.size;
  }

  add(digest: Digest, servedUnder: string, now: number): HitOutcome {
    const last = this.queued.get(digest);
    // A clock that went back counts as an interval gone by rather than silence.
    if (last !== undefined && now - last < this.policy.intervalMs && now >= last) return 'reported';
    this.queued.set(digest, now);
    this.pending.set(digest, servedUnder);
    return this.pending.size >= this.policy.maxBatch ? 'full' : 'queued';
  }

  /** The batch to send (digest → where it was served), leaving an empty one. */
  take(): Map<Digest, string> {
    const batch = this.pending;
    this.pending = new Map();
    return batch;
  }

  /** Forgets a digest's last report: the origin said it is gone, so if it is ever served again, that is news. */
  forget(digest: Digest): void {
    this.queued.delete(digest);
  }
}

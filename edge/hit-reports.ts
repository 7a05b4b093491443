// Reporting manifest hits to the origin (docs/operations.md, "Last use"):
// a manifest answered from any of the edge's tiers goes into the isolate's
// batch (hit-batch.ts decides which and when), and the batch is sent as one
// POST to the origin in ctx.waitUntil, after the client has its answer. The
// origin's answer names the digests it can no longer serve; those are
// dropped from every tier (manifest-cache.ts `forget`), so the next request
// for one goes to the origin, which answers 404 by digest or builds again by tag.
//
// A report never delays or fails a client's answer. A failed one is dropped,
// not retried: its digests are reported again an interval later if still
// hit, the origin counts its own manifest answers (tag revalidations among
// them) besides, and a retry would add load to an origin that is failing.
//
// No Workers-only API here: the Node unit tests import it.
import type { Digest } from '../shared/digest.ts';
import { HIT_REPORT_LIMITS, HIT_REPORT_PATH, hitReportBody, parseHitReportAnswer } from '../shared/hit-report.ts';
import { MEDIA } from '../shared/media-types.ts';
import { HitBatch } from './hit-batch.ts';
import type { OriginClient } from './origin.ts';

/** The part of the Workers ExecutionContext used here. */
interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

export interface HitReporterOptions {
  origin: Pick<OriginClient, 'send'>;
  /** Drops a digest the origin no longer has from every tier. */
  forget: (digest: Digest, servedUnder: string) => Promise<void>;
  /** A digest is reported at most once per this many ms per isolate. */
  intervalMs: number;
  /** The longest a hit waits for its batch to be sent (ms); 0 sends each at once. */
  delayMs: number;
}

/**
 * How long a report may take. Work in ctx.waitUntil must end within 30 s of
 * the response; the delay (at most 20 s, env.ts) and this fit in it.
 */
const REPORT_TIMEOUT_MS = 8_000;

export class HitReporter {
  private readonly options: HitReporterOptions;
  private readonly batch: HitBatch;
  private scheduled = false;

  constructor(options: HitReporterOptions) {
    this.options = options;
    this.batch = new HitBatch({ intervalMs: options.intervalMs, maxBatch: HIT_REPORT_LIMITS.maxDigests });
  }

  /** A manifest was answered from an edge tier under `servedUnder` (the Worker's own origin). */
  hit(digest: Digest, servedUnder: string, ctx: WaitUntil, now = Date.now()): void {
    const outcome = this.batch.add(digest, servedUnder, now);
    if (outcome === 'reported') return;
    if (outcome === 'full' || this.options.delayMs === 0) {
      ctx.waitUntil(this.flush());
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    // The batch waits in the waitUntil of the request that opened it; later hits join it.
    ctx.waitUntil(
      new Promise((resolve) => setTimeout(resolve, this.options.delayMs)).then(() => {
        this.scheduled = false;
        return this.flush();
      }),
    );
  }

  /** Sends what is waiting, and drops what the origin says it no longer has. Never throws. */
  async flush(): Promise<void> {
    const batch = this.batch.take();
    if (batch.size === 0) return;
    try {
      const answer = await this.options.origin.send(HIT_REPORT_PATH, {
        method: 'POST',
        requestId: crypto.randomUUID(),
        body: hitReportBody([...batch.keys()]),
        headers: { 'Content-Type': MEDIA.json, Accept: MEDIA.json },
        readBody: true,
        timeoutMs: REPORT_TIMEOUT_MS,
      });
      if (answer.status !== 200) throw new Error(`the origin answered ${answer.status}`);
      const unknown = parseHitReportAnswer(new TextDecoder().decode(answer.body), new Set(batch.keys()));
      if (unknown === null) throw new Error('the origin’s answer is not {"unknown": [...]}');
      for (const digest of unknown) this.batch.forget(digest);
      await Promise.all(unknown.map((digest) => this.options.forget(digest, batch.get(digest)!)));
    } catch (err) {
      console.warn(`nixery-edge: a report of ${batch.size} manifest hits to the origin was dropped: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

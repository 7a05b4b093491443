// Which Nix work may run now: evaluations and builds each have a queue of
// their own (work-queue.ts), as they cost different things (an evaluation of
// nixpkgs is memory, a build is cores and disk) and one must not starve the
// other. A build's closure query runs in its build's slot, so a slot holds
// one Nix process at a time, and the work a tag starts outside an image
// (resolving it, evaluating its search index) takes an evaluation slot
// (tag-work-gate.ts). A refusal becomes 429 TOOMANYREQUESTS with
// Retry-After.
import { errors } from '../../shared/errors.ts';
import { QueueRefusal, WorkQueue, type RefusalReason } from './work-queue.ts';

export type QueuedStep = 'evaluation' | 'build' | 'layers';

export interface AdmissionConfig {
  maxEvaluations: number;
  maxBuilds: number;
  /** Waiting places of each queue. */
  queueLength: number;
  /** Seconds an entry may wait for a slot. */
  queueWaitSeconds: number;
  /** Waiting places one client may hold in each queue; null: max(1, queueLength / 4). */
  clientShare: number | null;
}

const GIB = 1024 ** 3;

/**
 * Defaults from the machine. An evaluation of nixpkgs for a few packages
 * peaks at about 1 GiB of resident memory (more for large closures), so half
 * the memory at 1.5 GiB each, at most one per core. A build runs builders
 * (compilers, unpacking, copying substitutes): one per core, with at least
 * 1 GiB each out of a quarter of the memory. Queues hold eight entries per
 * evaluation slot (at least 16): a waiting entry costs nothing but its
 * place, and NIX_QUEUE_WAIT bounds how long it waits.
 */
export function defaultAdmission(cores: number, totalMemoryBytes: number): Omit<AdmissionConfig, 'queueWaitSeconds' | 'clientShare'> {
  const maxEvaluations = Math.max(1, Math.min(cores, Math.floor((totalMemoryBytes * 0.5) / (1.5 * GIB))));
  const maxBuilds = Math.max(1, Math.min(cores, Math.floor((totalMemoryBytes * 0.25) / GIB)));
  return { maxEvaluations, maxBuilds, queueLength: Math.max(16, 8 * maxEvaluations) };
}

export class NixAdmission {
  readonly evaluations: WorkQueue;
  readonly builds: WorkQueue;
  readonly layers: WorkQueue;
  /** Set by the metrics: told each admission's wait and each refusal. */
  onAdmit?: (step: QueuedStep, waitSeconds: number) => void;
  onRefuse?: (step: QueuedStep, reason: RefusalReason) => void;

  constructor(config: AdmissionConfig) {
    const queue = (name: QueuedStep, concurrency: number) =>
      new WorkQueue({
        name,
        concurrency,
        maxQueue: config.queueLength,
        maxWaitMs: config.queueWaitSeconds * 1000,
        ...(config.clientShare !== null ? { clientShare: config.clientShare } : {}),
        onAdmit: (seconds) => this.onAdmit?.(name, seconds),
        onRefuse: (reason) => this.onRefuse?.(name, reason),
      });
    this.evaluations = queue('evaluation', config.maxEvaluations);
    this.builds = queue('build', config.maxBuilds);
    // Writing an image's layers (tar, gzip, hashing: the origin's own CPU) after its Nix build: as
    // many images at once as builds, never refused (the Nix work is done), waiting as long as it takes.
    this.layers = new WorkQueue({
      name: 'layers',
      concurrency: config.maxBuilds,
      maxQueue: Number.POSITIVE_INFINITY,
      maxWaitMs: Number.POSITIVE_INFINITY,
      clientShare: Number.POSITIVE_INFINITY,
      onAdmit: (seconds) => this.onAdmit?.('layers', seconds),
    });
  }

  /** Runs one Nix step of a build for `client`, queued if it is an evaluation or a build. */
  async run<T>(step: string, client: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const queue = step === 'evaluation' ? this.evaluations : step === 'build' ? this.builds : step === 'layers' ? this.layers : null;
    if (queue === null) return work();
    try {
      return await queue.run(client, work, signal);
    } catch (err) {
      if (err instanceof QueueRefusal) {
        throw errors.tooManyRequests(err.message, err.retryAfterSeconds, { queue: err.queue, reason: err.reason });
      }
      throw err;
    }
  }
}

// Metrics of the Nix work queues (nix/admission.ts): how full they are, how
// long admitted work waited, and how much was refused and why. Labels are
// the queue (evaluation, build) and the reason: bounded.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { NixAdmission } from '../nix/admission.ts';
import type { FailureMemory } from '../image/failure-memory.ts';

export function registerAdmissionMetrics(registry: Registry, prefix: string, admission: NixAdmission, failures?: FailureMemory): void {
  const queues = { evaluation: admission.evaluations, build: admission.builds, layers: admission.layers };
  new Gauge({
    name: `${prefix}nix_queue_waiting`,
    help: 'Nix evaluations or builds waiting for a slot, by queue.',
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      for (const [name, queue] of Object.entries(queues)) this.set({ queue: name }, queue.waiting);
    },
  });
  new Gauge({
    name: `${prefix}nix_queue_running`,
    help: 'Nix evaluations or builds running, by queue.',
    labelNames: ['queue'] as const,
    registers: [registry],
    collect() {
      for (const [name, queue] of Object.entries(queues)) this.set({ queue: name }, queue.running);
    },
  });
  new Gauge({
    name: `${prefix}nix_queue_capacity`,
    help: 'Configured limits of each queue: slots (NIX_MAX_EVALUATIONS, NIX_MAX_BUILDS) and waiting places (NIX_QUEUE_LENGTH).',
    labelNames: ['queue', 'kind'] as const,
    registers: [registry],
    collect() {
      for (const [name, queue] of Object.entries(queues)) {
        this.set({ queue: name, kind: 'slots' }, queue.concurrency);
        this.set({ queue: name, kind: 'waiting' }, queue.maxQueue);
      }
    },
  });
  const wait = new Histogram({
    name: `${prefix}nix_queue_wait_seconds`,
    help: 'Time admitted Nix work waited for a slot, by queue.',
    labelNames: ['queue'] as const,
    buckets: [0.01, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
    registers: [registry],
  });
  const refused = new Counter({
    name: `${prefix}nix_queue_refused_total`,
    help: 'Nix work refused with 429, by queue and reason (queue-full, client-share, wait-timeout).',
    labelNames: ['queue', 'reason'] as const,
    registers: [registry],
  });
  for (const queue of Object.keys(queues)) for (const reason of ['queue-full', 'client-share', 'wait-timeout']) refused.inc({ queue, reason }, 0);
  if (failures) {
    for (const [name, help, read] of [
      ['failures_remembered_total', 'Image failures remembered for FAILURE_TTL (each cost one Nix run).', () => failures.stats.remembered],
      ['failures_recalled_total', 'Requests answered with a remembered failure, without Nix.', () => failures.stats.recalled],
    ] as const) {
      new Counter({
        name: `${prefix}${name}`,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    }
  }
  admission.onAdmit = (queue, seconds) => wait.observe({ queue }, seconds);
  admission.onRefuse = (queue, reason) => refused.inc({ queue, reason });
}

// Liveness and readiness, outside /v2/ (the edge never forwards them).
//
// /healthz answers as long as the event loop does: a liveness probe that
// restarts a pod only when the process is wedged, never because a
// dependency is down (restarting would not fix the bucket).
//
// /readyz says whether this replica can do its job right now: storage takes
// a small write and gives it back, and Nix can build (nix/preflight.ts). The result is kept for a few
// seconds and concurrent probes share one check, so a probe every second from
// several kubelets and load balancers costs one round trip. While the origin
// drains for shutdown it is not ready, so traffic moves to other replicas.
import { hostname } from 'node:os';
import { checkNixCanBuild } from '../nix/preflight.ts';
import type express from 'express';
import type { Logger } from 'pino';
import type { Storage } from '../storage/storage.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { withTimeout } from '../../shared/deadline.ts';
import { SingleFlight } from '../../shared/single-flight.ts';

export interface CheckResult {
  ok: boolean;
  ms: number;
  error?: string;
  version?: string;
}

export interface Readiness {
  ready: boolean;
  draining: boolean;
  checks: { storage: CheckResult; nix: CheckResult };
}

export interface HealthOptions {
  storage: Storage;
  log: Logger;
  /** True once shutdown began. */
  draining: () => boolean;
  /** How long a readiness result is reused. */
  cacheMs?: number;
  /** Seconds each check may take before it counts as failed. */
  timeoutSeconds?: number;
}

/** One object per replica, replaced on every check, so the bucket does not grow. */
function probeKey(): string {
  const name = hostname().replace(/[^a-zA-Z0-9._-]/g, '-') || 'origin';
  return STORAGE_KEYS.health(name);
}

async function timed(work: () => Promise<string | undefined>): Promise<CheckResult> {
  const started = performance.now();
  try {
    const version = await work();
    return { ok: true, ms: Math.round(performance.now() - started), ...(version ? { version } : {}) };
  } catch (err) {
    return { ok: false, ms: Math.round(performance.now() - started), error: (err as Error).message };
  }
}


export async function checkStorage(storage: Storage, timeoutSeconds: number): Promise<CheckResult> {
  return timed(() =>
    withTimeout((async () => {
      const key = probeKey();
      const written = new TextEncoder().encode(new Date().toISOString());
      await storage.put(key, written, 'text/plain');
      const read = await storage.get(key);
      if (read === null || Buffer.compare(Buffer.from(read), Buffer.from(written)) !== 0) {
        throw new Error(`storage gave back something else than was written to ${key}`);
      }
      return undefined;
    })(), timeoutSeconds * 1000, `storage round trip took longer than ${timeoutSeconds} s`),
  );
}

/** Whether Nix can build, not only run: a missing build users group or a read-only store fails it (nix/preflight.ts). */
export async function checkNix(timeoutSeconds: number): Promise<CheckResult> {
  return timed(async () => {
    const result = await checkNixCanBuild({ timeoutSeconds });
    if (!result.ok) throw new Error(result.problem);
    return result.version;
  });
}

export function createReadiness(options: HealthOptions): () => Promise<Readiness> {
  const cacheMs = options.cacheMs ?? 3000;
  const timeoutSeconds = options.timeoutSeconds ?? 5;
  let last: { at: number; checks: Readiness['checks'] } | null = null;
  const checking = new SingleFlight<Readiness['checks']>();
  let wasReady: boolean | null = null;

  async function check(): Promise<Readiness['checks']> {
    const [storage, nix] = await Promise.all([checkStorage(options.storage, timeoutSeconds), checkNix(timeoutSeconds)]);
    const checks = { storage, nix };
    const ready = storage.ok && nix.ok;
    // Logged on change only: probes come every few seconds.
    if (ready !== wasReady) {
      if (ready) options.log.info({ checks }, 'ready');
      else options.log.warn({ checks }, 'not ready');
      wasReady = ready;
    }
    return checks;
  }

  return async () => {
    if (last === null || performance.now() - last.at > cacheMs) {
      await checking.run('readiness', async () => {
        const checks = await check();
        last = { at: performance.now(), checks };
        return checks;
      }).result;
    }
    const checks = last!.checks;
    const draining = options.draining();
    return { ready: !draining && checks.storage.ok && checks.nix.ok, draining, checks };
  };
}

export function mountHealth(app: express.Express, options: HealthOptions): void {
  const readiness = createReadiness(options);
  const noStore = { 'Cache-Control': 'no-store' };

  app.get('/healthz', (_req, res) => {
    res.locals.route = 'healthz';
    res.status(200).set(noStore).json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res, next) => {
    res.locals.route = 'readyz';
    try {
      const result = await readiness();
      const status = result.ready ? 'ready' : result.draining ? 'draining' : 'not ready';
      res.status(result.ready ? 200 : 503).set(noStore).json({ status, checks: result.checks });
    } catch (err) {
      next(err);
    }
  });
}

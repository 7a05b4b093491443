// Staged writes that never finished (a process killed mid-upload) are
// invisible under any key but take space. Both backends name a staged
// object `<ms since epoch>-<random>`, so its age is in its name, without a
// stat per object; a name that carries no time is left alone.
export const STAGING_MAX_AGE_MS = 60 * 60 * 1000;

/** Whether a staging leftover named `name` is older than `maxAgeMs` at `now`. */
export function isStaleStaging(name: string, now: number, maxAgeMs = STAGING_MAX_AGE_MS): boolean {
  const match = /^(\d{13})-[0-9a-f]+$/.exec(name);
  return match !== null && now - Number(match[1]) > maxAgeMs;
}

export interface SweepResult {
  removed: number;
  bytes: number;
}

/** How often the origin sweeps staging: a leftover lives at most this much past its hour. */
export const STAGING_SWEEP_INTERVAL_MS = 10 * 60 * 1000;

/**
 * Sweeps on a timer that never keeps the process alive. Every replica
 * sweeps; two deleting the same leftover is harmless (deletes ignore
 * "not found"), and a staged write in flight is younger than the limit.
 */
export function scheduleStagingSweep(storage: { sweepStaging(now: number, maxAgeMs: number): Promise<SweepResult> }, log: { info(o: object, m: string): void; warn(o: object, m: string): void }): () => void {
  const sweep = () =>
    void storage.sweepStaging(Date.now(), STAGING_MAX_AGE_MS).then(
      (r) => r.removed > 0 && log.info({ ...r }, 'staging leftovers deleted'),
      (err: unknown) => log.warn({ err }, 'staging sweep failed'),
    );
  const timer = setInterval(sweep, STAGING_SWEEP_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

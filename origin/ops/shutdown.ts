// Graceful shutdown on SIGTERM (Kubernetes' way of ending a pod).
//
// 1. Drain: /readyz turns 503 so the pod leaves the Service's endpoints, new
//    work that would run Nix is refused with 503 UNAVAILABLE, and responses
//    ask keep-alive clients to close their connections. The listener stays
//    open meanwhile: endpoints are removed asynchronously, and a request that
//    still arrives is better answered (cached content) or refused with a
//    retryable 503 than met with a refused connection.
// 2. Builds in flight get the grace period (SHUTDOWN_GRACE_SECONDS) to finish.
// 3. Whatever still runs then is cancelled through one AbortSignal: Nix is
//    killed (execa's cancelSignal) and staged layer writes are aborted, which
//    deletes their temporary files; nothing partial is ever committed, since
//    an object only appears under its key once complete.
// 4. The listener closes, open responses get a moment to end, and the
//    process exits 0.
// A second signal skips the rest of the grace period.
import type { Server } from 'node:http';
import type express from 'express';
import type { Logger } from 'pino';

export interface ShutdownOptions {
  /** Told to refuse new builds when the drain begins; its builds in flight are waited for. */
  builder: { readonly inflight: number; drain(): void };
  /** Aborting it cancels every build (the builder's Nix options carry its signal). */
  cancel: AbortController;
  graceSeconds: number;
  log: Logger;
  /** Seconds cancelled builds get to unwind (Nix is killed with SIGKILL after 2 s). */
  cancelWaitSeconds?: number;
  /** Seconds open responses (blob downloads) get once the builds are over. */
  closeWaitSeconds?: number;
}

const POLL_MS = 100;

/** Resolves true once `done()` holds, false if `seconds` pass first. */
async function waitUntil(done: () => boolean, seconds: number, wake?: Promise<unknown>): Promise<boolean> {
  const deadline = performance.now() + seconds * 1000;
  let woken = false;
  void wake?.then(() => (woken = true));
  while (!done()) {
    if (woken || performance.now() >= deadline) return done();
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline - performance.now()))));
  }
  return true;
}

export class GracefulShutdown {
  private readonly opts: ShutdownOptions;
  private server: Server | null = null;
  private started: Promise<number> | null = null;
  private hurry!: () => void;
  private readonly hurried = new Promise<void>((resolve) => (this.hurry = resolve));

  constructor(opts: ShutdownOptions) {
    this.opts = opts;
  }

  /** The server to close once the builds are over. */
  serve(server: Server): void {
    this.server = server;
  }

  get draining(): boolean {
    return this.started !== null;
  }

  /** Mount before the registry routes: during the drain, clients are told to reconnect elsewhere. */
  middleware(): express.RequestHandler {
    return (_req, res, next) => {
      if (this.draining) res.setHeader('Connection', 'close');
      next();
    };
  }

  /** Starts shutting down (once; a second call hurries it) and resolves with the exit code. */
  begin(reason: string): Promise<number> {
    if (this.started) {
      this.opts.log.warn({ reason }, 'shutdown hurried: cancelling builds now');
      this.hurry();
      return this.started;
    }
    this.started = this.run(reason);
    return this.started;
  }

  private async run(reason: string): Promise<number> {
    const { builder, cancel, graceSeconds, log } = this.opts;
    builder.drain();
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    log.info({ reason, buildsInFlight: builder.inflight, graceSeconds }, 'shutting down: draining');

    let settled = await waitUntil(() => builder.inflight === 0, graceSeconds, this.hurried);
    if (!settled) {
      log.warn({ buildsInFlight: builder.inflight, afterSeconds: Math.round(elapsed()) }, 'grace period over: cancelling builds in flight');
      cancel.abort(new Error('origin shutting down'));
      settled = await waitUntil(() => builder.inflight === 0, this.opts.cancelWaitSeconds ?? 15);
      if (!settled) log.error({ buildsInFlight: builder.inflight }, 'builds did not stop after cancellation');
    } else {
      log.info({ afterSeconds: Math.round(elapsed() * 10) / 10 }, 'builds in flight finished');
    }

    const server = this.server;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const remaining = Math.max(graceSeconds - elapsed(), this.opts.closeWaitSeconds ?? 5);
      let allClosed = false;
      void closed.then(() => (allClosed = true));
      if (!(await waitUntil(() => allClosed, remaining))) {
        log.warn('closing connections still open');
        server.closeAllConnections();
        await closed;
      }
    }
    log.info({ seconds: Math.round(elapsed() * 10) / 10 }, 'shut down');
    return settled ? 0 : 1;
  }
}

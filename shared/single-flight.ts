// Concurrent work for the same key shares one run: at the edge, misses for
// one manifest share one origin request; at the origin, requests for one
// image share one build, and likewise layer writes, resolutions of a moving
// tag and readiness checks.
//
// At the edge, Workers tie I/O to the request that started it: if that request is
// cancelled (its client went away), a promise it was resolving may never
// settle for the others waiting on it. So the leader keeps its work alive with
// ctx.waitUntil, and every waiter also waits with its own deadline.
//
// No Workers-only API here: the Node unit tests import it.

export class SingleFlight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  get size(): number {
    return this.flights.size;
  }

  /** Starts `work` for `key` unless it is already running; `leader` tells the caller it started it. */
  run(key: string, work: () => Promise<T>): { result: Promise<T>; leader: boolean } {
    const running = this.flights.get(key);
    if (running !== undefined) return { result: running, leader: false };
    const result = (async () => {
      try {
        return await work();
      } finally {
        this.flights.delete(key);
      }
    })();
    this.flights.set(key, result);
    return { result, leader: true };
  }
}

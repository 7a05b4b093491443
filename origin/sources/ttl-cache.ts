// Remembers what a moving name (a branch, a channel) resolved to for a while,
// so repeated pulls reuse one resolution instead of asking the network every
// time. Concurrent lookups of one key share a single resolution. Failures are
// not remembered here: in the origin, the tag-work gate around a resolution
// (nix/tag-work-gate.ts) remembers a tag's failure for FAILURE_TTL, after
// which a ref that appears, or a server that comes back, is seen.
import { SingleFlight } from '../../shared/single-flight.ts';

export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  private readonly flights = new SingleFlight<V>();
  private readonly ttlMs: number;
  private readonly capacity: number;
  private readonly now: () => number;

  constructor(ttlSeconds: number, options: { capacity?: number; now?: () => number } = {}) {
    this.ttlMs = ttlSeconds * 1000;
    this.capacity = options.capacity ?? 1024;
    this.now = options.now ?? Date.now;
  }

  get(key: string, load: () => Promise<V>): Promise<V> {
    const entry = this.entries.get(key);
    if (entry && entry.expires > this.now()) return Promise.resolve(entry.value);
    return this.flights.run(key, async () => {
      const value = await load();
      this.entries.delete(key);
      if (this.ttlMs > 0) this.entries.set(key, { value, expires: this.now() + this.ttlMs });
      // Keys come from client tags: bound the map, forgetting the oldest resolution first.
      if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
      return value;
    }).result;
  }
}

// A small least-recently-used map for process or isolate memory. An isolate has 128 MB
// and serves many requests, so every in-memory cache here is bounded, by
// entry count and optionally by bytes.
//
// No Workers-only API here: the Node unit tests import it.

export class Lru<K, V> {
  private readonly map = new Map<K, { value: V; weight: number }>();
  private readonly maxEntries: number;
  private readonly maxWeight: number;
  private readonly weigh: (value: V) => number;
  private totalWeight = 0;

  constructor(maxEntries: number, options: { maxWeight?: number; weigh?: (value: V) => number } = {}) {
    this.maxEntries = maxEntries;
    this.maxWeight = options.maxWeight ?? Number.POSITIVE_INFINITY;
    this.weigh = options.weigh ?? (() => 0);
  }

  get size(): number {
    return this.map.size;
  }

  get weight(): number {
    return this.totalWeight;
  }

  get(key: K): V | undefined {
    const slot = this.map.get(key);
    if (slot === undefined) return undefined;
    // Map keeps insertion order: re-inserting marks the entry most recent.
    this.map.delete(key);
    this.map.set(key, slot);
    return slot.value;
  }

  /** The value under `key`, without making it the most recent. */
  peek(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: K, value: V): void {
    const weight = this.weigh(value);
    // An entry bigger than the whole budget would evict everything and still not fit.
    if (weight > this.maxWeight) return;
    this.delete(key);
    this.map.set(key, { value, weight });
    this.totalWeight += weight;
    for (const [oldest, slot] of this.map) {
      if (this.map.size <= this.maxEntries && this.totalWeight <= this.maxWeight) break;
      this.map.delete(oldest);
      this.totalWeight -= slot.weight;
    }
  }

  delete(key: K): void {
    const slot = this.map.get(key);
    if (slot === undefined) return;
    this.map.delete(key);
    this.totalWeight -= slot.weight;
  }

  /** Deletes every entry the predicate picks (a scan: for rare events, not the hot path); returns how many. */
  deleteWhere(predicate: (key: K, value: V) => boolean): number {
    const doomed = [...this.map].filter(([key, slot]) => predicate(key, slot.value)).map(([key]) => key);
    for (const key of doomed) this.delete(key);
    return doomed.length;
  }

  clear(): void {
    this.map.clear();
    this.totalWeight = 0;
  }
}

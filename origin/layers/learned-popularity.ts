// Popularity learned from the instance's own builds: for each store path, in
// how many distinct images it has been, and a signature of which ones.
//
// Published popularity (NIX_POPULARITY_URL) describes a whole package set; an
// instance serves its users' images, often from a private set nobody
// publishes data for. What those images share is what their layers should
// keep apart, and what always comes together can travel together:
//
// - the count says how likely another image is to need a path;
// - the signature is the sum (mod 2^48) of a hash of every image the path
//   was in, so two paths with the same signature have, with overwhelming
//   probability, been in exactly the same images: so far they were never
//   pulled apart, and one layer holding both cost nobody anything.
//
// Every replica counts the images it built in its own record (a G-counter:
// only its owner ever writes a record), and a reader adds up the records of
// all replicas. Records are replaced whole, never edited by two writers, so
// concurrent replicas never lose each other's counts; merging the same
// replica twice keeps the record that counted more images (its counts only
// grow), so merging is idempotent and the order records are read in does
// not matter. Memory is bounded: a record keeps at most `maxPaths` paths,
// dropping the least counted (then least recently seen) when it grows past
// that, and the last `recentImages` image keys to tell a rebuilt image from
// a new one.
import { createHash } from 'node:crypto';
import { storePathName } from './graph.ts';

const MODULUS = 2 ** 48;

/** One replica's counts, as stored. */
export interface ReplicaRecord {
  readonly version: 1;
  readonly replica: string;
  /** Distinct images this replica counted (it only grows). */
  readonly images: number;
  /** Keys of the last images counted, oldest first. */
  readonly recent: readonly string[];
  /** Store path name (<hash>-<name>) → [images it was in, signature, ordinal of the last image it was in]. */
  readonly paths: Readonly<Record<string, readonly [number, number, number]>>;
}

/** What all replicas learned, merged: what the layering reads. */
export interface LearnedPopularity {
  /** Distinct images counted. */
  readonly images: number;
  /** Store path name → distinct images it was in. */
  readonly counts: ReadonlyMap<string, number>;
  /** Store path name → signature of the images it was in. */
  readonly signatures: ReadonlyMap<string, number>;
}

export const EMPTY_LEARNED: LearnedPopularity = { images: 0, counts: new Map(), signatures: new Map() };

export interface CounterLimits {
  readonly maxPaths: number;
  readonly recentImages: number;
}

export const DEFAULT_LIMITS: CounterLimits = { maxPaths: 50_000, recentImages: 2_000 };

function imageHash(key: string): number {
  // 48 bits of sha256: exact in a double, and sums stay exact below 2^53.
  return Number.parseInt(createHash('sha256').update(key).digest('hex').slice(0, 12), 16);
}

/** One replica's counter. */
export class ReplicaCounter {
  readonly replica: string;
  readonly #limits: CounterLimits;
  #images: number;
  readonly #recent: Set<string>;
  readonly #paths: Map<string, [number, number, number]>;

  constructor(replica: string, limits: CounterLimits = DEFAULT_LIMITS, from?: ReplicaRecord) {
    if (from && from.replica !== replica) throw new Error(`record of replica ${from.replica} given to replica ${replica}`);
    this.replica = replica;
    this.#limits = limits;
    this.#images = from?.images ?? 0;
    this.#recent = new Set(from?.recent ?? []);
    this.#paths = new Map(Object.entries(from?.paths ?? {}).map(([name, [c, s, l]]) => [name, [c, s, l]]));
  }

  get images(): number {
    return this.#images;
  }

  /**
   * Counts one image: `key` names it (the same image built again is not
   * counted twice), `paths` are the store paths of its closure. Returns
   * whether it was new.
   */
  observe(key: string, paths: Iterable<string>): boolean {
    if (this.#recent.has(key)) return false;
    this.#recent.add(key);
    for (const old of this.#recent) {
      if (this.#recent.size <= this.#limits.recentImages) break;
      this.#recent.delete(old);
    }
    const h = imageHash(key);
    const ordinal = ++this.#images;
    for (const name of new Set([...paths].map(storePathName))) {
      const entry = this.#paths.get(name);
      if (entry) {
        entry[0]++;
        entry[1] = (entry[1] + h) % MODULUS;
        entry[2] = ordinal;
      } else {
        this.#paths.set(name, [1, h, ordinal]);
      }
    }
    if (this.#paths.size > this.#limits.maxPaths) this.#evict();
    return true;
  }

  /** Drops the least counted paths, the least recently seen first among equals, down to 90% of the cap (so eviction is rare). */
  #evict(): void {
    const keep = Math.floor(this.#limits.maxPaths * 0.9);
    const order = [...this.#paths].sort(([na, a], [nb, b]) => a[0] - b[0] || a[2] - b[2] || (na < nb ? -1 : 1));
    for (const [name] of order.slice(0, this.#paths.size - keep)) this.#paths.delete(name);
  }

  record(): ReplicaRecord {
    const paths: Record<string, readonly [number, number, number]> = {};
    for (const name of [...this.#paths.keys()].sort()) paths[name] = [...this.#paths.get(name)!] as [number, number, number];
    return { version: 1, replica: this.replica, images: this.#images, recent: [...this.#recent], paths };
  }
}

/** Checks a stored record's shape; throws on anything else, so a corrupt object is never merged. */
export function parseReplicaRecord(json: unknown): ReplicaRecord {
  const r = json as Partial<ReplicaRecord> | null;
  const ok =
    r !== null && typeof r === 'object' && r.version === 1 && typeof r.replica === 'string' && Number.isSafeInteger(r.images) &&
    Array.isArray(r.recent) && r.recent.every((k) => typeof k === 'string') && r.paths !== null && typeof r.paths === 'object';
  if (!ok) throw new Error('not a learned popularity record');
  for (const [name, entry] of Object.entries(r.paths!)) {
    if (!Array.isArray(entry) || entry.length !== 3 || !entry.every((x) => Number.isSafeInteger(x) && x >= 0) || entry[1] >= MODULUS) {
      throw new Error(`learned popularity record of ${r.replica}: bad entry for ${JSON.stringify(name)}`);
    }
  }
  return r as ReplicaRecord;
}

/** Adds up the replicas' records; a replica given twice counts once, by its record that counted more images. */
export function mergeRecords(records: Iterable<ReplicaRecord>): LearnedPopularity {
  const latest = new Map<string, ReplicaRecord>();
  for (const r of records) {
    const seen = latest.get(r.replica);
    if (!seen || r.images > seen.images) latest.set(r.replica, r);
  }
  let images = 0;
  const counts = new Map<string, number>();
  const signatures = new Map<string, number>();
  for (const r of latest.values()) {
    images += r.images;
    for (const [name, [c, s]] of Object.entries(r.paths)) {
      counts.set(name, (counts.get(name) ?? 0) + c);
      signatures.set(name, ((signatures.get(name) ?? 0) + s) % MODULUS);
    }
  }
  return { images, counts, signatures };
}

// Keeps what the origin learns from its builds (layers/learned-popularity.ts)
// in storage, shared by every replica: each replica writes only its own
// record, `popularity/learned/<replica>.json`, so writes never race; readers
// find the replicas through `popularity/learned/replicas.json` and add up
// their records. The index is the only object two replicas write: a replica
// that finds itself missing from it (another replica's write won a race)
// adds itself again at its next save, and a record missed meanwhile only
// delays its counts, never loses them.
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import {
  DEFAULT_LIMITS,
  EMPTY_LEARNED,
  mergeRecords,
  parseReplicaRecord,
  ReplicaCounter,
  type CounterLimits,
  type LearnedPopularity,
  type ReplicaRecord,
} from '../layers/learned-popularity.ts';

/** Learned popularity's keys, from the storage layout (shared/storage-keys.ts). */
export const learnedPopularityKeys = {
  index: STORAGE_KEYS.learnedPopularityIndex(''),
  // `replicas` is refused as an id: it would be the index's key.
  replica: (replica: string): string => STORAGE_KEYS.learnedPopularity(checkReplicaId(replica)),
};

const REPLICA_ID = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export function checkReplicaId(replica: string): string {
  if (!REPLICA_ID.test(replica) || replica === 'replicas') throw new Error(`invalid replica id ${JSON.stringify(replica)}: letters, digits, ".", "_", "-", at most 63`);
  return replica;
}

/** The part of Storage this needs. */
export type LearnedStorage = Pick<Storage, 'get' | 'put'>;

export interface LearnedStoreOptions {
  readonly limits?: CounterLimits;
  /**
   * The layering sees new counts every this many images this replica
   * counted (and then reads the other replicas' records): between
   * refreshes layering stays put, which keeps layers stable.
   */
  readonly refreshEvery?: number;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

async function readJson(storage: LearnedStorage, key: string): Promise<unknown> {
  const bytes = await storage.get(key);
  return bytes ? (JSON.parse(decoder.decode(bytes)) as unknown) : undefined;
}

export class LearnedPopularityStore {
  readonly #storage: LearnedStorage;
  readonly #counter: ReplicaCounter;
  readonly #refreshEvery: number;
  #view: LearnedPopularity = EMPTY_LEARNED;
  #sinceRefresh = 0;

  private constructor(storage: LearnedStorage, counter: ReplicaCounter, refreshEvery: number) {
    this.#storage = storage;
    this.#counter = counter;
    this.#refreshEvery = refreshEvery;
  }

  /** Loads this replica's record (if any) and everyone's counts. */
  static async open(storage: LearnedStorage, replica: string, options: LearnedStoreOptions = {}): Promise<LearnedPopularityStore> {
    const own = await readJson(storage, learnedPopularityKeys.replica(replica));
    const counter = new ReplicaCounter(replica, options.limits ?? DEFAULT_LIMITS, own === undefined ? undefined : parseReplicaRecord(own));
    const refreshEvery = options.refreshEvery ?? 8;
    if (!Number.isInteger(refreshEvery) || refreshEvery < 1) throw new Error(`refreshEvery must be a whole number of at least 1, got ${refreshEvery}`);
    const store = new LearnedPopularityStore(storage, counter, refreshEvery);
    // A record that lost its place in the index to a concurrent write gets it back.
    if (own !== undefined && !(await store.#index()).includes(replica)) await store.save();
    await store.refresh();
    return store;
  }

  /** What the layering should use now. */
  current(): LearnedPopularity {
    return this.#view;
  }

  /**
   * Counts an image this replica built (`key` identifies it, `closurePaths`
   * are its store paths) and saves this replica's record; every
   * `refreshEvery` images, re-reads all replicas.
   */
  async observeImage(key: string, closurePaths: readonly string[]): Promise<void> {
    if (!this.#counter.observe(key, closurePaths)) return;
    await this.save();
    if (++this.#sinceRefresh >= this.#refreshEvery) await this.refresh();
  }

  /** Writes this replica's record, and puts it in the index if it is missing there. */
  async save(): Promise<void> {
    const record = this.#counter.record();
    await this.#storage.put(learnedPopularityKeys.replica(record.replica), encoder.encode(JSON.stringify(record)), 'application/json');
    const index = await this.#index();
    if (!index.includes(record.replica)) {
      await this.#storage.put(learnedPopularityKeys.index, encoder.encode(JSON.stringify([...index, record.replica].sort())), 'application/json');
    }
  }

  /** Reads every replica's record and merges them with this replica's own counts. */
  async refresh(): Promise<void> {
    this.#sinceRefresh = 0;
    const records: ReplicaRecord[] = [this.#counter.record()];
    for (const replica of await this.#index()) {
      if (replica === this.#counter.replica) continue;
      // A replica listed but not yet saved, or a record that does not parse, adds nothing.
      try {
        const json = await readJson(this.#storage, learnedPopularityKeys.replica(replica));
        if (json !== undefined) records.push(parseReplicaRecord(json));
      } catch (err) {
        if (err instanceof SyntaxError || (err as Error).message.includes('learned popularity record')) continue;
        throw err;
      }
    }
    this.#view = mergeRecords(records);
  }

  async #index(): Promise<string[]> {
    const json = await readJson(this.#storage, learnedPopularityKeys.index);
    if (!Array.isArray(json)) return [];
    return json.filter((r): r is string => typeof r === 'string' && REPLICA_ID.test(r));
  }
}

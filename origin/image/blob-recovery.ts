// A layer blob is a cache entry, not the only copy: when it is gone from
// storage (deleted by GC, an operator or a bucket lifecycle rule) or has the
// wrong size (truncated), the blob-sources index names the layer whose record
// says which store paths made it, and the layer is written again from them,
// with the same digest (layers are reproducible) or not at all. The store
// paths are rooted while they are read (nix/gc-roots.ts), so the origin's own
// garbage collection cannot take them half way through the tarball. Paths a
// collection took already are fetched again from the binary caches when a
// `realise` is given (a store path names its contents, so the cache's copy is
// the same; the digest check stays the judge); a path no cache has (built
// here from a local package set) leaves the blob unknown.
//
// A rebuild costs what a build's last steps do (fetching paths, tar, gzip),
// and layer digests are public (every manifest names them): a caller on a
// client's behalf passes `admit` (the origin's build queue, http/registry.ts),
// which one rebuild per digest takes however many ask for it, and a digest
// that could not be rebuilt for a client is answered as lost to clients for
// `rememberLostMs`, so asking again costs nothing meanwhile. The origin's
// own repairs (the builder's, retention's, the scrub's) pass no `admit`:
// they always try, outside the queue, and never wait on a client's
// rebuild that the queue may still refuse.
import type { Logger } from 'pino';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import { Lru } from '../../shared/lru.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { storePathEntries, type TarEntry } from '../layers/entries.ts';
import { symlinkTreeEntries } from '../layers/symlink-tree.ts';
import type { Storage } from '../storage/storage.ts';
import { missingStorePaths, type GcRoots } from '../nix/gc-roots.ts';
import type { BlobSource, LayerRecipe, LayerStore } from './layer-store.ts';

export interface BlobRecoveryStats {
  recovered: number;
  unrecoverable: number;
  /** Store paths fetched again (from binary caches) to rebuild a blob. */
  pathsRealised: number;
}

/** Makes missing store paths valid again (nix.ts realisePaths: substitution); throws when it cannot. */
export type RealisePaths = (paths: readonly string[]) => Promise<void>;

/** The store paths a recipe reads: they must all exist for the layer to be made again. */
export function recipePaths(recipe: LayerRecipe): string[] {
  return recipe.kind === 'store-paths' ? recipe.paths : recipe.outputs;
}

function recipeEntries(recipe: LayerRecipe): Promise<TarEntry[]> {
  return recipe.kind === 'store-paths' ? storePathEntries(recipe.paths) : symlinkTreeEntries(recipe.outputs);
}

export interface BlobRecoveryOptions {
  /** Milliseconds a digest that could not be rebuilt is answered as lost without trying again (FAILURE_TTL); 0: never. */
  rememberLostMs?: number;
  now?: () => number;
}

/** Runs a rebuild when the caller's queue allows (or refuses it with a 429). */
export type AdmitRebuild = <T>(work: () => Promise<T>) => Promise<T>;

export class BlobRecovery {
  /** The origin's own repairs, and clients' rebuilds: apart, so that neither waits on the other's admission. */
  private readonly flights = new SingleFlight<number | null>();
  private readonly clientFlights = new SingleFlight<number | null>();
  private readonly lostUntil = new Lru<string, number>(4096);
  private readonly rememberLostMs: number;
  private readonly now: () => number;
  // A digest's size never changes: remembered, so a blob request costs no extra reads after the first.
  private readonly sizes = new Lru<string, number | null>(8192);
  readonly stats: BlobRecoveryStats = { recovered: 0, unrecoverable: 0, pathsRealised: 0 };

  private readonly storage: Storage;
  private readonly layers: LayerStore;
  private readonly log: Logger;
  private readonly roots: GcRoots | undefined;
  private readonly realise: RealisePaths | undefined;

  constructor(storage: Storage, layers: LayerStore, log: Logger, roots?: GcRoots, realise?: RealisePaths, options: BlobRecoveryOptions = {}) {
    this.storage = storage;
    this.layers = layers;
    this.log = log;
    this.roots = roots;
    this.realise = realise;
    this.rememberLostMs = options.rememberLostMs ?? 0;
    this.now = options.now ?? Date.now;
  }

  /** The size a blob must have, from its layer record; null when no record knows the blob. */
  async expectedSize(digest: Digest): Promise<number | null> {
    const known = this.sizes.get(digest);
    if (known !== undefined) return known;
    const size = (await this.recordOf(digest))?.size ?? null;
    this.sizes.set(digest, size);
    return size;
  }

  private async recordOf(digest: Digest) {
    const source = await this.storage.get(STORAGE_KEYS.blobSource(digestHex(digest)));
    if (!source) return null;
    const record = await this.layers.record((JSON.parse(new TextDecoder().decode(source)) as BlobSource).layer);
    return record && record.digest === digest ? record : null;
  }

  /**
   * Makes a missing or damaged layer blob again; returns its size, or null
   * when nothing knows how (no record, or its store paths are gone). With
   * `admit` (a client's request), the rebuild runs under it, once however
   * many ask, and a loss found a moment ago is answered without a look.
   */
  async recover(digest: Digest, admit?: AdmitRebuild): Promise<number | null> {
    if (admit === undefined) return this.flights.run(digest, () => this.rebuild(digest, false)).result;
    if ((this.lostUntil.get(digest) ?? 0) > this.now()) return null;
    return this.clientFlights.run(digest, () => admit(() => this.rebuild(digest, true))).result;
  }

  private async rebuild(digest: Digest, forClient: boolean): Promise<number | null> {
    const lost = (why: string) => this.lost(digest, why, forClient);
    const record = await this.recordOf(digest);
    if (!record?.recipe) return lost('no layer record with a recipe');
    const recipe = record.recipe;
    const held = this.roots?.hold();
    try {
      const paths = recipePaths(recipe);
      // Rooted first: a path fetched again below is kept from the moment it is valid.
      let missing = held ? await held.protect(paths) : await missingStorePaths(paths);
      if (missing.length > 0 && this.realise) missing = await this.fetchAgain(digest, missing);
      if (missing.length > 0) return lost(`store paths gone: ${missing.join(' ')}`);
      const key = STORAGE_KEYS.blob(digestHex(digest));
      const present = await this.storage.stat(key);
      // Create-only commits keep an existing object, so a damaged one must go first.
      if (present && present.size !== record.size) await this.storage.delete(key);
      if (!(await this.layers.rewrite(record, await recipeEntries(recipe)))) return lost('the rebuilt layer has another digest');
      this.stats.recovered++;
      this.log.warn({ digest, size: record.size, damaged: present !== null }, 'lost blob rebuilt from its layer record');
      return record.size;
    } finally {
      await held?.release();
    }
  }

  /** Fetches missing store paths from the binary caches; returns those still missing. */
  private async fetchAgain(digest: Digest, missing: string[]): Promise<string[]> {
    try {
      await this.realise!(missing);
    } catch (err) {
      this.log.warn({ digest, paths: missing.length, err }, 'store paths of a lost blob cannot be fetched again');
      return missingStorePaths(missing);
    }
    const still = await missingStorePaths(missing);
    this.stats.pathsRealised += missing.length - still.length;
    this.log.info({ digest, paths: missing.length - still.length }, 'store paths of a lost blob fetched again');
    return still;
  }

  private lost(digest: Digest, why: string, forClient: boolean): null {
    this.stats.unrecoverable++;
    if (forClient && this.rememberLostMs > 0) this.lostUntil.set(digest, this.now() + this.rememberLostMs);
    this.log.warn({ digest, why }, 'blob cannot be rebuilt');
    return null;
  }
}


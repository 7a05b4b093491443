// The search index of each version of the package set: evaluated with Nix
// once per source version, stored, and kept in memory. A search never runs
// Nix; only the first search (or build from the page) of a new version does.
//
// A source that names its version (a git commit, a pinned channel) has its
// index stored under `index/<hash>.json`, so every replica and every restart
// shares one evaluation. A local path cannot name its version: its index is
// kept in memory only and evaluated again after `pathTtlSeconds`, as the
// directory may have changed.
//
// Any 40-character commit is a tag, so stored indexes are bounded in number
// (MAX_STORED_INDEXES): past it, the oldest written go first, but the ones
// this origin was asked for lately go last, least lately asked first
// (`latest`'s, written first and asked for most, must not be the first to
// go); one asked for again is evaluated again.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { MEDIA } from '../../shared/media-types.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { NIX_SYSTEM } from '../../shared/names.ts';
import { Lru } from '../../shared/lru.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import { errors } from '../../shared/errors.ts';
import { NixError, NixFetchError, evaluatePackageIndex, type NixOptions, type NixSource, type RawPackageIndex } from '../nix/nix.ts';
import { ungated, type TagWorkGate } from '../nix/tag-work-gate.ts';
import type { PackageSource } from '../sources/source.ts';
import type { ListedObject, Storage } from '../storage/storage.ts';
import { PackageIndex } from './package-index.ts';

/** The index is of amd64's package set: what the page builds by default; arm64 names are nearly always the same. */
const INDEX_SYSTEM = NIX_SYSTEM.amd64;

/**
 * The storage key of the index of one source version: `index/<sha256 of the
 * source cache key and system>.json` (a cache key holds URLs, which are no
 * storage key).
 */
export function indexStorageKey(sourceCacheKey: string, system: string = INDEX_SYSTEM): string {
  return STORAGE_KEYS.index(createHash('sha256').update(JSON.stringify(['index', sourceCacheKey, system])).digest('hex'));
}

export interface IndexesOptions {
  source: PackageSource;
  storage: Storage;
  nix: NixOptions;
  log: Logger;
  /** Seconds an index of a local path is kept before it is evaluated again. */
  pathTtlSeconds?: number;
  /** Injected for tests of the cache; Nix's evaluation by default. */
  evaluate?: (source: NixSource, system: string, options: NixOptions) => Promise<RawPackageIndex>;
  /**
   * Runs each load of an index, from storage or by evaluation (the origin's
   * evaluation queue and failure memory, nix/tag-work-gate.ts): any
   * 40-character commit is a tag, and each new one would otherwise start an
   * evaluation of a whole package set. At once if absent.
   */
  gate?: TagWorkGate;
  /** Stored indexes kept at most (MAX_STORED_INDEXES unless a test says otherwise). */
  maxStored?: number;
}

/** Stored indexes kept at most: tens of MB each for nixpkgs, so a couple of GB in all. */
export const MAX_STORED_INDEXES = 64;

/** How many of the indexes asked for lately trimming deletes last, whatever their age. */
const RECENT_KEPT = 8;

/** Nixpkgs' whole index takes a minute or more to evaluate: longer than one image's evaluation may. */
const MIN_INDEX_TIMEOUT_SECONDS = 600;

export class PackageIndexes {
  private readonly opts: IndexesOptions;
  // A real nixpkgs index is tens of MB in memory: a few versions at most.
  private readonly memory = new Lru<string, { index: PackageIndex; until: number }>(4);
  private readonly flights = new SingleFlight<PackageIndex>();
  /** Storage keys of the indexes asked for lately, with when (a counter): trimmed last. */
  private readonly recent = new Lru<string, number>(RECENT_KEPT);
  private asked = 0;
  /** Nix evaluations of an index so far (for tests and logs). */
  evaluations = 0;

  constructor(opts: IndexesOptions) {
    this.opts = opts;
  }

  /** The index of the package set a tag selects. */
  async forTag(tag: string): Promise<PackageIndex> {
    const resolved = await this.opts.source.resolve(tag).catch((err: unknown) => {
      throw indexError(err);
    });
    const memoryKey = resolved.cacheKey ?? `uncacheable:${JSON.stringify(resolved.nix)}`;
    const storageKey = resolved.cacheKey === null ? null : indexStorageKey(resolved.cacheKey);
    if (storageKey !== null) this.recent.set(storageKey, ++this.asked);
    const known = this.memory.get(memoryKey);
    if (known && known.until > Date.now()) return known.index;
    // The whole load goes through the gate, not only an evaluation: reading a stored index back
    // is tens of MB to parse and sort, and memory holds few, so versions asked for in turn would
    // otherwise each load at once, as many as were asked for.
    return this.flights.run(memoryKey, () =>
      (this.opts.gate ?? ungated)(`index ${memoryKey}`, async () => {
        const ttl = resolved.cacheKey === null ? (this.opts.pathTtlSeconds ?? 300) * 1000 : Number.POSITIVE_INFINITY;
        let raw: RawPackageIndex | null = null;
        if (storageKey !== null) {
          const stored = await this.opts.storage.get(storageKey);
          if (stored) raw = JSON.parse(new TextDecoder().decode(stored)) as RawPackageIndex;
        }
        if (raw === null) {
          raw = await this.evaluate(resolved.nix);
          if (storageKey !== null) {
            await this.opts.storage.put(storageKey, new TextEncoder().encode(JSON.stringify(raw)), MEDIA.json);
            await this.trimStored();
          }
        }
        const index = new PackageIndex(raw);
        this.memory.set(memoryKey, { index, until: Date.now() + ttl });
        return index;
      }),
    ).result;
  }

  /** Deletes stored indexes past the bound, in the order the header says; a failure costs disk for a while, never the search. */
  private async trimStored(): Promise<void> {
    const max = this.opts.maxStored ?? MAX_STORED_INDEXES;
    try {
      const stored: ListedObject[] = [];
      for await (const object of this.opts.storage.list(STORAGE_KEYS.index.prefix)) {
        if (STORAGE_KEYS.index.parse(object.key) !== null) stored.push(object);
      }
      if (stored.length <= max) return;
      // Not asked for lately, oldest written first; then those asked for lately, least lately first.
      const asked = (object: ListedObject) => this.recent.peek(object.key) ?? -1;
      stored.sort((a, b) => asked(a) - asked(b) || a.written - b.written);
      const old = stored.slice(0, stored.length - max);
      for (const object of old) await this.opts.storage.delete(object.key);
      this.opts.log.info({ deleted: old.length, kept: max }, 'oldest stored search indexes deleted');
    } catch (err) {
      this.opts.log.warn({ err }, 'stored search indexes could not be trimmed');
    }
  }

  private async evaluate(source: NixSource): Promise<RawPackageIndex> {
    const started = performance.now();
    const evaluate = this.opts.evaluate ?? evaluatePackageIndex;
    const nix = { ...this.opts.nix, timeoutSeconds: Math.max(this.opts.nix.timeoutSeconds, MIN_INDEX_TIMEOUT_SECONDS) };
    this.evaluations++;
    let raw: RawPackageIndex;
    try {
      raw = await evaluate(source, INDEX_SYSTEM, nix);
    } catch (err) {
      throw indexError(err);
    }
    this.opts.log.info({ packages: raw.packages.length, sets: raw.sets.length, ms: Math.round(performance.now() - started) }, 'package index evaluated');
    return raw;
  }
}

/** A failed resolution or evaluation of an index, as the registry answers it (and the failure memory keeps it). */
function indexError(err: unknown): unknown {
  if (err instanceof NixFetchError) return errors.manifestUnknown(err.message, { nix: err.stderr });
  if (err instanceof NixError) return errors.internal(`cannot index the package set: ${err.message}`, { nix: err.stderr });
  return err;
}

// Writes each distinct layer once. A layer's identity is the hash of what it
// holds (its sorted store paths, or the symlink tree's targets); the record
// of its digests is written next to the blobs only after the blob itself was
// committed, so every record points at a blob that exists (as Nixery does).
import type { Logger } from 'pino';
import type { Storage } from '../storage/storage.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA } from '../../shared/media-types.ts';
import { Lru } from '../../shared/lru.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import { writeLayerTarball } from '../layers/tarball.ts';
import type { TarEntry } from '../layers/entries.ts';

/** How a layer is made again: whole store paths, or the symlink tree of an image's outputs. */
export type LayerRecipe = { kind: 'store-paths'; paths: string[] } | { kind: 'symlink-tree'; outputs: string[] };

export interface LayerRecord {
  digest: Digest;
  diffId: Digest;
  size: number;
  /** Absent in records written before blobs could be rebuilt. */
  recipe?: LayerRecipe;
}

/** The reverse index entry: which layer a blob is, so a request for a lost blob finds its recipe. */
export interface BlobSource {
  layer: string;
}

export interface LayerStoreStats {
  hits: number;
  misses: number;
  bytesWritten: number;
}

export class LayerStore {
  private readonly storage: Storage;
  private readonly memory = new Lru<string, LayerRecord>(4096);
  private readonly flights = new SingleFlight<LayerRecord>();
  private readonly log: Logger;
  readonly stats: LayerStoreStats = { hits: 0, misses: 0, bytesWritten: 0 };

  constructor(storage: Storage, log: Logger) {
    this.storage = storage;
    this.log = log;
  }

  /** Returns the layer with this identity, writing it from `entries()` if no replica has yet. */
  ensure(id: string, entries: () => Promise<TarEntry[]>, signal?: AbortSignal, recipe?: LayerRecipe): Promise<LayerRecord> {
    return this.flights.run(id, async () => {
      // Remembered records are checked too: retention may have deleted the
      // blob since (origin/gc/retention-run.ts), and an image must never be
      // built on a layer that is gone. One stat per layer of a build.
      const cached = this.memory.get(id);
      if (cached && (await this.storage.stat(STORAGE_KEYS.blob(digestHex(cached.digest))))) {
        this.stats.hits++;
        return cached;
      }
      const stored = await this.storage.get(STORAGE_KEYS.layer(id));
      if (stored) {
        const record = JSON.parse(new TextDecoder().decode(stored)) as LayerRecord;
        // A record whose blob vanished (bucket cleaned by hand) is rebuilt rather than trusted.
        if (await this.storage.stat(STORAGE_KEYS.blob(digestHex(record.digest)))) {
          this.stats.hits++;
          this.memory.set(id, record);
          return record;
        }
      }
      this.stats.misses++;
      const record = await this.write(id, await entries(), signal, recipe);
      this.memory.set(id, record);
      return record;
    }).result;
  }

  /** The stored record of a layer by its identity; null when none was written. */
  async record(id: string): Promise<LayerRecord | null> {
    const stored = await this.storage.get(STORAGE_KEYS.layer(id));
    return stored ? (JSON.parse(new TextDecoder().decode(stored)) as LayerRecord) : null;
  }

  /**
   * Writes a layer's blob again from its entries, committing it only if it
   * has the digest its record says (layers are reproducible; a store path
   * changed under the same name must never be served under the old digest).
   */
  async rewrite(record: LayerRecord, entries: TarEntry[], signal?: AbortSignal): Promise<boolean> {
    const staged = await this.storage.stage();
    try {
      const digests = await writeLayerTarball(entries, staged.stream, signal ? { signal } : {});
      if (digests.digest !== record.digest || digests.size !== record.size) {
        await staged.abort();
        this.log.error({ expected: record.digest, got: digests.digest, size: digests.size }, 'a rebuilt layer differs from its record; not stored');
        return false;
      }
      await staged.commit(STORAGE_KEYS.blob(digestHex(digests.digest)), MEDIA.dockerLayer);
      this.stats.bytesWritten += digests.size;
      return true;
    } catch (err) {
      await staged.abort();
      throw err;
    }
  }

  private async write(id: string, entries: TarEntry[], signal?: AbortSignal, recipe?: LayerRecipe): Promise<LayerRecord> {
    const started = performance.now();
    const staged = await this.storage.stage();
    let digests;
    try {
      digests = await writeLayerTarball(entries, staged.stream, signal ? { signal } : {});
      await staged.commit(STORAGE_KEYS.blob(digestHex(digests.digest)), MEDIA.dockerLayer);
    } catch (err) {
      await staged.abort();
      throw err;
    }
    const record: LayerRecord = { digest: digests.digest, diffId: digests.diffId, size: digests.size, ...(recipe ? { recipe } : {}) };
    await this.storage.put(STORAGE_KEYS.layer(id), new TextEncoder().encode(JSON.stringify(record)), MEDIA.json);
    if (recipe) {
      const source: BlobSource = { layer: id };
      await this.storage.put(STORAGE_KEYS.blobSource(digestHex(record.digest)), new TextEncoder().encode(JSON.stringify(source)), MEDIA.json);
    }
    this.stats.bytesWritten += digests.size;
    this.log.info({ layer: id, digest: record.digest, size: record.size, tarSize: digests.tarSize, pieces: digests.gzip.pieces, storedPieces: digests.gzip.storedPieces, entries: entries.length, ms: Math.round(performance.now() - started) }, 'layer written');
    return record;
  }
}

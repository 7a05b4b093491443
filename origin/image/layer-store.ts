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

export interface LayerRecord {
  digest: Digest;
  diffId: Digest;
  size: number;
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
  ensure(id: string, entries: () => Promise<TarEntry[]>, signal?: AbortSignal): Promise<LayerRecord> {
    const cached = this.memory.get(id);
    if (cached) {
      this.stats.hits++;
      return Promise.resolve(cached);
    }
    return this.flights.run(id, async () => {
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
      const record = await this.write(id, await entries(), signal);
      this.memory.set(id, record);
      return record;
    }).result;
  }

  private async write(id: string, entries: TarEntry[], signal?: AbortSignal): Promise<LayerRecord> {
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
    const record: LayerRecord = { digest: digests.digest, diffId: digests.diffId, size: digests.size };
    await this.storage.put(STORAGE_KEYS.layer(id), new TextEncoder().encode(JSON.stringify(record)), MEDIA.json);
    this.stats.bytesWritten += digests.size;
    this.log.info({ layer: id, digest: record.digest, size: record.size, tarSize: digests.tarSize, entries: entries.length, ms: Math.round(performance.now() - started) }, 'layer written');
    return record;
  }
}

// Manifests and configs are derived data: an image record keeps the input
// they are made from (its layers, arch, packages, command), an index record
// the image records of its platforms, and the image-sources index maps each
// of their digests to that record. A manifest
// or config lost from storage is made again from it, byte for byte (the
// serialisation is deterministic), or not at all.
import type { Logger } from 'pino';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import { Lru } from '../../shared/lru.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import { intact, type ImageRecord, type ImageStore } from './image-store.ts';
import { buildManifests, type SerializedBlob } from './manifest.ts';
import { buildIndexes, type IndexMember } from './image-index.ts';

export class ManifestRecovery {
  private readonly flights = new SingleFlight<boolean>();
  private readonly storage: Storage;
  private readonly images: ImageStore;
  private readonly log: Logger;
  // A config's size never changes: remembered once known. So is a digest no
  // record names as its config (a layer from before blob-sources, any blob
  // not a config): without, each request for such a blob read storage again.
  private readonly configSizes = new Lru<string, number | null>(8192);
  recovered = 0;

  constructor(storage: Storage, images: ImageStore, log: Logger) {
    this.storage = storage;
    this.images = images;
    this.log = log;
  }

  /**
   * The size a config blob must have, derived from the image record that
   * names it; null when no record names it as its config. A config whose
   * stored size differs was truncated and is as good as missing.
   */
  async expectedConfigSize(digest: Digest): Promise<number | null> {
    const known = this.configSizes.get(digest);
    if (known !== undefined) return known;
    const size = await this.configSizeOf(digest);
    this.configSizes.set(digest, size);
    return size;
  }

  private async configSizeOf(digest: Digest): Promise<number | null> {
    const key = await this.images.imageOf(digest);
    if (key === null) return null;
    const record = await this.images.storedRecord(key);
    if (!record?.recipe || record.config !== digest) return null;
    const config = (await buildManifests(record.recipe)).config;
    return config.digest === digest ? config.bytes.length : null;
  }

  /** Writes the config and manifests of the image this digest belongs to again; false when no record can. */
  recover(digest: Digest): Promise<boolean> {
    return this.flights.run(digest, async () => {
      const key = await this.images.imageOf(digest);
      if (key === null) return false;
      const record = await this.images.storedRecord(key);
      const parts = record ? await this.derive(record) : null;
      if (!parts) return false;
      if (!parts.some((p) => p.digest === digest)) {
        this.log.error({ digest, image: key }, 're-derived manifests differ from the record; not stored');
        return false;
      }
      for (const part of parts) {
        const keyOf = part.isConfig ? STORAGE_KEYS.blob(digestHex(part.digest)) : STORAGE_KEYS.manifest(digestHex(part.digest));
        const present = await this.storage.get(keyOf);
        if (present && intact(part.digest, present)) continue;
        if (present) await this.storage.delete(keyOf);
        await this.storage.put(keyOf, part.bytes, part.mediaType, { createOnly: true });
      }
      this.recovered++;
      this.log.warn({ digest, image: key }, 'lost manifest or config re-derived from its image record');
      return true;
    }).result;
  }

  /**
   * What a record derives: an image's config and manifests from its recipe;
   * an index's two formats from its platforms' records (their manifests and
   * architectures, in the record's order). Null when the record cannot say.
   */
  private async derive(record: ImageRecord): Promise<(SerializedBlob & { isConfig: boolean })[] | null> {
    if (record.recipe) {
      const built = await buildManifests(record.recipe);
      return [{ ...built.config, isConfig: true }, { ...built.manifests.docker, isConfig: false }, { ...built.manifests.oci, isConfig: false }];
    }
    if (!record.members || record.members.length === 0) return null;
    const members: IndexMember[] = [];
    for (const key of record.members) {
      const member = await this.images.storedRecord(key);
      if (!member?.recipe) return null;
      members.push({ arch: member.recipe.arch, manifests: member.manifests });
    }
    const indexes = await buildIndexes(members);
    return [{ ...indexes.docker, isConfig: false }, { ...indexes.oci, isConfig: false }];
  }
}

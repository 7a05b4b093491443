// Manifests and configs are derived data: an image record keeps the input
// they are made from (its layers, arch, packages, command), and the
// image-sources index maps each of their digests to that record. A manifest
// or config lost from storage is made again from it, byte for byte (the
// serialisation is deterministic), or not at all.
import type { Logger } from 'pino';
import { createHash } from 'node:crypto';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { SingleFlight } from '../../shared/single-flight.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import type { ImageSource, ImageStore } from './image-store.ts';
import { buildManifests } from './manifest.ts';

export class ManifestRecovery {
  private readonly flights = new SingleFlight<boolean>();
  private readonly storage: Storage;
  private readonly images: ImageStore;
  private readonly log: Logger;
  recovered = 0;

  constructor(storage: Storage, images: ImageStore, log: Logger) {
    this.storage = storage;
    this.images = images;
    this.log = log;
  }

  /**
   * Whether bytes read under a digest are what the digest says (a damaged
   * manifest counts as lost). Asked on every manifest served, so hashed
   * here, in a few microseconds, rather than with WebCrypto, whose digest
   * is a job on libuv's thread pool: one more trip through a busy event
   * loop for every cached pull.
   */
  static async intact(digest: Digest, bytes: Uint8Array): Promise<boolean> {
    return `sha256:${createHash('sha256').update(bytes).digest('hex')}` === digest;
  }

  /** Writes the config and manifests of the image this digest belongs to again; false when no record can. */
  recover(digest: Digest): Promise<boolean> {
    return this.flights.run(digest, async () => {
      const source = await this.storage.get(STORAGE_KEYS.imageSource(digestHex(digest)));
      if (!source) return false;
      const key = (JSON.parse(new TextDecoder().decode(source)) as ImageSource).image;
      const record = await this.images.storedRecord(key);
      if (!record?.recipe) return false;
      const built = await buildManifests(record.recipe);
      const parts = [built.config, built.manifests.docker, built.manifests.oci];
      if (!parts.some((p) => p.digest === digest)) {
        this.log.error({ digest, image: key }, 're-derived manifests differ from the record; not stored');
        return false;
      }
      for (const part of parts) {
        const keyOf = part === built.config ? STORAGE_KEYS.blob(digestHex(part.digest)) : STORAGE_KEYS.manifest(digestHex(part.digest));
        const present = await this.storage.get(keyOf);
        if (present && (await ManifestRecovery.intact(part.digest, present))) continue;
        if (present) await this.storage.delete(keyOf);
        await this.storage.put(keyOf, part.bytes, part.mediaType, { createOnly: true });
      }
      this.recovered++;
      this.log.warn({ digest, image: key }, 'lost manifest or config re-derived from its image record');
      return true;
    }).result;
  }
}

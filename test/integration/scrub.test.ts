// The scrub (origin/gc/scrub.ts) against real filesystem storage, with the
// real blob and manifest recovery, while "builds" write new images beside it:
// the writes are injected into the scrub's own listing (a storage wrapper), at
// the moment a long scrub would see them. The images' layers name store paths
// that do not exist here, so an object the scrub wrongly took for missing
// could not be made again and would cost the image its record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import type { ListedObject, Storage } from '../../origin/storage/storage.ts';
import { scrub } from '../../origin/gc/scrub.ts';
import { BlobRecovery } from '../../origin/image/blob-recovery.ts';
import { ManifestRecovery } from '../../origin/image/manifest-recovery.ts';
import { ImageStore, type ImageRecord } from '../../origin/image/image-store.ts';
import { LayerStore } from '../../origin/image/layer-store.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Digest } from '../../shared/digest.ts';

const log = pino({ level: 'silent' });
const encode = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const hexOf = (text: string) => createHash('sha256').update(text).digest('hex');
const digestOf = (text: string): Digest => `sha256:${hexOf(text)}`;

/** Puts bytes under their own digest (the scrub checks every object against its name). */
async function putObject(storage: Storage, family: typeof STORAGE_KEYS.blob, text: string): Promise<Digest> {
  await storage.put(family(hexOf(text)), encode(text), 'application/octet-stream', { createOnly: true });
  return digestOf(text);
}

/** One image as a build writes it: layer blob and records, config, manifests, image-sources, the record last. */
async function writeImage(storage: Storage, key: string): Promise<void> {
  const layer = await putObject(storage, STORAGE_KEYS.blob, `layer ${key}`);
  await storage.put(STORAGE_KEYS.layer(`id-${key}`), encode({ digest: layer, diffId: digestOf(`diff ${key}`), size: 6 + key.length, recipe: { kind: 'store-paths', paths: [`/nix/store/not-on-this-machine-${key}`] } }), 'application/json');
  await storage.put(STORAGE_KEYS.blobSource(layer.slice(7)), encode({ layer: `id-${key}` }), 'application/json');
  const config = await putObject(storage, STORAGE_KEYS.blob, `config ${key}`);
  const docker = await putObject(storage, STORAGE_KEYS.manifest, `docker ${key}`);
  const oci = await putObject(storage, STORAGE_KEYS.manifest, `oci ${key}`);
  const record: ImageRecord = {
    manifests: { docker: { digest: docker, size: 1 }, oci: { digest: oci, size: 1 } },
    config,
    recipe: { arch: 'amd64', packages: [key], layers: [{ digest: layer, diffId: digestOf(`diff ${key}`), size: 1, description: key }] },
  };
  for (const digest of [config, docker, oci]) await storage.put(STORAGE_KEYS.imageSource(digest.slice(7)), encode({ image: key }), 'application/json');
  await storage.put(STORAGE_KEYS.image(key), encode(record), 'application/json');
}

async function writeIndex(storage: Storage, key: string, members: string[]): Promise<void> {
  const docker = await putObject(storage, STORAGE_KEYS.manifest, `docker ${key}`);
  const oci = await putObject(storage, STORAGE_KEYS.manifest, `oci ${key}`);
  for (const digest of [docker, oci]) await storage.put(STORAGE_KEYS.imageSource(digest.slice(7)), encode({ image: key }), 'application/json');
  await storage.put(STORAGE_KEYS.image(key), encode({ manifests: { docker: { digest: docker, size: 1 }, oci: { digest: oci, size: 1 } }, members } satisfies ImageRecord), 'application/json');
}

test('images built while the scrub runs keep their records: objects written after its listing are not missing, nor is a platform record its listing passed', { timeout: 60_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'scrub-'));
  try {
    const storage = new FilesystemStorage(root);
    await storage.init();
    await writeImage(storage, 'old');
    // Every listing of blobs and manifests (step 1) is taken before the builds below; the listing
    // of image records (step 2) passed where the platform's record lands before it was written, and
    // saw the image and the index written after it.
    const scrubbed: Storage = Object.create(storage) as Storage;
    scrubbed.list = async function* (prefix: string): AsyncIterable<ListedObject> {
      const listed: ListedObject[] = [];
      for await (const object of storage.list(prefix)) listed.push(object);
      if (prefix === STORAGE_KEYS.image.prefix) {
        await writeImage(storage, 'built-during-the-scrub');
        await writeImage(storage, 'platform');
        await writeIndex(storage, 'index', ['platform']);
        for await (const object of storage.list(prefix)) if (object.key !== STORAGE_KEYS.image('platform') && !listed.some((l) => l.key === object.key)) listed.push(object);
      }
      yield* listed;
    };
    const images = new ImageStore(storage);
    const report = await scrub({ storage: scrubbed, blobs: new BlobRecovery(storage, new LayerStore(storage, log), log), manifests: new ManifestRecovery(storage, images, log) });
    assert.deepEqual(report.droppedImages, []);
    assert.deepEqual(report.missing, []);
    assert.deepEqual(report.damaged, []);
    for (const key of ['old', 'built-during-the-scrub', 'platform', 'index']) assert.ok(await storage.stat(STORAGE_KEYS.image(key)), key);

    // What is really gone is still found: the new image's layer deleted, which nothing here can make again.
    await storage.delete(STORAGE_KEYS.blob(hexOf('layer built-during-the-scrub')));
    const again = await scrub({ storage, blobs: new BlobRecovery(storage, new LayerStore(storage, log), log), manifests: new ManifestRecovery(storage, images, log) });
    assert.deepEqual(again.missing, [{ digest: digestOf('layer built-during-the-scrub'), image: 'built-during-the-scrub', repaired: false }]);
    assert.deepEqual(again.droppedImages, ['built-during-the-scrub']);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

// Pulls an image from an origin and checks that it is complete and
// byte-correct: every blob's bytes hash to its digest, every layer's
// uncompressed tar to the config's diff_id, and every layer is exactly the
// tarball the origin's own code makes from its recipe's store paths in the
// store this test process sees (layers are reproducible, so the same store
// paths give the same digest wherever they were built).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { MEDIA } from '../../shared/media-types.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { writeLayerTarball } from '../../origin/layers/tarball.ts';
import { storePathEntries } from '../../origin/layers/entries.ts';
import { symlinkTreeEntries } from '../../origin/layers/symlink-tree.ts';
import type { BlobSource, LayerRecord } from '../../origin/image/layer-store.ts';

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export interface PulledImage {
  manifest: { config: { digest: string }; layers: { digest: string; size: number }[] };
  /** Each layer's gzip blob, in manifest order. */
  blobs: Uint8Array[];
}

/** GETs the manifest, config and layers, checking every digest, size and diff_id. */
export async function pullVerified(origin: string, name: string, tag = 'latest'): Promise<PulledImage> {
  const res = await fetch(`${origin}/v2/${name}/manifests/${tag}`, { headers: { accept: MEDIA.dockerManifest } });
  const body = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.status, 200, `${name}: ${new TextDecoder().decode(body)}`);
  assert.equal(sha256(body), res.headers.get('docker-content-digest'), `${name}: the manifest hashes to its digest`);
  const manifest = JSON.parse(new TextDecoder().decode(body)) as PulledImage['manifest'];
  const blob = async (digest: string) => {
    const r = await fetch(`${origin}/v2/${name}/blobs/${digest}`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    assert.equal(r.status, 200, `${name}: blob ${digest}`);
    assert.equal(sha256(bytes), digest, `${name}: blob ${digest} hashes to its digest`);
    return bytes;
  };
  const config = JSON.parse(new TextDecoder().decode(await blob(manifest.config.digest))) as { rootfs: { diff_ids: string[] } };
  assert.equal(config.rootfs.diff_ids.length, manifest.layers.length);
  const blobs: Uint8Array[] = [];
  for (const [i, layer] of manifest.layers.entries()) {
    const bytes = await blob(layer.digest);
    assert.equal(bytes.byteLength, layer.size, `${name}: layer ${layer.digest} has the size the manifest says`);
    assert.equal(sha256(gunzipSync(bytes)), config.rootfs.diff_ids[i], `${name}: layer ${layer.digest} unpacks to its diff_id`);
    blobs.push(bytes);
  }
  return { manifest, blobs };
}

/** The recipe a filesystem-storage origin recorded for a layer blob. */
export async function layerRecordOf(storagePath: string, digest: string): Promise<LayerRecord> {
  const read = async (key: string) => JSON.parse(await readFile(join(storagePath, ...key.split('/')), 'utf8')) as unknown;
  const hex = digest.slice('sha256:'.length);
  const source = (await read(STORAGE_KEYS.blobSource(hex))) as BlobSource;
  return (await read(STORAGE_KEYS.layer(source.layer))) as LayerRecord;
}

/** The digest the origin's code gives a recipe's layer when reading the store this process sees. */
export async function referenceDigest(record: LayerRecord): Promise<string> {
  assert.ok(record.recipe, 'the layer record has a recipe');
  const entries = record.recipe.kind === 'store-paths' ? await storePathEntries(record.recipe.paths) : await symlinkTreeEntries(record.recipe.outputs);
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  return (await writeLayerTarball(entries, sink)).digest;
}

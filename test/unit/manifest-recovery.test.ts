// ManifestRecovery.expectedConfigSize, asked on every blob request the origin
// answers that is not a known layer (origin/http/registry.ts): what it costs in
// storage reads, against the real filesystem backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import type { Storage } from '../../origin/storage/storage.ts';
import { ImageStore } from '../../origin/image/image-store.ts';
import { ManifestRecovery } from '../../origin/image/manifest-recovery.ts';
import { buildManifests, type ImageConfigInput } from '../../origin/image/manifest.ts';

const log = pino({ level: 'silent' });

test('a config size is read from storage once per digest, and so is the answer that a digest is no config', { timeout: 30_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'manifest-recovery-'));
  try {
    const storage = new FilesystemStorage(root);
    await storage.init();
    const input: ImageConfigInput = { arch: 'amd64', packages: ['hello'], layers: [{ digest: `sha256:${'a'.repeat(64)}`, diffId: `sha256:${'b'.repeat(64)}`, size: 10, description: 'hello' }] };
    const built = await buildManifests(input);
    const images = new ImageStore(storage);
    await images.remember('hello', await images.saveManifests(built, input));

    let reads = 0;
    const counted: Storage = Object.create(storage) as Storage;
    counted.get = async (key: string) => (reads++, await storage.get(key));
    const recovery = new ManifestRecovery(counted, new ImageStore(counted), log);

    assert.equal(await recovery.expectedConfigSize(built.config.digest), built.config.bytes.length);
    const forConfig = reads;
    assert.ok(forConfig > 0);
    assert.equal(await recovery.expectedConfigSize(built.config.digest), built.config.bytes.length);
    assert.equal(reads, forConfig, 'a known config size costs no read');

    // A blob no record names as its config (a layer without a blob-sources entry).
    const layer = `sha256:${'c'.repeat(64)}` as const;
    assert.equal(await recovery.expectedConfigSize(layer), null);
    const forLayer = reads - forConfig;
    assert.ok(forLayer > 0);
    for (let i = 0; i < 5; i++) assert.equal(await recovery.expectedConfigSize(layer), null);
    assert.equal(reads - forConfig, forLayer, 'asked again, it costs no read');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

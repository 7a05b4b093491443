// What a retention run and the scrub cost as storage grows: synthetic images
// written as the origin writes them (layers with their records, config,
// manifests, image-sources, the record last), a third of them idle, on the
// filesystem backend and on the GCS emulator. For each size: the dry run, the
// run that deletes, and the scrub over what remains, with the origin
// process's peak resident memory while each ran. Prints a markdown table.
//
//   npm run bench:gc                  # filesystem 1,000 and 5,000 images, GCS 300
//   GC_BENCH_SIZES=200 npm run bench:gc
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { GcsStorage } from '../../origin/storage/gcs.ts';
import type { Storage } from '../../origin/storage/storage.ts';
import { runRetention } from '../../origin/gc/retention-run.ts';
import { scrub } from '../../origin/gc/scrub.ts';
import { BlobRecovery } from '../../origin/image/blob-recovery.ts';
import { ManifestRecovery } from '../../origin/image/manifest-recovery.ts';
import { ImageStore } from '../../origin/image/image-store.ts';
import { LayerStore } from '../../origin/image/layer-store.ts';
import { mapLimit } from '../../origin/image/map-limit.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { startGcsEmulator } from '../../test/support/gcs-emulator.ts';
import { serviceAccountKeys } from '../../test/support/signing-key.ts';

const DAY = 86_400_000;
const LAYERS_PER_IMAGE = 8;
/** Layers shared by many images (a base), the rest each image's own. */
const SHARED_LAYERS = 20;
const LAYER_BYTES = 16 * 1024;
const log = pino({ level: 'silent' });
const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function fill(storage: Storage, images: number): Promise<void> {
  const shared = Array.from({ length: SHARED_LAYERS }, () => randomBytes(LAYER_BYTES));
  const writeLayer = async (bytes: Uint8Array) => {
    const hex = sha(bytes);
    await storage.put(STORAGE_KEYS.blob(hex), bytes, 'application/octet-stream', { createOnly: true });
    await storage.put(STORAGE_KEYS.layer(`id-${hex}`), encode({ digest: `sha256:${hex}`, diffId: `sha256:${hex}`, size: bytes.length, recipe: { kind: 'store-paths', paths: [`/nix/store/${hex}`] } }), 'application/json');
    await storage.put(STORAGE_KEYS.blobSource(hex), encode({ layer: `id-${hex}` }), 'application/json');
    return { digest: `sha256:${hex}` as const, diffId: `sha256:${hex}` as const, size: bytes.length, description: hex };
  };
  await mapLimit(Array.from({ length: images }, (_, i) => i), 16, async (i) => {
    const layers = [];
    for (let l = 0; l < LAYERS_PER_IMAGE; l++) layers.push(await writeLayer(l < 3 ? shared[(i + l) % SHARED_LAYERS]! : randomBytes(LAYER_BYTES)));
    const parts = ['config', 'docker', 'oci'].map((p) => new TextEncoder().encode(`${p} of image ${i}`));
    await storage.put(STORAGE_KEYS.blob(sha(parts[0]!)), parts[0]!, 'application/json', { createOnly: true });
    for (const m of parts.slice(1)) await storage.put(STORAGE_KEYS.manifest(sha(m)), m, 'application/json', { createOnly: true });
    for (const p of parts) await storage.put(STORAGE_KEYS.imageSource(sha(p)), encode({ image: `image-${i}` }), 'application/json');
    const record = {
      manifests: { docker: { digest: `sha256:${sha(parts[1]!)}`, size: parts[1]!.length }, oci: { digest: `sha256:${sha(parts[2]!)}`, size: parts[2]!.length } },
      config: `sha256:${sha(parts[0]!)}`,
      recipe: { arch: 'amd64', packages: [`p${i}`], layers },
    };
    await storage.put(STORAGE_KEYS.image(`image-${i}`), encode(record), 'application/json');
  });
}

async function measure<T>(work: () => Promise<T>): Promise<{ result: T; ms: number; peakMiB: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  const started = performance.now();
  try {
    const result = await work();
    return { result, ms: performance.now() - started, peakMiB: Math.max(peak, process.memoryUsage.rss()) / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

const rows: string[] = [];
async function bench(backend: string, storage: Storage, images: number): Promise<void> {
  await fill(storage, images);
  // A third idle (no use recorded, so they count from when written, 40 "days" ago by the clock); the rest used yesterday.
  const now = Date.now() + 40 * DAY;
  const lastUsed = async (key: string) => (Number(key.slice('image-'.length)) % 3 === 0 ? null : now - DAY);
  const options = { storage, policy: { maxIdleMs: 30 * DAY, graceMs: DAY }, lastUsed, now: () => now };
  const dry = await measure(() => runRetention({ ...options, dryRun: true }));
  const run = await measure(() => runRetention(options));
  const images2 = new ImageStore(storage);
  const verify = await measure(() => scrub({ storage, blobs: new BlobRecovery(storage, new LayerStore(storage, log), log), manifests: new ManifestRecovery(storage, images2, log) }));
  const r = run.result;
  rows.push(
    `| ${backend} | ${images} | ${r.stored.objects} | ${(r.stored.bytes / 2 ** 20).toFixed(1)} | ${r.images.length} / ${r.objects.length} / ${r.records.length} | ` +
      `${dry.ms.toFixed(0)} | ${run.ms.toFixed(0)} | ${verify.ms.toFixed(0)} (${verify.result.read} read) | ${Math.max(dry.peakMiB, run.peakMiB).toFixed(0)} / ${verify.peakMiB.toFixed(0)} |`,
  );
}

const sizes = (process.env.GC_BENCH_SIZES ?? '1000,5000').split(',').map(Number);
for (const images of sizes) {
  const root = await mkdtemp(join(tmpdir(), 'bench-gc-'));
  try {
    const storage = new FilesystemStorage(root);
    await storage.init();
    await bench('filesystem', storage, images);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
const emulator = await startGcsEmulator();
try {
  const keys = serviceAccountKeys();
  const account = 'bench@demo-nixery-edge.iam.gserviceaccount.com';
  const storage = new GcsStorage({
    bucket: 'nixery-bench-gc',
    apiEndpoint: emulator.url,
    clientOptions: { projectId: 'demo-nixery-edge', credentials: { client_email: account, private_key: keys.privateKey } },
    signing: { account, privateKeyPem: keys.privateKey },
  });
  await bench('GCS emulator', storage, Number(process.env.GC_BENCH_GCS_IMAGES ?? 300));
} finally {
  await emulator.stop();
}

console.log(`Retention and scrub, ${LAYERS_PER_IMAGE} layers of ${LAYER_BYTES / 1024} KiB per image (3 of them from ${SHARED_LAYERS} shared), a third of the images idle.\n`);
console.log('| storage | images | blobs + manifests | MiB | deleted: images / objects / records | dry run ms | run ms | scrub ms | peak RSS MiB: runs / scrub |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);

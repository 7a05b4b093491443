// A retention run against real storage (the filesystem, and the GCS emulator
// from firebase-tools): images and their objects written as an origin writes
// them, the clock moved forward instead of waiting days, and what is left in
// storage checked key by key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { GcsStorage } from '../../origin/storage/gcs.ts';
import type { Storage } from '../../origin/storage/storage.ts';
import { runRetention } from '../../origin/gc/retention-run.ts';
import { RetentionSchedule } from '../../origin/gc/retention-schedule.ts';
import { StoredUsageLog } from '../../origin/gc/usage.ts';
import type { ImageRecord } from '../../origin/image/image-store.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Digest } from '../../shared/digest.ts';
import { startGcsEmulator, type GcsEmulator } from '../support/gcs-emulator.ts';
import { serviceAccountKeys } from '../support/signing-key.ts';

const DAY = 86_400_000;
const policy = { maxIdleMs: 30 * DAY, graceMs: DAY };
const encode = (value: unknown) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const hexOf = (name: string) => createHash('sha256').update(name).digest('hex');
const digestOf = (name: string): Digest => `sha256:${hexOf(name)}`;

/** Writes one image as the origin does: layers (blob, layer record, blob-sources), config and manifests, image-sources, the record last. */
async function writeImage(storage: Storage, key: string, layers: string[]): Promise<ImageRecord> {
  for (const layer of layers) {
    await storage.put(STORAGE_KEYS.blob(hexOf(layer)), encode(`layer ${layer}`), 'application/octet-stream', { createOnly: true });
    await storage.put(STORAGE_KEYS.layer(`id-${layer}`), encode({ digest: digestOf(layer), diffId: digestOf(`diff ${layer}`), size: 6 + layer.length, recipe: { kind: 'store-paths', paths: [`/nix/store/${layer}`] } }), 'application/json');
    await storage.put(STORAGE_KEYS.blobSource(hexOf(layer)), encode({ layer: `id-${layer}` }), 'application/json');
  }
  await storage.put(STORAGE_KEYS.blob(hexOf(`config ${key}`)), encode(`config ${key}`), 'application/json', { createOnly: true });
  for (const format of ['docker', 'oci']) await storage.put(STORAGE_KEYS.manifest(hexOf(`${format} ${key}`)), encode(`${format} ${key}`), 'application/json', { createOnly: true });
  const record: ImageRecord = {
    manifests: { docker: { digest: digestOf(`docker ${key}`), size: 1 }, oci: { digest: digestOf(`oci ${key}`), size: 1 } },
    config: digestOf(`config ${key}`),
    recipe: { arch: 'amd64', packages: [key], layers: layers.map((l) => ({ digest: digestOf(l), diffId: digestOf(`diff ${l}`), size: 1, description: l })) },
  };
  for (const part of [`config ${key}`, `docker ${key}`, `oci ${key}`]) await storage.put(STORAGE_KEYS.imageSource(hexOf(part)), encode({ image: key }), 'application/json');
  await storage.put(STORAGE_KEYS.image(key), encode(record), 'application/json');
  return record;
}

async function writeIndex(storage: Storage, key: string, members: string[]): Promise<void> {
  for (const format of ['docker', 'oci']) await storage.put(STORAGE_KEYS.manifest(hexOf(`${format} ${key}`)), encode(`${format} ${key}`), 'application/json', { createOnly: true });
  const record: ImageRecord = { manifests: { docker: { digest: digestOf(`docker ${key}`), size: 1 }, oci: { digest: digestOf(`oci ${key}`), size: 1 } }, members };
  await storage.put(STORAGE_KEYS.image(key), encode(record), 'application/json');
}

async function keys(storage: Storage): Promise<string[]> {
  const out = [];
  for await (const object of storage.list('')) out.push(object.key);
  return out.sort();
}

const exists = async (storage: Storage, key: string) => (await storage.stat(key)) !== null;

function backendTests(name: string, open: () => Promise<{ storage: Storage; close(): Promise<void> }>): void {
  describe(name, () => {
    test('an idle image goes with what only it used; shared layers, used images and an index with its platforms stay; records of what went follow after the grace period', async () => {
      const { storage, close } = await open();
      try {
        await writeImage(storage, 'idle', ['only-idle', 'shared']);
        await writeImage(storage, 'used', ['shared', 'only-used']);
        await writeImage(storage, 'platform-of-used-index', ['arm-layer']);
        await writeIndex(storage, 'used-index', ['platform-of-used-index']);
        await writeImage(storage, 'platform-of-idle-index', ['idle-arm-layer']);
        await writeIndex(storage, 'idle-index', ['platform-of-idle-index']);
        await storage.put(STORAGE_KEYS.usage('idle'), encode({ lastUsed: 0 }), 'application/json');
        await storage.put(STORAGE_KEYS.usage('used'), encode({ lastUsed: 0 }), 'application/json');
        const everything = await keys(storage);
        const now = Date.now() + 40 * DAY;
        const lastUsed = async (key: string) => (key === 'used' || key === 'used-index' ? now - DAY : null);

        const dry = await runRetention({ storage, policy, lastUsed, now: () => now, dryRun: true });
        assert.deepEqual(dry.images, ['idle-index', 'idle', 'platform-of-idle-index']);
        assert.deepEqual(await keys(storage), everything, 'a dry run deletes nothing');

        const report = await runRetention({ storage, policy, lastUsed, now: () => now });
        assert.deepEqual(report.images, dry.images);
        assert.deepEqual(report.records.sort(), dry.records.sort());
        assert.equal(report.records.length, 6, 'the image-sources of both idle images');
        assert.deepEqual(report.deleted, { objects: report.objects.length, records: 6 });
        assert.deepEqual(report.objects.map((o) => o.key).sort(), dry.objects.map((o) => o.key).sort());
        assert.equal(report.pinnedBy, null);
        const gone = [
          ...['only-idle', 'config idle', 'idle-arm-layer', 'config platform-of-idle-index'].map((n) => STORAGE_KEYS.blob(hexOf(n))),
          ...['idle', 'platform-of-idle-index', 'idle-index'].flatMap((k) => ['docker', 'oci'].map((f) => STORAGE_KEYS.manifest(hexOf(`${f} ${k}`)))),
        ];
        assert.deepEqual(report.objects.map((o) => o.key).sort(), gone.sort());
        assert.equal(report.bytes, report.objects.reduce((sum, o) => sum + o.size, 0));
        assert.equal(report.stored.objects, everything.filter((k) => k.startsWith('blobs/') || k.startsWith('manifests/')).length);
        for (const key of ['idle', 'idle-index', 'platform-of-idle-index']) assert.equal(await exists(storage, STORAGE_KEYS.image(key)), false, key);
        // The usage record of an image that went goes with it.
        assert.equal(await exists(storage, STORAGE_KEYS.usage('idle')), false);
        assert.ok(await exists(storage, STORAGE_KEYS.usage('used')));
        for (const key of ['used', 'used-index', 'platform-of-used-index']) assert.ok(await exists(storage, STORAGE_KEYS.image(key)), key);
        for (const layer of ['shared', 'only-used', 'arm-layer']) assert.ok(await exists(storage, STORAGE_KEYS.blob(hexOf(layer))), layer);
        // The image-sources of what went are dead at once; the layer records outlive their blobs by the grace period.
        assert.equal(await exists(storage, STORAGE_KEYS.imageSource(hexOf('config idle'))), false);
        assert.ok(await exists(storage, STORAGE_KEYS.imageSource(hexOf('config used'))));
        assert.ok(await exists(storage, STORAGE_KEYS.layer('id-only-idle')));
        assert.ok(await exists(storage, STORAGE_KEYS.blobSource(hexOf('only-idle'))));

        // A usage record whose image record is gone (dropped by hand) is dead once older than the grace period.
        await storage.put(STORAGE_KEYS.usage('dropped-by-hand'), encode({ lastUsed: 0 }), 'application/json');
        // Within the grace period after the blobs went, a second run keeps their records; past it, they go.
        const soon = await runRetention({ storage, policy, lastUsed, now: () => Date.now() + DAY / 2 });
        assert.deepEqual(soon.records, []);
        const later = await runRetention({ storage, policy, lastUsed: async () => Date.now(), now: () => Date.now() + 2 * DAY });
        assert.deepEqual(later.images, []);
        assert.deepEqual(later.records.sort(), [
          STORAGE_KEYS.blobSource(hexOf('idle-arm-layer')),
          STORAGE_KEYS.blobSource(hexOf('only-idle')),
          STORAGE_KEYS.layer('id-idle-arm-layer'),
          STORAGE_KEYS.layer('id-only-idle'),
          STORAGE_KEYS.usage('dropped-by-hand'),
        ].sort());
        for (const key of later.records) assert.equal(await exists(storage, key), false, key);
        assert.ok(await exists(storage, STORAGE_KEYS.layer('id-shared')));
      } finally {
        await close();
      }
    });

    test('objects younger than the grace period stay unreferenced, and a record without references pins every object', async () => {
      const { storage, close } = await open();
      try {
        await storage.put(STORAGE_KEYS.blob(hexOf('in flight')), encode('in flight'), 'application/octet-stream');
        await writeImage(storage, 'old', ['old-layer']);
        const report = await runRetention({ storage, policy, lastUsed: async () => null, now: () => Date.now() + DAY / 2 });
        assert.deepEqual(report.images, []);
        assert.deepEqual(report.objects, []);

        await storage.put(STORAGE_KEYS.image('legacy'), encode({ manifests: { docker: { digest: digestOf('x'), size: 1 }, oci: { digest: digestOf('y'), size: 1 } } }), 'application/json');
        const before = await keys(storage);
        const pinned = await runRetention({ storage, policy, lastUsed: async (key) => (key === 'legacy' ? Date.now() + 40 * DAY : null), now: () => Date.now() + 40 * DAY });
        assert.equal(pinned.pinnedBy, 'legacy');
        assert.deepEqual(pinned.images, ['old']);
        assert.deepEqual(pinned.objects, []);
        assert.deepEqual(pinned.records, []);
        assert.deepEqual(await keys(storage), before.filter((k) => k !== STORAGE_KEYS.image('old')));
      } finally {
        await close();
      }
    });

    test('an image written again after the run listed the images keeps what it references', async () => {
      const { storage, close } = await open();
      try {
        const now = Date.now() + 40 * DAY;
        await writeImage(storage, 'idle', ['layer']);
        const storageWithRebuild: Storage = Object.create(storage) as Storage;
        let deletedRecord = false;
        storageWithRebuild.delete = async (key: string) => {
          await storage.delete(key);
          // The image record goes, and at once a build writes it again (reusing every object), before the objects are considered.
          if (key === STORAGE_KEYS.image('idle') && !deletedRecord) {
            deletedRecord = true;
            await writeImage(storage, 'idle', ['layer']);
          }
        };
        const raced = await runRetention({ storage: storageWithRebuild, policy, lastUsed: async () => null, now: () => now });
        assert.deepEqual(raced.images, ['idle']);
        assert.deepEqual(raced.objects, []);
        assert.ok(await exists(storage, STORAGE_KEYS.image('idle')));
        assert.ok(await exists(storage, STORAGE_KEYS.blob(hexOf('layer'))));
        assert.ok(await exists(storage, STORAGE_KEYS.imageSource(hexOf('config idle'))));
      } finally {
        await close();
      }
    });

    test('an image pulled or built again after the run read its last use is not deleted, nor its usage record, nor what it references', async () => {
      const { storage, close } = await open();
      try {
        const now = Date.now() + 40 * DAY;
        await writeImage(storage, 'pulled', ['pulled-layer']);
        await writeImage(storage, 'platform', ['platform-layer']);
        await writeIndex(storage, 'pulled-index', ['platform']);
        await writeImage(storage, 'rebuilt', ['rebuilt-layer']);
        await writeImage(storage, 'idle', ['idle-layer']);
        const usage = new StoredUsageLog(storage, { intervalMs: 3_600_000 });
        // Every image is idle when the run reads its last use; right after that reading, a pull
        // touches two of them (an index too) and a build writes one's record again.
        const lastUsed = async (key: string) => {
          const used = await usage.lastUsed(key);
          if (key === 'pulled' || key === 'pulled-index') await usage.touch(key, now);
          if (key === 'rebuilt') await writeImage(storage, 'rebuilt', ['rebuilt-layer']);
          return used;
        };
        const report = await runRetention({ storage, policy, lastUsed, now: () => now });
        assert.deepEqual(report.images, ['idle']);
        for (const key of ['pulled', 'pulled-index', 'platform', 'rebuilt']) assert.ok(await exists(storage, STORAGE_KEYS.image(key)), key);
        for (const key of ['pulled', 'pulled-index']) assert.ok(await exists(storage, STORAGE_KEYS.usage(key)), `usage of ${key}`);
        for (const layer of ['pulled-layer', 'platform-layer', 'rebuilt-layer', 'config pulled', 'config rebuilt']) assert.ok(await exists(storage, STORAGE_KEYS.blob(hexOf(layer))), layer);
        for (const name of ['docker pulled-index', 'oci platform']) assert.ok(await exists(storage, STORAGE_KEYS.manifest(hexOf(name))), name);
        assert.ok(await exists(storage, STORAGE_KEYS.imageSource(hexOf('config pulled'))));
        assert.equal(await exists(storage, STORAGE_KEYS.image('idle')), false);
        assert.equal(await exists(storage, STORAGE_KEYS.blob(hexOf('idle-layer'))), false);
        assert.deepEqual(report.objects.map((o) => o.key).sort(), [STORAGE_KEYS.blob(hexOf('idle-layer')), STORAGE_KEYS.blob(hexOf('config idle')), ...['docker', 'oci'].map((f) => STORAGE_KEYS.manifest(hexOf(`${f} idle`)))].sort());
      } finally {
        await close();
      }
    });

    test('the last use of an image written within the idle horizon is not read: it cannot be idle', async () => {
      const { storage, close } = await open();
      try {
        await writeImage(storage, 'recent', ['recent-layer']);
        const asked: string[] = [];
        const lastUsed = async (key: string) => (asked.push(key), 0);
        const report = await runRetention({ storage, policy, lastUsed, now: () => Date.now() + 2 * DAY });
        assert.deepEqual(asked, []);
        assert.deepEqual(report.images, []);
        const old = await runRetention({ storage, policy, lastUsed, now: () => Date.now() + 40 * DAY });
        assert.deepEqual(asked, ['recent', 'recent'], 'asked when listed, and again before the deletion');
        assert.deepEqual(old.images, ['recent']);
      } finally {
        await close();
      }
    });

    test('an image recorded while its objects were being deleted gets them made again, and keeps their records', async () => {
      const { storage, close } = await open();
      try {
        await writeImage(storage, 'idle', ['layer']);
        const now = Date.now() + 40 * DAY;
        const racing: Storage = Object.create(storage) as Storage;
        let built = false;
        racing.delete = async (key: string) => {
          await storage.delete(key);
          // The first layer blob goes; at once a build that had found it remembers an image naming it.
          if (key === STORAGE_KEYS.blob(hexOf('layer')) && !built) {
            built = true;
            await writeImage(storage, 'other', []);
            const record = JSON.parse(new TextDecoder().decode((await storage.get(STORAGE_KEYS.image('other')))!)) as ImageRecord;
            record.recipe!.layers = [{ digest: digestOf('layer'), diffId: digestOf('diff layer'), size: 1, description: 'layer' }];
            await storage.put(STORAGE_KEYS.image('other'), encode(record), 'application/json');
          }
        };
        // A recording stand-in for recovery, which needs a Nix store (the real one runs in test/e2e/gc-cli.test.ts).
        const asked: string[] = [];
        const report = await runRetention({ storage: racing, policy, lastUsed: async () => null, now: () => now, repair: async (digest) => (asked.push(digest), true) });
        assert.ok(built);
        assert.deepEqual(asked, [digestOf('layer')]);
        assert.deepEqual(report.remade, [{ digest: digestOf('layer'), made: true }]);
        // Its layer record stays whatever the clock says: an image names it.
        const later = await runRetention({ storage, policy, lastUsed: async () => Date.now(), now: () => Date.now() + 2 * DAY });
        assert.ok(!later.records.includes(STORAGE_KEYS.layer('id-layer')));
        assert.ok(await exists(storage, STORAGE_KEYS.layer('id-layer')));
        assert.ok(await exists(storage, STORAGE_KEYS.blobSource(hexOf('layer'))));
      } finally {
        await close();
      }
    });

    test('scheduled runs never overlap, and a run recorded by another replica within the interval is not repeated', async () => {
      const { storage, close } = await open();
      try {
        const lines: string[] = [];
        const log = { info: (_o: object, m: string) => lines.push(m), warn: (_o: object, m: string) => lines.push(m) };
        const options = { storage, policy, lastUsed: async () => null, intervalMs: 3_600_000, log };
        const first = new RetentionSchedule({ ...options, replicaId: 'a' });
        const [one, two] = [first.runIfDue(), first.runIfDue()];
        assert.equal(one, two, 'a second call joins the run in flight');
        assert.ok(await one);
        const other = new RetentionSchedule({ ...options, replicaId: 'b' });
        assert.equal(await other.runIfDue(), null);
        assert.ok(await new RetentionSchedule({ ...options, replicaId: 'b', now: () => Date.now() + 2 * 3_600_000 }).runIfDue());
        assert.deepEqual(lines, ['retention run', 'retention run']);
        assert.equal(first.stats.runs, 1);
        assert.notEqual(first.stats.storedObjects, null);
      } finally {
        await close();
      }
    });

    test('a run in progress holds a lease no other replica runs beside, renewed while it lasts; a lease left by a crashed run expires', async () => {
      const { storage, close } = await open();
      try {
        await writeImage(storage, 'image', ['layer']);
        const log = { info: () => undefined, warn: () => undefined };
        const intervalMs = 3_600_000;
        // The first replica's run stops in its reading of last use until released.
        let release!: () => void;
        const released = new Promise<void>((resolve) => (release = resolve));
        let reading!: () => void;
        const isReading = new Promise<void>((resolve) => (reading = resolve));
        // Its clock 40 days on: the image is old enough for its last use to be asked.
        const later = () => Date.now() + 40 * DAY;
        const slow = new RetentionSchedule({ storage, policy, intervalMs, log, replicaId: 'a', lastUsed: async () => (reading(), await released, null), now: later });
        const running = slow.runIfDue();
        await isReading;
        const lease = JSON.parse(new TextDecoder().decode((await storage.get(STORAGE_KEYS.retentionRun('')))!)) as { replica: string; running: boolean };
        assert.deepEqual({ replica: lease.replica, running: lease.running }, { replica: 'a', running: true });
        // Another replica checks while it runs, even an interval later by its clock (the run outlasting its
        // check period): it leaves the run alone.
        const other = new RetentionSchedule({ storage, policy, intervalMs, log, replicaId: 'b', lastUsed: async () => null, now: () => Date.now() + 10 * 60_000 });
        assert.equal(await other.runIfDue(), null);
        release();
        const ran = await running;
        assert.ok(ran);
        // A scheduled run counts what it deleted without listing it: the image's layer, config and two manifests, its three image-sources entries.
        assert.deepEqual({ objects: ran.objects, records: ran.records, deleted: ran.deleted }, { objects: [], records: [], deleted: { objects: 4, records: 3 } });
        const ended = JSON.parse(new TextDecoder().decode((await storage.get(STORAGE_KEYS.retentionRun('')))!)) as { replica: string; running: boolean };
        assert.deepEqual({ replica: ended.replica, running: ended.running }, { replica: 'a', running: false });

        // A lease not renewed for three check periods (15 min each here) is a dead run's: taken over.
        const stale = { at: Date.now() - 46 * 60_000, replica: 'crashed', running: true };
        await storage.put(STORAGE_KEYS.retentionRun(''), encode(stale), 'application/json');
        assert.ok(await new RetentionSchedule({ storage, policy, intervalMs, log, replicaId: 'b', lastUsed: async () => null }).runIfDue());
        // A fresh one is not, though no run has ended within the interval.
        await storage.put(STORAGE_KEYS.retentionRun(''), encode({ ...stale, at: Date.now() - 20 * 60_000 }), 'application/json');
        assert.equal(await new RetentionSchedule({ storage, policy, intervalMs, log, replicaId: 'b', lastUsed: async () => null }).runIfDue(), null);

        // With a 4 s interval the check period is 1 s: a run held for 2.5 s renews its lease meanwhile.
        let hold!: () => void;
        const held = new Promise<void>((resolve) => (hold = resolve));
        let started!: () => void;
        const isStarted = new Promise<void>((resolve) => (started = resolve));
        await writeImage(storage, 'another', ['another-layer']);
        const long = new RetentionSchedule({ storage, policy, intervalMs: 4000, log, replicaId: 'c', lastUsed: async () => (started(), await held, null), now: later });
        const longRun = long.runIfDue();
        await isStarted;
        const leaseAt = async () => (JSON.parse(new TextDecoder().decode((await storage.get(STORAGE_KEYS.retentionRun('')))!)) as { at: number }).at;
        const first = await leaseAt();
        await new Promise((resolve) => setTimeout(resolve, 2500));
        assert.ok((await leaseAt()) >= first + 1000, 'the lease was renewed');
        hold();
        assert.ok(await longRun);
      } finally {
        await close();
      }
    });
  });
}

backendTests('filesystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'retention-'));
  const storage = new FilesystemStorage(root);
  await storage.init();
  return { storage, close: () => rm(root, { recursive: true, force: true }) };
});

let emulator: GcsEmulator | undefined;
let buckets = 0;
before(async () => {
  emulator = await startGcsEmulator();
});
after(async () => {
  await emulator?.stop();
});
backendTests('GCS emulator', async () => {
  const keys = serviceAccountKeys();
  const account = 'origin@demo-nixery-edge.iam.gserviceaccount.com';
  const storage = new GcsStorage({
    bucket: `nixery-retention-${++buckets}`,
    apiEndpoint: emulator!.url,
    clientOptions: { projectId: 'demo-nixery-edge', credentials: { client_email: account, private_key: keys.privateKey } },
    signing: { account, privateKeyPem: keys.privateKey },
  });
  return { storage, close: async () => undefined };
});

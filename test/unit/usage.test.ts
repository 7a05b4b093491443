// Last use of images: when a usage write is due, what a replica writes to
// real (filesystem) storage, which digests the origin still serves, which
// hits the edge batches, and the report's grammar on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { StoredUsageLog, usageWriteDue } from '../../origin/gc/usage.ts';
import { ImageHits } from '../../origin/gc/image-hits.ts';
import { ImageStore, type ImageRecord } from '../../origin/image/image-store.ts';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';
import { HitBatch } from '../../edge/hit-batch.ts';
import { HitReporter } from '../../edge/hit-reports.ts';
import { OriginClient } from '../../edge/origin.ts';
import { readConfig as readEdgeConfig } from '../../edge/env.ts';
import { ScriptedOrigin } from '../support/scripted-origin.ts';
import { HIT_REPORT_LIMITS, HIT_REPORT_PATH, hitReportAnswer, hitReportBody, parseHitReport, parseHitReportAnswer } from '../../shared/hit-report.ts';
import { RegistryError } from '../../shared/errors.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { MEDIA } from '../../shared/media-types.ts';
import type { Digest } from '../../shared/digest.ts';

const HOUR = 3_600_000;
const d = (c: string): Digest => `sha256:${c.repeat(64)}`;

async function withStorage(work: (storage: FilesystemStorage) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'usage-'));
  try {
    const storage = new FilesystemStorage(dir);
    await storage.init();
    await work(storage);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a usage write is due the first time, then once an interval has passed, or when the clock went back', () => {
  assert.equal(usageWriteDue(undefined, 5, HOUR), true);
  assert.equal(usageWriteDue(1_000, 1_000 + HOUR - 1, HOUR), false);
  assert.equal(usageWriteDue(1_000, 1_000 + HOUR, HOUR), true);
  assert.equal(usageWriteDue(1_000, 999, HOUR), true);
});

test('a replica writes an image’s use once an interval, and another replica writes its own', async () => {
  await withStorage(async (storage) => {
    const replica = new StoredUsageLog(storage, { intervalMs: HOUR });
    assert.equal(await replica.lastUsed('img'), null);
    await replica.touch('img', 10_000);
    assert.equal(await replica.lastUsed('img'), 10_000);
    await replica.touch('img', 20_000);
    assert.equal(await replica.lastUsed('img'), 10_000, 'within the interval: not written again');
    await replica.touch('img', 10_000 + HOUR);
    assert.equal(await replica.lastUsed('img'), 10_000 + HOUR);
    const other = new StoredUsageLog(storage, { intervalMs: HOUR });
    await other.touch('img', 30_000 + HOUR);
    assert.equal(await replica.lastUsed('img'), 30_000 + HOUR);
    assert.ok(await storage.stat(STORAGE_KEYS.usage('img')));
    await storage.put(STORAGE_KEYS.usage('damaged'), new TextEncoder().encode('{"lastUsed":'), MEDIA.json);
    assert.equal(await replica.lastUsed('damaged'), null);
  });
});

test('a reported digest touches its image while the image record exists; once it is deleted the digest is unknown within an interval', async () => {
  await withStorage(async (storage) => {
    const images = new ImageStore(storage);
    const usage = new StoredUsageLog(storage, { intervalMs: HOUR });
    const hits = new ImageHits(storage, images, usage, { intervalMs: HOUR, log: pino({ level: 'silent' }) });
    const record: ImageRecord = { manifests: { docker: { digest: d('a'), size: 1 }, oci: { digest: d('b'), size: 1 } } };
    await images.remember('index-key', record);
    assert.equal(await images.imageOf(d('b')), 'index-key', 'an index record is in the image-sources index too');

    assert.deepEqual(await hits.report([d('a'), d('c')], 1_000), [d('c')], 'a digest no image has is unknown');
    assert.equal(await usage.lastUsed('index-key'), 1_000);

    await storage.delete(STORAGE_KEYS.image('index-key'));
    assert.deepEqual(await hits.report([d('b')], 2_000), [], 'the record was seen less than an interval ago');
    assert.deepEqual(await hits.report([d('a'), d('b')], 1_000 + HOUR), [d('a'), d('b')]);
    assert.equal(await usage.lastUsed('index-key'), 1_000, 'a gone image is not touched');

    // A manifest stored without any record (written before indexes were indexed) is still served.
    await storage.put(STORAGE_KEYS.manifest('e'.repeat(64)), new TextEncoder().encode('{}'), MEDIA.json);
    assert.deepEqual(await hits.report([d('e')], 3_000), []);
  });
});

test('a digest whose image-sources entry moved to another image credits that image within an interval', async () => {
  await withStorage(async (storage) => {
    const images = new ImageStore(storage);
    const usage = new StoredUsageLog(storage, { intervalMs: HOUR });
    const hits = new ImageHits(storage, images, usage, { intervalMs: HOUR, log: pino({ level: 'silent' }) });
    const record: ImageRecord = { manifests: { docker: { digest: d('a'), size: 1 }, oci: { digest: d('b'), size: 1 } } };
    await images.remember('older-build', record);
    assert.deepEqual(await hits.report([d('a')], 1_000), []);
    assert.equal(await usage.lastUsed('older-build'), 1_000);

    // The same manifest built from a newer package set: its record takes the index entry over.
    await images.remember('newer-build', record);
    assert.deepEqual(await hits.report([d('a')], 1_000 + HOUR), []);
    assert.equal(await usage.lastUsed('newer-build'), 1_000 + HOUR);
    assert.equal(await usage.lastUsed('older-build'), 1_000, 'the older image is no longer credited');

    // Retention deleted the image the entry named and pointed the entry at one it keeps.
    await storage.delete(STORAGE_KEYS.image('newer-build'));
    await images.remember('keeper', record);
    assert.deepEqual(await hits.report([d('a')], 1_000 + 2 * HOUR), []);
    assert.equal(await usage.lastUsed('keeper'), 1_000 + 2 * HOUR);
  });
});

test('the edge queues a digest once an interval, and says when a batch is full', () => {
  const batch = new HitBatch({ intervalMs: HOUR, maxBatch: 3 });
  assert.equal(batch.add(d('a'), 'https://r.example', 0), 'queued');
  assert.equal(batch.add(d('a'), 'https://r.example', 10), 'reported');
  assert.equal(batch.add(d('b'), 'https://r.example', 20), 'queued');
  assert.equal(batch.add(d('c'), 'https://other.example', 30), 'full');
  assert.deepEqual([...batch.take()], [[d('a'), 'https://r.example'], [d('b'), 'https://r.example'], [d('c'), 'https://other.example']]);
  assert.equal(batch.size, 0);
  assert.equal(batch.add(d('a'), 'https://r.example', HOUR - 1), 'reported', 'sent, still within its interval');
  assert.equal(batch.add(d('a'), 'https://r.example', HOUR), 'queued');
  assert.equal(batch.add(d('b'), 'https://r.example', 5), 'queued', 'a clock that went back reports again');
  assert.equal(batch.take().size, 2);
  batch.forget(d('c'));
  assert.equal(batch.add(d('c'), 'https://r.example', 40), 'queued', 'a digest the origin dropped is news when served again');
});

test('a report is refused whole for a malformed digest, too many digests or another shape, in the registry’s format', () => {
  assert.deepEqual(parseHitReport(JSON.parse(hitReportBody([d('a'), d('b'), d('a')]))), [d('a'), d('b')]);
  const refusal = (value: unknown, code: string) =>
    assert.throws(() => parseHitReport(value), (err: unknown) => err instanceof RegistryError && err.code === code && err.status === 400);
  refusal({ digests: ['sha256:abc'] }, 'DIGEST_INVALID');
  refusal({ digests: [`md5:${'a'.repeat(32)}`] }, 'DIGEST_INVALID');
  refusal({ digests: [42] }, 'DIGEST_INVALID');
  refusal({ digests: Array.from({ length: HIT_REPORT_LIMITS.maxDigests + 1 }, () => d('a')) }, 'QUERY_INVALID');
  refusal({ digests: 'sha256:x' }, 'QUERY_INVALID');
  refusal(null, 'QUERY_INVALID');
  assert.ok(hitReportBody(Array.from({ length: HIT_REPORT_LIMITS.maxDigests }, () => d('f'))).length < HIT_REPORT_LIMITS.maxBodyBytes, 'a full batch fits the body limit');
});

test('the edge takes from the origin’s answer only digests it reported', () => {
  const sent = new Set([d('a'), d('b')]);
  assert.deepEqual(parseHitReportAnswer(hitReportAnswer([d('b'), d('c')]), sent), [d('b')]);
  assert.equal(parseHitReportAnswer('not json', sent), null);
  assert.equal(parseHitReportAnswer('{"gone":[]}', sent), null);
});

test('the edge sends hits within the delay as one report, drops a failed one without retrying, and forgets what the origin no longer has', async (t) => {
  // A stand-in origin (a fake: the real one runs in test/e2e/last-use.test.ts), scripted per report.
  const answers: { status: number; body: string }[] = [
    { status: 200, body: hitReportAnswer([d('b')]) },
    { status: 500, body: '{}' },
  ];
  const origin = new ScriptedOrigin((_req, res) => {
    const answer = answers.shift() ?? { status: 200, body: hitReportAnswer([]) };
    res.writeHead(answer.status, { 'Content-Type': 'application/json' }).end(answer.body);
  });
  await origin.start();
  t.after(() => origin.stop());
  const forgotten: [Digest, string][] = [];
  const reporter = new HitReporter({
    origin: new OriginClient(readEdgeConfig({ ORIGIN_URL: origin.url, ORIGIN_SECRET: 's3cret' })),
    forget: async (digest, servedUnder) => void forgotten.push([digest, servedUnder]),
    intervalMs: HOUR,
    delayMs: 50,
  });
  const background: Promise<unknown>[] = [];
  const ctx = { waitUntil: (p: Promise<unknown>) => void background.push(p) };
  reporter.hit(d('a'), 'https://r.example', ctx, 0);
  reporter.hit(d('b'), 'https://r.example', ctx, 1);
  reporter.hit(d('a'), 'https://r.example', ctx, 2);
  await Promise.all(background.splice(0));
  assert.equal(origin.seen.length, 1, 'one report for the batch');
  assert.equal(origin.seen[0]!.path, HIT_REPORT_PATH);
  assert.equal(origin.seen[0]!.headers['x-nixery-edge-secret'], 's3cret');
  assert.deepEqual(JSON.parse(origin.seen[0]!.body), { digests: [d('a'), d('b')] });
  assert.deepEqual(forgotten, [[d('b'), 'https://r.example']]);

  reporter.hit(d('c'), 'https://r.example', ctx, 3);
  await Promise.all(background.splice(0));
  assert.equal(origin.seen.length, 2, 'the failing report was sent');
  reporter.hit(d('c'), 'https://r.example', ctx, 4);
  reporter.hit(d('b'), 'https://r.example', ctx, 5);
  await Promise.all(background.splice(0));
  assert.equal(origin.seen.length, 3);
  assert.deepEqual(JSON.parse(origin.seen[2]!.body), { digests: [d('b')] }, 'the dropped digest waits for its interval; the forgotten one is news again');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCollectable, planImages, retentionPolicy, type ImageEntry, type RetentionPolicy } from '../../origin/gc/retention.ts';
import type { Digest } from '../../shared/digest.ts';

const DAY = 86_400_000;
const NOW = 100 * DAY;
const policy = { maxIdleMs: 30 * DAY, graceMs: DAY };
const d = (c: string) => `sha256:${c.repeat(64)}` as const;
interface Listed {
  digest: Digest;
  size: number;
  written: number;
}
const obj = (c: string, size: number, written = 0): Listed => ({ digest: d(c), size, written });

/** The decisions as origin/gc/retention-run.ts applies them: images by planImages, then each listed object by isCollectable, none while an image pins. */
function planRetention(images: readonly ImageEntry[], objects: readonly Listed[], policy: RetentionPolicy, now: number) {
  const plan = planImages(images, policy, now);
  const deletable = plan.pinnedBy !== null ? [] : objects.filter((o) => isCollectable(o, plan.referenced, policy, now));
  return { images: plan.expired, objects: deletable, bytes: deletable.reduce((sum, o) => sum + o.size, 0), pinnedBy: plan.pinnedBy };
}

test('an idle image goes, with the objects only it referenced; shared and recent objects stay', () => {
  const images: ImageEntry[] = [
    { key: 'old', references: [d('a'), d('b')], lastUsed: NOW - 40 * DAY, written: 0 },
    { key: 'used', references: [d('b'), d('c')], lastUsed: NOW - DAY, written: 0 },
  ];
  const objects = [obj('a', 10), obj('b', 20), obj('c', 30), obj('e', 5, NOW - 1000)];
  const plan = planRetention(images, objects, policy, NOW);
  assert.deepEqual(plan.images, ['old']);
  assert.deepEqual(plan.objects.map((o) => o.digest), [d('a')]);
  assert.equal(plan.bytes, 10);
  assert.equal(plan.pinnedBy, null);
});

test('an image never seen in use counts from when it was written', () => {
  const images: ImageEntry[] = [
    { key: 'new', references: [d('a')], lastUsed: null, written: NOW - 2 * DAY },
    { key: 'ancient', references: [d('b')], lastUsed: null, written: NOW - 60 * DAY },
  ];
  const plan = planRetention(images, [obj('a', 1), obj('b', 2)], policy, NOW);
  assert.deepEqual(plan.images, ['ancient']);
  assert.deepEqual(plan.objects.map((o) => o.digest), [d('b')]);
});

test('a kept image whose record does not list its references pins every object', () => {
  const images: ImageEntry[] = [
    { key: 'legacy', references: null, lastUsed: NOW, written: 0 },
    { key: 'old', references: [d('a')], lastUsed: 0, written: 0 },
  ];
  const plan = planRetention(images, [obj('a', 10)], policy, NOW);
  assert.deepEqual(plan.images, ['old']);
  assert.deepEqual(plan.objects, []);
  assert.equal(plan.pinnedBy, 'legacy');
});

test('objects inside the grace period survive even unreferenced (a build in flight)', () => {
  const plan = planRetention([], [obj('a', 10, NOW - DAY / 2), obj('b', 7, NOW - 2 * DAY)], policy, NOW);
  assert.deepEqual(plan.objects.map((o) => o.digest), [d('b')]);
  assert.equal(plan.bytes, 7);
});

test('an image record references its config, both manifests and every layer; an old record says nothing', async () => {
  const { imageReferences } = await import('../../origin/gc/retention.ts');
  const layer = { digest: d('l'), diffId: d('i'), size: 1, description: '' };
  const manifests = { docker: { digest: d('m'), size: 1 }, oci: { digest: d('o'), size: 1 } };
  assert.deepEqual(imageReferences({ manifests, config: d('c'), recipe: { arch: 'amd64', layers: [layer], packages: ['hello'] } }), [d('c'), d('m'), d('o'), d('l')]);
  assert.equal(imageReferences({ manifests }), null);
});

test('a used index keeps its platforms\' images however idle they are, and an idle index goes before its platforms', async () => {
  const { planImages } = await import('../../origin/gc/retention.ts');
  const images: ImageEntry[] = [
    { key: 'amd64-image', references: [d('a')], lastUsed: 0, written: 0 },
    { key: 'arm64-image', references: [d('b')], lastUsed: 0, written: 0 },
    { key: 'index', references: [d('i')], lastUsed: NOW - DAY, written: 0, members: ['amd64-image', 'arm64-image'] },
    { key: 'old-platform', references: [d('c')], lastUsed: 0, written: 0 },
    { key: 'old-index', references: [d('j')], lastUsed: 0, written: 0, members: ['old-platform'] },
  ];
  const plan = planImages(images, policy, NOW);
  assert.deepEqual(plan.expired, ['old-index', 'old-platform']);
  assert.deepEqual([...plan.referenced].sort(), [d('a'), d('b'), d('i')].sort());
  // An index inside the grace period (just written, however idle) keeps its platforms too.
  const young = planImages([images[0]!, { ...images[2]!, lastUsed: 0, written: NOW - DAY / 2 }], policy, NOW);
  assert.deepEqual(young.expired, []);
});

test('an index record references its own manifests; one from before it named its platforms says nothing', async () => {
  const { imageReferences } = await import('../../origin/gc/retention.ts');
  const manifests = { docker: { digest: d('m'), size: 1 }, oci: { digest: d('o'), size: 1 } };
  assert.deepEqual(imageReferences({ manifests, members: ['x', 'y'] }), [d('m'), d('o')]);
  assert.equal(imageReferences({ manifests }), null);
});

test('a recorded use counts as up to one usage write interval later, so an image in constant use is never idle with the shortest horizon', () => {
  // NIXERY_RETENTION_DAYS=1 with USAGE_WRITE_INTERVAL=86400: a hot image's use is written once a day, so
  // just before its next write the recorded use is a day and some minutes old.
  const lagged = retentionPolicy({ maxIdleDays: 1, graceSeconds: 600 }, 86_400);
  assert.deepEqual(lagged, { maxIdleMs: DAY, graceMs: 600_000, usageLagMs: DAY });
  const images: ImageEntry[] = [
    { key: 'hot', references: [d('a')], lastUsed: NOW - DAY - 10 * 60_000, written: 0 },
    { key: 'idle', references: [d('b')], lastUsed: NOW - 2 * DAY - 1, written: 0 },
    // Never recorded as used: counts from when it was written, which is exact.
    { key: 'never', references: [d('c')], lastUsed: null, written: NOW - DAY - 1 },
  ];
  assert.deepEqual(planImages(images, lagged, NOW).expired, ['idle', 'never']);
  assert.deepEqual(planImages(images, { maxIdleMs: DAY, graceMs: 600_000 }, NOW).expired, ['hot', 'idle', 'never']);
});

test('an image counts as used when its record was written, even with an older recorded use', () => {
  const images: ImageEntry[] = [
    // Built again 2 days ago (its record written then) while a use from 40 days ago survived.
    { key: 'rebuilt', references: [d('a')], lastUsed: NOW - 40 * DAY, written: NOW - 2 * DAY },
    { key: 'idle', references: [d('b')], lastUsed: NOW - 40 * DAY, written: NOW - 50 * DAY },
  ];
  assert.deepEqual(planImages(images, policy, NOW).expired, ['idle']);
});

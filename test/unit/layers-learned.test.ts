import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeRecords, parseReplicaRecord, ReplicaCounter } from '../../origin/layers/learned-popularity.ts';
import { LearnedPopularityStore, learnedPopularityKeys } from '../../origin/popularity/learned-store.ts';
import { FilesystemStorage } from '../../origin/storage/filesystem.ts';

const HASH = '0c7c94sz3ydma5bxv7d1j2b9g8w4dmm0';
const p = (name: string): string => `/nix/store/${HASH}-${name}`;
const n = (name: string): string => `${HASH}-${name}`;

test('a path is counted once per distinct image, and an image built again is not counted twice', () => {
  const c = new ReplicaCounter('r1');
  assert.equal(c.observe('shell/git', [p('glibc'), p('git'), p('git')]), true);
  assert.equal(c.observe('shell/git', [p('glibc'), p('git')]), false);
  c.observe('shell/htop', [p('glibc'), p('htop')]);
  const view = mergeRecords([c.record()]);
  assert.equal(view.images, 2);
  assert.equal(view.counts.get(n('glibc')), 2);
  assert.equal(view.counts.get(n('git')), 1);
  assert.equal(view.counts.get(n('htop')), 1);
});

test('paths always in the same images share a signature; a path in other images does not', () => {
  const c = new ReplicaCounter('r1');
  c.observe('a', [p('lib'), p('lib-data'), p('glibc')]);
  c.observe('b', [p('lib'), p('lib-data'), p('glibc'), p('app')]);
  c.observe('c', [p('glibc')]);
  const { signatures } = mergeRecords([c.record()]);
  assert.equal(signatures.get(n('lib')), signatures.get(n('lib-data')));
  assert.notEqual(signatures.get(n('lib')), signatures.get(n('glibc')));
  assert.notEqual(signatures.get(n('lib')), signatures.get(n('app')));
});

test('replicas add up, in any order, and a replica merged twice counts once', () => {
  const a = new ReplicaCounter('a');
  const b = new ReplicaCounter('b');
  a.observe('x', [p('glibc'), p('git')]);
  b.observe('y', [p('glibc'), p('htop')]);
  b.observe('z', [p('glibc')]);
  const older = b.record();
  b.observe('w', [p('glibc')]);
  const ab = mergeRecords([a.record(), b.record()]);
  assert.equal(ab.images, 4);
  assert.equal(ab.counts.get(n('glibc')), 4);
  assert.deepEqual(mergeRecords([b.record(), a.record(), older, b.record()]), ab);
  // Both replicas saw a path in images of their own: the signatures add up like the counts.
  const one = new ReplicaCounter('one');
  for (const k of ['x', 'y', 'z', 'w']) one.observe(k, [p('glibc')]);
  assert.equal(ab.signatures.get(n('glibc')), mergeRecords([one.record()]).signatures.get(n('glibc')));
});

test('a counter keeps at most its cap of paths, dropping the least counted', () => {
  const c = new ReplicaCounter('r', { maxPaths: 10, recentImages: 100 });
  for (let i = 0; i < 30; i++) c.observe(`img${i}`, [p('glibc'), p(`only${i}`)]);
  const paths = Object.keys(c.record().paths);
  assert.ok(paths.length <= 10, `${paths.length} paths kept`);
  assert.ok(paths.includes(n('glibc')));
  assert.equal(c.record().paths[n('glibc')]![0], 30);
});

test('a record survives a round trip through JSON; a malformed one is refused', () => {
  const c = new ReplicaCounter('r');
  c.observe('x', [p('glibc')]);
  const again = new ReplicaCounter('r', undefined, parseReplicaRecord(JSON.parse(JSON.stringify(c.record()))));
  assert.deepEqual(again.record(), c.record());
  assert.throws(() => parseReplicaRecord({ version: 2 }), /not a learned popularity record/);
  assert.throws(() => parseReplicaRecord({ ...c.record(), paths: { x: [1, -1, 1] } }), /bad entry/);
  assert.throws(() => new ReplicaCounter('other', undefined, c.record()), /record of replica r/);
});

test('replicas share counts through storage under popularity/learned/, and a restart keeps them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'learned-'));
  try {
    const storage = new FilesystemStorage(dir);
    await storage.init();
    const a = await LearnedPopularityStore.open(storage, 'origin-0', { refreshEvery: 1 });
    const b = await LearnedPopularityStore.open(storage, 'origin-1', { refreshEvery: 1 });
    await a.observeImage('shell/git', [p('glibc'), p('git')]);
    await b.observeImage('shell/htop', [p('glibc'), p('htop')]);
    // b refreshed after its image, and a's record was already there.
    assert.equal(b.current().counts.get(n('glibc')), 2);
    assert.equal(b.current().images, 2);
    assert.equal(a.current().counts.get(n('htop')), undefined, 'a has not re-read the others yet');
    await a.refresh();
    assert.equal(a.current().counts.get(n('htop')), 1);
    assert.ok(await storage.get(learnedPopularityKeys.replica('origin-0')));
    assert.deepEqual(JSON.parse(new TextDecoder().decode((await storage.get(learnedPopularityKeys.index))!)), ['origin-0', 'origin-1']);
    const again = new FilesystemStorage(dir);
    await again.init();
    const restarted = await LearnedPopularityStore.open(again, 'origin-0');
    assert.equal(restarted.current().counts.get(n('glibc')), 2);
    await restarted.observeImage('shell/git', [p('glibc'), p('git')]);
    await restarted.refresh();
    assert.equal(restarted.current().counts.get(n('git')), 1, 'an image counted before the restart is not counted again');
    assert.throws(() => learnedPopularityKeys.replica('../x'), /invalid replica id/);
    // Two replicas that wrote the index at once: the loser puts itself back when it next starts.
    await storage.put(learnedPopularityKeys.index, new TextEncoder().encode('["origin-0"]'), 'application/json');
    const back = await LearnedPopularityStore.open(storage, 'origin-1');
    assert.deepEqual(JSON.parse(new TextDecoder().decode((await storage.get(learnedPopularityKeys.index))!)), ['origin-0', 'origin-1']);
    assert.equal(back.current().counts.get(n('htop')), 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

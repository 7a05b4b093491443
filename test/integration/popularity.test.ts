// NIX_POPULARITY_URL: loaded once at start-up, kept in storage for restarts
// while the URL is unreachable, and a clear start-up failure without either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startOrigin } from '../support/origin.ts';

test('popularity data is loaded at start-up and a restart without the URL uses the copy in storage', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'popularity-'));
  const storagePath = join(dir, 'storage');
  try {
    const file = join(dir, 'popularity.json');
    await writeFile(file, JSON.stringify({ 'glibc-2.36': 1200, 'bash-5.2': 400, 'hello-2.10': 3 }));
    const env = { NIX_POPULARITY_URL: pathToFileURL(file).href };
    const first = await startOrigin({ env, storagePath });
    try {
      const loaded = first.logs.find((l) => l.msg === 'popularity data loaded');
      assert.equal(loaded?.paths, 3);
      const res = await fetch(`${first.url}/v2/hello/manifests/latest`);
      assert.equal(res.status, 200);
    } finally {
      await first.stop({ keepStorage: true });
    }
    await rm(file);
    const second = await startOrigin({ env, storagePath });
    try {
      assert.ok(second.logs.some((l) => l.msg === 'popularity data unreachable; using the copy kept in storage'));
      assert.equal(second.logs.find((l) => l.msg === 'popularity data loaded')?.paths, 3);
    } finally {
      await second.stop({ keepStorage: true });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('unreachable or malformed popularity data with no stored copy stops start-up naming the variable', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'popularity-'));
  try {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '["not", "a", "map"]');
    for (const url of [pathToFileURL(join(dir, 'missing.json')).href, pathToFileURL(bad).href]) {
      await assert.rejects(startOrigin({ env: { NIX_POPULARITY_URL: url } }), /NIX_POPULARITY_URL: cannot load/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an origin records what it built as learned popularity, under its replica id, and lists itself for the other replicas', async (t) => {
  const origin = await startOrigin({ env: { NIXERY_REPLICA_ID: 'replica-a' } });
  t.after(() => origin.stop());
  const res = await fetch(`${origin.url}/v2/hello/manifests/latest`);
  assert.equal(res.status, 200, await res.clone().text());
  const record = join(origin.storagePath, 'popularity/learned/replica-a.json');
  // Saved after the manifest is answered, so wait for it.
  let saved = '';
  for (let i = 0; i < 50 && !saved.includes('-hello-'); i++) {
    saved = await readFile(record, 'utf8').catch(() => '');
    if (!saved.includes('-hello-')) await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(saved, /-hello-/, 'the learned record names hello');
  // The index is written after the record, so it may lag behind it too.
  const indexFile = join(origin.storagePath, 'popularity/learned/replicas.json');
  let index = '';
  for (let i = 0; i < 50 && index === ''; i++) {
    index = await readFile(indexFile, 'utf8').catch(() => '');
    if (index === '') await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(JSON.parse(index), ['replica-a']);
});

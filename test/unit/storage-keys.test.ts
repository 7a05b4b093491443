// The storage layout is defined once (shared/storage-keys.ts) and documented
// once (docs/architecture.md); this keeps the two from drifting apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';

const ARCHITECTURE = new URL('../../docs/architecture.md', import.meta.url);

/** The first column of the table that follows the "Storage layout" line, without backquotes. */
function documentedKeys(markdown: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line.startsWith('Storage layout'));
  assert.notEqual(start, -1, 'docs/architecture.md has a "Storage layout" section');
  const rows: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (rows.length > 0 && !line.startsWith('|')) break;
    const match = /^\| `([^`]+)` \|/.exec(line);
    if (match) rows.push(match[1]!);
  }
  return rows;
}

test('docs/architecture.md lists exactly the key families of the storage layout', async () => {
  const documented = documentedKeys(await readFile(ARCHITECTURE, 'utf8'));
  const defined = Object.values(STORAGE_KEYS).map((family) => family.pattern);
  assert.deepEqual([...documented].sort(), [...defined].sort());
  assert.equal(new Set(documented).size, documented.length, 'each family is listed once');
});

test('a key family fills its placeholder', () => {
  assert.equal(STORAGE_KEYS.blob('ab12'), 'blobs/sha256/ab12');
  assert.equal(STORAGE_KEYS.manifest('ab12'), 'manifests/sha256/ab12');
  assert.equal(STORAGE_KEYS.layer('cd34'), 'layers/cd34.json');
  assert.equal(STORAGE_KEYS.image('ef56'), 'images/ef56.json');
  assert.equal(STORAGE_KEYS.popularity('0a'), 'popularity/0a.json');
  assert.equal(STORAGE_KEYS.health('origin-7'), 'health/origin-7');
});

test('a key family gives the prefix to list it by and reads its placeholder back from a key, refusing other families', () => {
  assert.equal(STORAGE_KEYS.blob.prefix, 'blobs/sha256/');
  assert.equal(STORAGE_KEYS.image.prefix, 'images/');
  assert.equal(STORAGE_KEYS.blobSource.prefix, 'blob-sources/sha256/');
  assert.equal(STORAGE_KEYS.image.parse('images/abc.json'), 'abc');
  assert.equal(STORAGE_KEYS.blobSource.parse(STORAGE_KEYS.blobSource('ff')), 'ff');
  assert.equal(STORAGE_KEYS.image.parse('images/abc'), null);
  assert.equal(STORAGE_KEYS.image.parse('images/.json'), null);
  assert.equal(STORAGE_KEYS.blob.parse('manifests/sha256/ff'), null);
  assert.equal(STORAGE_KEYS.popularity.parse('popularity/learned/r1.json'), null);
  assert.equal(STORAGE_KEYS.learnedPopularityIndex.parse('popularity/learned/replicas.json'), '');
  assert.equal(STORAGE_KEYS.learnedPopularityIndex.prefix, 'popularity/learned/');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computePopularity, parsePopularity, popularityOf } from '../../origin/layers/popularity.ts';
import { immediateDominators } from '../../origin/layers/dominators.ts';
import type { ClosureGraph } from '../../origin/layers/graph.ts';

const HASH = '0c7c94sz3ydma5bxv7d1j2b9g8w4dmm0';
const HASH2 = 'zz8k4mnm63fprkw7y7dka8xcbvm2hc1b';

test('popcount output, keyed by name without hash, is found by store path', () => {
  const pop = parsePopularity({ 'glibc-2.38-44': 301234, 'openssl-3.0.13': 5021 });
  assert.equal(popularityOf(pop, `/nix/store/${HASH}-glibc-2.38-44`), 301234);
  assert.equal(popularityOf(pop, `/nix/store/${HASH2}-openssl-3.0.13`), 5021);
  assert.equal(popularityOf(pop, `/nix/store/${HASH}-zlib-1.3`), undefined);
});

test('a key with the hash wins over the same name without it', () => {
  const pop = parsePopularity({ [`${HASH}-glibc-2.38-44`]: 7, 'glibc-2.38-44': 100 });
  assert.equal(popularityOf(pop, `/nix/store/${HASH}-glibc-2.38-44`), 7);
  assert.equal(popularityOf(pop, `/nix/store/${HASH2}-glibc-2.38-44`), 100);
});

test('a full store path as key is reduced to its name', () => {
  const pop = parsePopularity({ [`/nix/store/${HASH}-bash-5.2`]: 12 });
  assert.equal(pop.get(`${HASH}-bash-5.2`), 12);
});

test('popularity data may be given as JSON text', () => {
  assert.equal(parsePopularity('{"bash-5.2": 3}').get('bash-5.2'), 3);
  assert.equal(parsePopularity('{}').size, 0);
});

test('malformed popularity data is refused with a message that says what is wrong', () => {
  assert.throws(() => parsePopularity(null), /JSON object.*null/);
  assert.throws(() => parsePopularity([1, 2]), /JSON object.*array/);
  assert.throws(() => parsePopularity(42), /JSON object.*number/);
  assert.throws(() => parsePopularity('{not json'), /not valid JSON/);
  assert.throws(() => parsePopularity({ bash: -1 }), /"bash".*non-negative integer/);
  assert.throws(() => parsePopularity({ bash: 1.5 }), /"bash".*non-negative integer/);
  assert.throws(() => parsePopularity({ bash: '3' }), /"bash".*non-negative integer/);
  assert.throws(() => parsePopularity({ bash: null }), /"bash".*non-negative integer/);
  assert.throws(() => parsePopularity({ '': 3 }), /empty store path name/);
});

function graph(refs: Record<string, string[]>, roots: string[]): ClosureGraph {
  const path = (n: string): string => `/nix/store/${HASH}-${n}`;
  return {
    roots: roots.map(path),
    paths: Object.entries(refs).map(([n, r]) => ({ path: path(n), narSize: 1, references: r.map(path) })),
  };
}

test('computed popularity counts the paths whose closure holds each path', () => {
  const pop = computePopularity(graph({ app: ['app', 'lib', 'libc'], tool: ['libc'], lib: ['libc'], libc: ['libc'] }, ['app', 'tool']));
  assert.equal(pop.get(`${HASH}-libc`), 4);
  assert.equal(pop.get(`${HASH}-lib`), 2);
  assert.equal(pop.get(`${HASH}-app`), 1);
  assert.equal(pop.get(`${HASH}-tool`), 1);
});

test('computed popularity gives paths in a cycle the same count', () => {
  const pop = computePopularity(graph({ app: ['a'], a: ['b'], b: ['a'] }, ['app']));
  assert.equal(pop.get(`${HASH}-a`), 3);
  assert.equal(pop.get(`${HASH}-b`), 3);
  assert.equal(pop.get(`${HASH}-app`), 1);
});

test('immediate dominators follow every route, through diamonds and cycles', () => {
  // 0 → 1 → {2, 3} → 4; 4 ⇄ 5; 6 unreachable
  const idom = immediateDominators([[1], [2, 3], [4], [4], [5], [4], [0]], 0);
  assert.deepEqual([...idom], [0, 0, 1, 1, 1, 4, -1]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { groupLayers, layerId } from '../../origin/layers/group.ts';
import { computePopularity, countReferrers } from '../../origin/layers/popularity.ts';
import { mergeRecords, ReplicaCounter, type LearnedPopularity } from '../../origin/layers/learned-popularity.ts';
import type { ClosureGraph, LayerGroup, Popularity, StorePathInfo } from '../../origin/layers/graph.ts';

// A package set described by name: refs lists what each package references,
// sizes its NAR size (1 KiB when not given).
interface PackageSet {
  refs: Record<string, string[]>;
  sizes?: Record<string, number>;
}

const hashOf = (name: string): string => createHash('sha256').update(name).digest('hex').slice(0, 32);
const storePath = (name: string): string => `/nix/store/${hashOf(name)}-${name}`;

function closure(set: PackageSet, roots: string[]): ClosureGraph {
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...(set.refs[n] ?? []));
  }
  const paths: StorePathInfo[] = [...seen].map((n) => ({
    path: storePath(n),
    narSize: set.sizes?.[n] ?? 1024,
    references: (set.refs[n] ?? []).map(storePath),
  }));
  return { roots: roots.map(storePath), paths };
}

/** Popularity as Nixery's popcount computes it over the whole package set: what published data would say. */
function popularityOf(set: PackageSet): Popularity {
  return countReferrers(closure(set, Object.keys(set.refs)));
}

function layerOf(groups: LayerGroup[], name: string): LayerGroup {
  const found = groups.find((g) => g.includes(storePath(name)));
  assert.ok(found, `${name} is in no layer`);
  return found;
}

function assertPartition(graph: ClosureGraph, groups: LayerGroup[], budget: number): void {
  assert.ok(groups.length <= budget, `${groups.length} layers over a budget of ${budget}`);
  const all = groups.flat();
  assert.equal(new Set(all).size, all.length, 'a path is in two layers');
  assert.deepEqual([...all].sort(), [...new Set(graph.paths.map((p) => p.path))].sort());
  for (const g of groups) {
    assert.ok(g.length > 0, 'an empty layer');
    assert.deepEqual([...g], [...g].sort(), 'a layer is not sorted');
  }
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random package set with mostly downward references, some self-references and a few cycles. */
function randomSet(seed: number, size: number): PackageSet {
  const random = prng(seed);
  const refs: Record<string, string[]> = {};
  const sizes: Record<string, number> = {};
  for (let i = 0; i < size; i++) {
    const name = `p${i}`;
    const out = new Set<string>();
    const fanout = Math.floor(random() * 5);
    for (let k = 0; k < fanout && i + 1 < size; k++) out.add(`p${i + 1 + Math.floor(random() * (size - i - 1))}`);
    if (random() < 0.3) out.add(name);
    if (random() < 0.05 && i > 0) out.add(`p${Math.floor(random() * i)}`);
    refs[name] = [...out];
    sizes[name] = Math.floor(random() * 50_000_000);
  }
  return { refs, sizes };
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// A small distribution: a C library everything needs, a TLS library many
// programs need, and programs with data only they use.
const distro: PackageSet = {
  refs: {
    glibc: ['glibc'],
    openssl: ['glibc'],
    zlib: ['glibc'],
    curl: ['curl', 'openssl', 'zlib', 'glibc', 'curl-data'],
    'curl-data': [],
    git: ['git', 'curl', 'openssl', 'zlib', 'glibc', 'git-templates', 'perl'],
    'git-templates': [],
    perl: ['glibc', 'perl-modules'],
    'perl-modules': ['perl'],
    htop: ['glibc', 'ncurses', 'htop-icons'],
    'htop-icons': [],
    ncurses: ['glibc'],
    wget: ['glibc', 'openssl', 'zlib', 'wget-locales'],
    'wget-locales': [],
    jq: ['glibc', 'oniguruma'],
    oniguruma: ['glibc'],
    python: ['glibc', 'openssl', 'zlib', 'python-stdlib'],
    'python-stdlib': ['python'],
  },
  sizes: { glibc: 30_000_000, openssl: 6_000_000, git: 40_000_000, 'git-templates': 2_000_000, perl: 50_000_000, python: 60_000_000 },
};

test('every path of the closure is in exactly one layer and the budget holds, for any budget', () => {
  for (let seed = 1; seed <= 12; seed++) {
    const set = randomSet(seed, 120);
    const popularity = popularityOf(set);
    const graph = closure(set, ['p0', 'p1', 'p2']);
    for (const budget of [1, 2, 3, 7, 20, 99, 500]) {
      assertPartition(graph, groupLayers(graph, { budget }), budget);
      assertPartition(graph, groupLayers(graph, { budget, popularity }), budget);
    }
  }
});

test('the layers do not depend on the order of paths, references or roots', () => {
  for (let seed = 1; seed <= 6; seed++) {
    const set = randomSet(seed, 150);
    const popularity = popularityOf(set);
    const graph = closure(set, ['p0', 'p3', 'p5']);
    const random = prng(seed * 7919);
    const shuffled: ClosureGraph = {
      roots: shuffle(graph.roots, random),
      paths: shuffle(graph.paths, random).map((p) => ({ ...p, references: shuffle(p.references, random) })),
    };
    for (const budget of [5, 40, 200]) {
      assert.deepEqual(groupLayers(shuffled, { budget, popularity }), groupLayers(graph, { budget, popularity }));
      assert.deepEqual(groupLayers(shuffled, { budget }), groupLayers(graph, { budget }));
    }
  }
});

test('the same input always gives the same layers', () => {
  const popularity = popularityOf(distro);
  const graph = closure(distro, ['git', 'htop']);
  const first = groupLayers(graph, { budget: 99, popularity });
  for (let i = 0; i < 3; i++) assert.deepEqual(groupLayers(graph, { budget: 99, popularity }), first);
});

test('a path only one package needs travels in that package\'s layer', () => {
  const popularity = popularityOf(distro);
  const graph = closure(distro, ['git', 'htop', 'jq']);
  for (const options of [{ budget: 99, popularity }]) {
    const groups = groupLayers(graph, options);
    assert.ok(layerOf(groups, 'git').includes(storePath('git-templates')));
    assert.ok(layerOf(groups, 'htop').includes(storePath('htop-icons')));
    assert.ok(layerOf(groups, 'jq').includes(storePath('oniguruma')));
  }
});

test('a path several packages of the package set need keeps a layer of its own', () => {
  const popularity = popularityOf(distro);
  // In this image only git needs openssl and zlib (through curl), but the
  // package set says wget and python need them too.
  const groups = groupLayers(closure(distro, ['git']), { budget: 99, popularity });
  assert.deepEqual(layerOf(groups, 'openssl'), [storePath('openssl')]);
  assert.deepEqual(layerOf(groups, 'zlib'), [storePath('zlib')]);
  assert.deepEqual(layerOf(groups, 'glibc'), [storePath('glibc')]);
  // Nothing in the package set but git needs curl, so curl is git's.
  assert.ok(layerOf(groups, 'git').includes(storePath('curl')));
});

test('a path two packages of the image share is in neither one\'s layer', () => {
  const set: PackageSet = { refs: { a: ['shared', 'a-data'], b: ['shared'], shared: [], 'a-data': [] } };
  const groups = groupLayers(closure(set, ['a', 'b']), { budget: 99, popularity: popularityOf(set) });
  assert.deepEqual(layerOf(groups, 'shared'), [storePath('shared')]);
  assert.deepEqual(layerOf(groups, 'a'), [storePath('a'), storePath('a-data')].sort());
});

test('a popular path\'s layer is the same whatever unrelated packages share the image', () => {
  const popularity = popularityOf(distro);
  const base = groupLayers(closure(distro, ['git']), { budget: 99, popularity });
  const images = [['git', 'htop'], ['git', 'jq'], ['git', 'htop', 'jq', 'wget'], ['git', 'python']];
  for (const roots of images) {
    const groups = groupLayers(closure(distro, roots), { budget: 99, popularity });
    for (const name of ['glibc', 'openssl', 'zlib', 'git', 'perl', 'curl']) {
      assert.deepEqual(layerOf(groups, name), layerOf(base, name), `${name}'s layer changed in ${roots.join('/')}`);
    }
  }
});

test('a package\'s own layer is the same whatever unrelated packages share the image', () => {
  const popularity = popularityOf(distro);
  const alone = layerOf(groupLayers(closure(distro, ['htop']), { budget: 99, popularity }), 'htop');
  const together = layerOf(groupLayers(closure(distro, ['htop', 'git', 'jq']), { budget: 99, popularity }), 'htop');
  assert.deepEqual(together, alone);
});

test('over budget, big popular layers keep their own and small unpopular ones share the remainder', () => {
  const refs: Record<string, string[]> = { app: ['libc', 'big'] };
  const sizes: Record<string, number> = { libc: 30_000_000, big: 80_000_000, app: 1000 };
  const other: Record<string, string[]> = {};
  for (let i = 0; i < 10; i++) {
    refs.app!.push(`tiny${i}`);
    refs[`tiny${i}`] = ['libc'];
    sizes[`tiny${i}`] = 2000;
    other[`user${i}`] = ['libc', 'big'];
  }
  const set: PackageSet = { refs: { ...refs, ...other, libc: [], big: ['libc'] }, sizes };
  const popularity = popularityOf(set);
  const graph = closure(set, ['app']);
  const groups = groupLayers(graph, { budget: 4, popularity });
  assertPartition(graph, groups, 4);
  assert.deepEqual(layerOf(groups, 'libc'), [storePath('libc')]);
  assert.deepEqual(layerOf(groups, 'big'), [storePath('big')]);
  assert.ok(layerOf(groups, 'tiny0').length > 1, 'small paths should have been merged');
});

test('a budget of one puts the whole closure in one layer', () => {
  const graph = closure(distro, ['git', 'htop', 'python']);
  const groups = groupLayers(graph, { budget: 1, popularity: popularityOf(distro) });
  assert.equal(groups.length, 1);
  assertPartition(graph, groups, 1);
});

test('an empty graph has no layers', () => {
  assert.deepEqual(groupLayers({ roots: [], paths: [] }, { budget: 99 }), []);
  assert.deepEqual(groupLayers({ roots: [storePath('missing')], paths: [] }, { budget: 1, popularity: new Map() }), []);
});

test('paths that refer to each other share a layer and self-references change nothing', () => {
  const set: PackageSet = { refs: { app: ['app', 'a'], a: ['a', 'b'], b: ['b', 'a', 'libc'], libc: ['libc'], other: ['libc'] } };
  const graph = closure(set, ['app', 'other']);
  for (const popularity of [undefined, popularityOf(set)]) {
    const groups = groupLayers(graph, { budget: 99, popularity });
    assertPartition(graph, groups, 99);
    assert.ok(layerOf(groups, 'a').includes(storePath('b')));
  }
  const withoutSelf: ClosureGraph = {
    roots: graph.roots,
    paths: graph.paths.map((p) => ({ ...p, references: p.references.filter((r) => r !== p.path) })),
  };
  assert.deepEqual(groupLayers(withoutSelf, { budget: 99 }), groupLayers(graph, { budget: 99 }));
});

test('a path nothing refers to and nobody asked for still gets a layer', () => {
  const set: PackageSet = { refs: { app: ['libc'], libc: [], stray: ['libc'] } };
  const graph: ClosureGraph = { ...closure(set, ['app', 'stray']), roots: [storePath('app')] };
  const groups = groupLayers(graph, { budget: 99 });
  assertPartition(graph, groups, 99);
  assert.ok(!layerOf(groups, 'app').includes(storePath('stray')), 'stray is not app\'s to carry');
});

test('references to paths outside the closure are ignored', () => {
  const graph = closure(distro, ['htop']);
  const dangling: ClosureGraph = {
    roots: graph.roots,
    paths: graph.paths.map((p) => ({ ...p, references: [...p.references, storePath('not-in-closure')] })),
  };
  assert.deepEqual(groupLayers(dangling, { budget: 99 }), groupLayers(graph, { budget: 99 }));
});

test('a budget below one or not a whole number is refused', () => {
  const graph = closure(distro, ['htop']);
  assert.throws(() => groupLayers(graph, { budget: 0 }), /budget/);
  assert.throws(() => groupLayers(graph, { budget: 2.5 }), /budget/);
  assert.throws(() => groupLayers(graph, { budget: Number.NaN }), /budget/);
});

test('a layer id is the sha256 of its sorted paths, one per line', () => {
  const [a, b] = [storePath('a'), storePath('b')].sort() as [string, string];
  const expected = createHash('sha256').update(`${a}\n${b}`).digest('hex');
  assert.equal(layerId([a, b]), expected);
  assert.equal(layerId([b, a]), expected);
  assert.notEqual(layerId([a]), expected);
  assert.match(layerId([]), /^[0-9a-f]{64}$/);
});

test('a library two packages of the set reach through different routes keeps its own layer when one of them is in the image', () => {
  // Nixery's data counts direct referrers: lib has two (m1, m2), both only app's, and tool refers to lib too.
  const set: PackageSet = { refs: { app: ['m1', 'm2'], m1: ['lib'], m2: ['lib'], tool: ['lib'], lib: [], 'app-data': [] } };
  set.refs.app!.push('app-data');
  const groups = groupLayers(closure(set, ['app']), { budget: 99, popularity: popularityOf(set) });
  assert.deepEqual(layerOf(groups, 'lib'), [storePath('lib')]);
  assert.ok(layerOf(groups, 'app').includes(storePath('app-data')));
});

test('without published data or learned counts, only paths that refer to nothing join their one owner\'s layer', () => {
  const graph = closure(distro, ['git', 'htop']);
  const groups = groupLayers(graph, { budget: 99 });
  assertPartition(graph, groups, 99);
  assert.deepEqual(layerOf(groups, 'git'), [storePath('git'), storePath('git-templates')].sort());
  assert.deepEqual(layerOf(groups, 'curl'), [storePath('curl'), storePath('curl-data')].sort());
  assert.deepEqual(layerOf(groups, 'htop'), [storePath('htop'), storePath('htop-icons')].sort());
  // curl and ncurses have one referrer here too, but refer to other paths: libraries, which other packages may use.
  assert.ok(!layerOf(groups, 'git').includes(storePath('curl')));
  assert.deepEqual(layerOf(groups, 'ncurses'), [storePath('ncurses')]);
  // glibc refers to nothing but many paths refer to it.
  assert.deepEqual(layerOf(groups, 'glibc'), [storePath('glibc')]);
  // Three leaves folded and the perl cycle shared: every other path alone.
  assert.equal(groups.length, new Set(graph.paths.map((p) => p.path)).size - 4);
});

test('without published data, a path that refers to nothing but two packages of the image refer to keeps its own layer', () => {
  const set: PackageSet = { refs: { a: ['shared', 'a-data'], b: ['shared'], shared: [], 'a-data': [] } };
  const groups = groupLayers(closure(set, ['a', 'b']), { budget: 99 });
  assert.deepEqual(layerOf(groups, 'shared'), [storePath('shared')]);
  assert.deepEqual(layerOf(groups, 'a'), [storePath('a'), storePath('a-data')].sort());
  assert.deepEqual(layerOf(groups, 'b'), [storePath('b')]);
});

test('without published data, a path that refers to nothing joins its owner only when its size is within 1% to 4 times its owner\'s', () => {
  // One owner of 10 MB; each leaf's share of it is in its name. (libc, tiny and shared in the set, makes the published data below non-empty.)
  const set: PackageSet = {
    refs: { app: ['libc', 'share-0.5pc', 'share-1pc', 'share-4x', 'share-5x'], other: ['libc'], libc: [], 'share-0.5pc': [], 'share-1pc': [], 'share-4x': [], 'share-5x': [] },
    sizes: { app: 10_000_000, 'share-0.5pc': 50_000, 'share-1pc': 100_000, 'share-4x': 40_000_000, 'share-5x': 50_000_000 },
  };
  const graph = closure(set, ['app']);
  const groups = groupLayers(graph, { budget: 99 });
  assertPartition(graph, groups, 99);
  assert.deepEqual(layerOf(groups, 'app'), [storePath('app'), storePath('share-1pc'), storePath('share-4x')].sort());
  // Tiny beside its owner: a wrong fold would cost the owner again for a path that costs next to nothing apart.
  assert.deepEqual(layerOf(groups, 'share-0.5pc'), [storePath('share-0.5pc')]);
  // Far bigger than its owner: it keeps its own layer in the cut anyway, and a wrong fold would cost it again.
  assert.deepEqual(layerOf(groups, 'share-5x'), [storePath('share-5x')]);
  // Fresh published data (a count of one is dropped) still folds them all: the window is for folds nothing listed speaks for.
  const fresh = groupLayers(graph, { budget: 99, popularity: popularityOf(set) });
  assert.deepEqual(layerOf(fresh, 'app'), ['app', 'share-0.5pc', 'share-1pc', 'share-4x', 'share-5x'].map(storePath).sort());
});

test('without published data, a package\'s layer is the same whatever unrelated packages share the image', () => {
  const alone = groupLayers(closure(distro, ['htop']), { budget: 99 });
  const together = groupLayers(closure(distro, ['htop', 'git', 'jq', 'wget']), { budget: 99 });
  for (const name of ['htop', 'glibc', 'ncurses']) assert.deepEqual(layerOf(together, name), layerOf(alone, name), `${name}'s layer changed`);
});

test('a path that refers to nothing is not folded on its structure once the origin built an image holding it without its owner', () => {
  // Like tzdata: python alone refers to it in this image, but the origin built ruby with it before.
  const set: PackageSet = { refs: { python: ['libc', 'tzdata'], ruby: ['libc', 'tzdata'], tzdata: [], libc: [] } };
  const graph = closure(set, ['python']);
  assert.ok(layerOf(groupLayers(graph, { budget: 99 }), 'python').includes(storePath('tzdata')));
  const counter = new ReplicaCounter('test');
  counter.observe('ruby', closure(set, ['ruby']).paths.map((p) => p.path));
  counter.observe('python', graph.paths.map((p) => p.path));
  const groups = groupLayers(graph, { budget: 99, learned: mergeRecords([counter.record()]) });
  assert.deepEqual(layerOf(groups, 'tzdata'), [storePath('tzdata')]);
  assert.deepEqual(layerOf(groups, 'python'), [storePath('python')]);
});

test('a path that refers to nothing keeps its own layer when published data, even stale, counts referrers outside the image', () => {
  const set: PackageSet = { refs: { a: ['shared', 'libc'], b: ['shared', 'libc'], shared: [], libc: [] } };
  // Stale: every name but shared's changed since, so the data is not trusted for what it does not list.
  const stale = new Map([...popularityOf(set)].map(([k, v]) => [k.endsWith('-shared') ? k : `${k}-old`, v]));
  for (const popularity of [popularityOf(set), stale]) {
    const groups = groupLayers(closure(set, ['a']), { budget: 99, popularity });
    assert.deepEqual(layerOf(groups, 'shared'), [storePath('shared')]);
  }
});

function learnedFrom(images: string[][]): LearnedPopularity {
  const counter = new ReplicaCounter('test');
  for (const roots of images) counter.observe(roots.join('/'), closure(distro, roots).paths.map((p) => p.path));
  return mergeRecords([counter.record()]);
}

test('a fold published data allows is not made once the origin built an image holding the path without its owner', () => {
  // Stale data: it says nothing but curl refers to curl-data (a count of one is dropped), but images had it alone.
  const set: PackageSet = { refs: { ...distro.refs, 'data-user': ['curl-data'] }, sizes: distro.sizes };
  const popularity = popularityOf(distro);
  const graph = closure(set, ['curl']);
  assert.ok(layerOf(groupLayers(graph, { budget: 99, popularity }), 'curl').includes(storePath('curl-data')));
  const counter = new ReplicaCounter('test');
  counter.observe('data-user', closure(set, ['data-user']).paths.map((p) => p.path));
  counter.observe('curl', graph.paths.map((p) => p.path));
  const groups = groupLayers(graph, { budget: 99, popularity, learned: mergeRecords([counter.record()]) });
  assert.deepEqual(layerOf(groups, 'curl-data'), [storePath('curl-data')]);
});

test('with closure counts, the images the origin built do not reorder the cut', () => {
  // Closure counts already say how many packages pull each path in; c's many
  // images would otherwise outweigh a's bytes and keep c out of the remainder.
  const set: PackageSet = { refs: { a: [], b: [], c: [] }, sizes: { a: 100_000, b: 90_000, c: 80_000 } };
  const popularity = computePopularity(closure(set, ['a', 'b', 'c']));
  const counter = new ReplicaCounter('test');
  for (let k = 0; k < 50; k++) counter.observe(`c-image-${k}`, [storePath('c')]);
  const graph = closure(set, ['a', 'b', 'c']);
  const options = { budget: 2, popularity, counts: 'closures' as const };
  const groups = groupLayers(graph, { ...options, learned: mergeRecords([counter.record()]) });
  assert.deepEqual(layerOf(groups, 'a'), [storePath('a')]);
  assert.deepEqual(layerOf(groups, 'c'), [storePath('b'), storePath('c')].sort());
  assert.deepEqual(groups, groupLayers(graph, options));
});

test('paths always pulled together stay folded as the origin learns, and learning keeps layers deterministic and in budget', () => {
  const popularity = popularityOf(distro);
  const learned = learnedFrom([['git'], ['git', 'htop'], ['jq'], ['python', 'git']]);
  const graph = closure(distro, ['git', 'htop', 'jq']);
  const groups = groupLayers(graph, { budget: 99, popularity, learned });
  assert.ok(layerOf(groups, 'git').includes(storePath('git-templates')));
  assert.ok(layerOf(groups, 'htop').includes(storePath('htop-icons')));
  assert.deepEqual(groupLayers(graph, { budget: 99, popularity, learned }), groups);
  for (const budget of [1, 3, 7]) assertPartition(graph, groupLayers(graph, { budget, popularity, learned }), budget);
});

test('stale published data (names it misses that this image shows are shared) is not trusted for paths it does not list', () => {
  // Data from another revision: every name changed, so nothing is listed and shared paths are missing.
  const stale = new Map([...popularityOf(distro)].map(([k, v]) => [`${k}-old`, v]));
  const graph = closure(distro, ['git', 'wget']);
  const groups = groupLayers(graph, { budget: 99, popularity: stale });
  // openssl and zlib have two referrers here, which fresh data would list: curl is not folded on the data's word.
  assert.deepEqual(layerOf(groups, 'curl'), [storePath('curl'), storePath('curl-data')].sort());
  // Fresh data folds it.
  assert.ok(layerOf(groupLayers(graph, { budget: 99, popularity: popularityOf(distro) }), 'git').includes(storePath('curl')));
});

// How the in-memory search scales to a nixpkgs-sized index: a synthetic
// index of 100,000 packages (attribute paths, names and descriptions built
// from a word list, nested sets like nixpkgs'), the size of its JSON (what
// shipping it to the browser would cost), the time to load it, and the time
// per search for a few kinds of query, beside the first version of the
// search (a loop scoring every row) on the same index. Prints a markdown
// table; times include the garbage collection each search causes.
import { PackageIndex } from '../../origin/search/package-index.ts';
import type { RawPackageIndex } from '../../origin/nix/nix.ts';

const WORDS = ['lib', 'http', 'python', 'rust', 'tool', 'server', 'client', 'image', 'data', 'json', 'git', 'ssl', 'shell', 'terminal', 'font', 'gnome', 'kde', 'audio', 'video', 'network', 'crypto', 'parser', 'compiler', 'editor', 'game'];
const SETS = ['', 'python3Packages', 'haskellPackages', 'nodePackages', 'perlPackages', 'rPackages'];

/** A deterministic pseudo-random sequence (mulberry32), so every run measures the same index. */
function random(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function syntheticIndex(count: number): RawPackageIndex {
  const next = random(42);
  const pick = () => WORDS[Math.floor(next() * WORDS.length)]!;
  const packages: RawPackageIndex['packages'] = [];
  const names = new Map<string, string[]>(SETS.map((s) => [s, []]));
  for (let i = 0; i < count; i++) {
    const set = SETS[Math.floor(next() * next() * SETS.length)]!;
    const name = `${pick()}-${pick()}${i}`;
    names.get(set)!.push(name);
    packages.push({
      attrPath: set === '' ? name : `${set}.${name}`,
      name,
      version: `${Math.floor(next() * 10)}.${Math.floor(next() * 30)}`,
      description: `A ${pick()} ${pick()} for ${pick()} and ${pick()} ${pick()} work`,
    });
  }
  names.get('')!.push(...SETS.filter(Boolean));
  // In attribute order, as index.nix prints it (builtins.attrNames is sorted): the parsed rows then
  // lie in memory in the order the search walks them.
  packages.sort((a, b) => (a.attrPath < b.attrPath ? -1 : a.attrPath > b.attrPath ? 1 : 0));
  return { packages, sets: [...names].map(([path, n]) => ({ path, names: n })) };
}

function timePerCall(work: () => unknown, minMs = 500): number {
  let calls = 0;
  const started = performance.now();
  while (performance.now() - started < minMs) {
    work();
    calls++;
  }
  return (performance.now() - started) / calls;
}

const raw = syntheticIndex(100_000);
const json = JSON.stringify(raw);
const loadStarted = performance.now();
const index = new PackageIndex(JSON.parse(json) as RawPackageIndex);
const loadMs = performance.now() - loadStarted;

console.log(`index: ${index.size} packages, ${(json.length / 1048576).toFixed(1)} MiB of JSON (gzip would be a few MiB: too much for a page), loaded in ${loadMs.toFixed(0)} ms\n`);
// The baseline: the first version of the search, a loop over every row
// scoring each word (same ranking), then a sort of every match.
const rows = (JSON.parse(json) as RawPackageIndex).packages.map((p) => {
  const attr = p.attrPath.toLowerCase();
  return { attr, leaf: attr.slice(attr.lastIndexOf('.') + 1), name: p.name.toLowerCase(), text: `${attr} ${p.name.toLowerCase()} ${p.description.toLowerCase()}` };
});
type BaselineRow = (typeof rows)[number];
const baselineScore = (row: BaselineRow, word: string): number => {
  if (row.attr === word || row.leaf === word) return 0;
  if (row.name === word) return 1;
  if (row.leaf.startsWith(word) || row.name.startsWith(word)) return 2;
  if (row.attr.includes(word) || row.name.includes(word)) return 3;
  if (row.text.includes(word)) return 4;
  return -1;
};
const linearScan = (query: string) => {
  const words = query.split(' ');
  const scored: { row: BaselineRow; score: number }[] = [];
  for (const row of rows) {
    let score = 0;
    for (const word of words) {
      const s = baselineScore(row, word);
      if (s < 0) {
        score = -1;
        break;
      }
      score += s;
    }
    if (score >= 0) scored.push({ row, score });
  }
  scored.sort((x, y) => x.score - y.score || x.row.attr.length - y.row.attr.length);
  return scored.slice(0, 20);
};

console.log('| query | matches | ms per search (20 results) | ms, first version (loop over every row) | first / now |');
console.log('|---|---:|---:|---:|---:|');
for (const query of ['git', 'python http', 'compiler3', 'terminal editor font', 'zzz-no-match']) {
  const page = index.search(query, 20, 0);
  const ms = timePerCall(() => index.search(query, 20, 0));
  const baseline = timePerCall(() => linearScan(query));
  console.log(`| \`${query}\` | ${page.total} | ${ms.toFixed(2)} | ${baseline.toFixed(2)} | ${(baseline / ms).toFixed(1)}× |`);
}
console.log(`| (empty: browse) | ${index.size} | ${timePerCall(() => index.search('', 20, 0)).toFixed(3)} | | |`);
console.log(`\nunknown-name check of 20 names: ${(timePerCall(() => index.unknown(Array.from({ length: 20 }, (_, i) => `python3packages.http-tool${i}`))) * 1000).toFixed(1)} µs`);

// The benchmark's graph families: each draws, from a seed, a sequence of
// images one client pulls in order, with the popularity data an origin
// serving them would have. Seeds decide everything (the generated package
// set as well as the images), so tuning on some seeds and reporting on
// others tells whether a choice holds on sequences it was not made on.
import type { ClosureGraph, Popularity } from '../../origin/layers/graph.ts';
import { parsePopularity } from '../../origin/layers/popularity.ts';
import { loadDebianGraph } from './debian.ts';
import { nixpkgsLike } from './nixpkgs-like.ts';
import { closureOf, closurePopularity, imageGraph, popcount, type PackageGraph } from './package-graph.ts';
import { prng, weighted } from './prng.ts';

export interface Sequence {
  readonly images: readonly ClosureGraph[];
  /** What the origin is given as NIX_POPULARITY_URL's data; absent when it has none. */
  readonly popularity?: Popularity;
  /** What the popularity counts (GroupOptions.counts). */
  readonly counts?: 'referrers' | 'closures';
  /** The same data keyed by name without hash (Nixery's own lookup). */
  readonly popularityByName: ReadonlyMap<string, number>;
  /** A closure of about 2,000 paths from the same package set, for timing. */
  readonly big: ClosureGraph;
  readonly describe: string;
}

export interface Family {
  readonly name: string;
  readonly about: string;
  sequence(seed: number): Sequence;
}

const TIMED_PATHS = 2000;

/** A closure of at least TIMED_PATHS paths: the union of closures of packages drawn until it is that big. */
function bigClosure(g: PackageGraph, draw: () => number): ClosureGraph {
  const roots: number[] = [];
  const seen = new Uint8Array(g.names.length);
  let size = 0;
  for (let tries = 0; size < TIMED_PATHS && tries < 1e6; tries++) {
    const p = draw();
    if (seen[p]) continue;
    roots.push(p);
    size += closureOf(g, [p], seen).length;
  }
  return imageGraph(g, roots);
}

function drawImages(g: PackageGraph, count: number, maxPackages: number, draw: () => number, random: () => number): ClosureGraph[] {
  const images: ClosureGraph[] = [];
  for (let k = 0; k < count; k++) {
    const n = 1 + Math.floor(random() * maxPackages);
    const chosen = new Set<number>();
    for (let tries = 0; chosen.size < n && tries < 1000; tries++) chosen.add(draw());
    images.push(imageGraph(g, [...chosen].sort((a, b) => (g.names[a]! < g.names[b]! ? -1 : 1))));
  }
  return images;
}

function describeImages(images: readonly ClosureGraph[]): string {
  const sizes = images.map((i) => i.paths.length).sort((a, b) => a - b);
  // Paths in exactly the same images can share a layer at no cost: the layers an offline grouping needs.
  const signature = new Map<string, string>();
  images.forEach((image, k) => {
    for (const p of image.paths) signature.set(p.path, `${signature.get(p.path) ?? ''},${k}`);
  });
  const classes = Math.max(...images.map((image) => new Set(image.paths.map((p) => signature.get(p.path))).size));
  return `${images.length} images, closures of ${sizes[0]}–${sizes[sizes.length - 1]} paths (median ${sizes[sizes.length >> 1]}), ${signature.size} distinct paths, ` +
    `at most ${classes} groups of paths always pulled together per image`;
}

let debian: { g: PackageGraph; pop: Uint32Array; popularity: Popularity; byName: Map<string, number> } | undefined;

/** Debian's real package graph; images of 1–5 packages drawn with weight √popularity, popularity from the whole archive. */
export const debianFamily: Family = {
  name: 'debian',
  about: "Debian's package graph, 50 images of 1–5 packages, closure-count popularity of the whole archive",
  sequence(seed) {
    if (!debian) {
      const g = loadDebianGraph();
      const pop = closurePopularity(g);
      const popularity = new Map<string, number>();
      const byName = new Map<string, number>();
      g.paths.forEach((path, i) => {
        popularity.set(path.slice('/nix/store/'.length), pop[i]!);
        byName.set(g.names[i]!, pop[i]!);
      });
      debian = { g, pop, popularity, byName };
    }
    const { g, pop, popularity, byName } = debian;
    const random = prng(seed);
    const draw = weighted(Array.from(pop, Math.sqrt), random);
    const images = drawImages(g, 50, 5, draw, random);
    return { images, popularity, counts: 'closures', popularityByName: byName, big: bigClosure(g, weighted(Array.from(pop, Math.sqrt), prng(seed ^ 0x2000))), describe: describeImages(images) };
  },
};

/**
 * An instance's traffic on a nixpkgs-like set: its users work with some tens
 * of programs (a team's stack), combined 1–6 at a time, the favourites more
 * often. The programs share small libraries few others in the set use.
 */
function instanceImages(seed: number, images: number): { g: PackageGraph; images: ClosureGraph[]; big: ClosureGraph } {
  const set = nixpkgsLike(seed);
  const random = prng(seed ^ 0x5eed);
  const focus: number[] = [];
  const pickProgram = (): number => set.programs[Math.floor(random() * set.programs.length)]!;
  while (focus.length < 30) {
    const p = pickProgram();
    if (!focus.includes(p)) focus.push(p);
  }
  const draw = weighted(focus.map((_, r) => 1 / (r + 1) ** 0.6), random);
  const drawn = drawImages(set.graph, images, 6, () => focus[draw()]!, random);
  return { g: set.graph, images: drawn, big: bigClosure(set.graph, pickProgram) };
}

function popularityFrom(counts: Map<string, number>): { popularity: Popularity; popularityByName: Map<string, number> } {
  // Through the origin's own parser, keyed by name without hash, as NIX_POPULARITY_URL's data reaches it.
  const popularity = parsePopularity(Object.fromEntries(counts));
  return { popularity, popularityByName: new Map(popularity) };
}

export const nixpkgsFamily: Family = {
  name: 'nixpkgs',
  about: 'nixpkgs-like generated set (deep library chains, many small libraries each shared by a few programs), 24 images of 1–6 of 30 programs, Nixery-format (popcount) popularity of the whole set',
  sequence(seed) {
    const { g, images, big } = instanceImages(seed, 24);
    return { images, ...popularityFrom(popcount(g)), big, describe: describeImages(images) };
  },
};

/**
 * Stale data: the popularity was published for an older revision of the
 * set. Since then 40% of the paths changed version (their names no longer
 * match), and the counts of a quarter of the rest moved by up to 3×.
 */
export const staleFamily: Family = {
  name: 'nixpkgs, stale data',
  about: 'as nixpkgs, but the popularity data is from an older revision: 40% of names changed since, a quarter of the other counts off by up to 3×',
  sequence(seed) {
    const { g, images, big } = instanceImages(seed, 24);
    const random = prng(seed ^ 0x57a1e);
    const stale = new Map<string, number>();
    for (const [name, count] of popcount(g)) {
      const r = random();
      if (r < 0.4) stale.set(`${name}.1`, count);
      else if (r < 0.6) stale.set(name, Math.max(2, Math.round(count * 3 ** (2 * random() - 1))));
      else stale.set(name, count);
    }
    return { images, ...popularityFrom(stale), big, describe: describeImages(images) };
  },
};

export const privateFamily: Family = {
  name: 'nixpkgs, no data',
  about: 'as nixpkgs, with no NIX_POPULARITY_URL (most private instances)',
  sequence(seed) {
    const { images, big } = instanceImages(seed, 24);
    return { images, popularityByName: new Map(), big, describe: describeImages(images) };
  },
};

/**
 * Debian's graph with no data: the no-data rules on a real package graph,
 * whose paths that refer to nothing are sometimes shared (debconf, xkb-data),
 * unlike the generated set's, where every one is owned.
 */
export const debianPrivateFamily: Family = {
  name: 'debian, no data',
  about: "Debian's sequences with no NIX_POPULARITY_URL: the no-data rules on a real package graph",
  sequence(seed) {
    const { images, big, describe } = debianFamily.sequence(seed);
    return { images, popularityByName: new Map(), big, describe };
  },
};

export const families: readonly Family[] = [debianFamily, nixpkgsFamily, staleFamily, privateFamily, debianPrivateFamily];

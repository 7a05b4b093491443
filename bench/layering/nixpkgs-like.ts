// A generated package set shaped like nixpkgs rather than Debian: a core
// every program needs (a C library, its compiler runtime, a shell), deep
// chains of libraries (a library built on libraries built on libraries, as
// language ecosystems and split outputs make them), many small libraries
// each needed by only a few programs, and programs that own data, manuals
// and wrappers nothing else refers to. Seeded: the same seed, the same set.
import { logNormal, prng, weighted } from './prng.ts';
import { makePackageGraph, type PackageGraph } from './package-graph.ts';

export interface NixpkgsLikeShape {
  readonly core: number;
  readonly libraries: number;
  /** Libraries are stacked in this many levels; a library refers to the few levels below it. */
  readonly depth: number;
  readonly programs: number;
  /** Zipf exponent of how often a library is picked by a program: low keeps most libraries shared by few. */
  readonly libraryZipf: number;
}

export const NIXPKGS_SHAPE: NixpkgsLikeShape = { core: 14, libraries: 900, depth: 12, programs: 1200, libraryZipf: 0.7 };

export interface GeneratedSet {
  readonly graph: PackageGraph;
  /** Indices of the programs: what users put in images. */
  readonly programs: readonly number[];
}

export function nixpkgsLike(seed: number, shape: NixpkgsLikeShape = NIXPKGS_SHAPE): GeneratedSet {
  const random = prng(seed);
  const names: string[] = [];
  const sizes: number[] = [];
  const deps: number[][] = [];
  const add = (name: string, size: number, refs: Iterable<number>): number => {
    names.push(`${name}-${1 + Math.floor(random() * 9)}.${Math.floor(random() * 20)}`);
    sizes.push(size);
    deps.push([...new Set(refs)]);
    return names.length - 1;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const owned = (owner: string, median: number, chance: number, max: number): number[] => {
    const out: number[] = [];
    for (let k = 0; k < max && random() < chance; k++) out.push(add(`${owner}-${pick(['share', 'man', 'data', 'locale', 'wrapped'])}${k}`, logNormal(random, median, 1.5), []));
    return out;
  };

  // The core: a chain where each refers to a few before it, the first refers to nothing.
  const core: number[] = [];
  for (let i = 0; i < shape.core; i++) {
    const refs = i === 0 ? [] : [0, ...Array.from({ length: Math.min(i, 2) }, () => core[Math.floor(random() * i)]!)];
    core.push(add(`core${i}`, logNormal(random, i === 0 ? 30e6 : 2e6, 0.8), refs));
  }

  // Libraries in levels: level k refers to one or two libraries of the two levels below, and to the core.
  const levels: number[][] = [];
  const perLevel = Math.ceil(shape.libraries / shape.depth);
  for (let k = 0; k < shape.depth; k++) {
    const level: number[] = [];
    for (let j = 0; j < perLevel; j++) {
      const refs: number[] = [pick(core.slice(0, 4))];
      if (random() < 0.3) refs.push(pick(core));
      const below = levels.slice(Math.max(0, k - 2), k).flat();
      const fan = below.length === 0 ? 0 : random() < 0.6 ? 1 : 2;
      for (let f = 0; f < fan; f++) refs.push(pick(below));
      const name = `lib${k}x${j}`;
      const big = random() < 0.03 ? 30 : 1;
      refs.push(...owned(name, 300e3, 0.35, 2));
      level.push(add(name, logNormal(random, 400e3 * big, 1.2), refs));
    }
    levels.push(level);
  }
  const libraries = levels.flat();
  // Zipf weights over a shuffled order, so a library's level does not decide how popular it is.
  const order = [...libraries];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const drawLibrary = weighted(order.map((_, r) => 1 / (r + 1) ** shape.libraryZipf), random);

  const programs: number[] = [];
  for (let i = 0; i < shape.programs; i++) {
    const name = `app${i}`;
    const refs: number[] = [core[0]!, pick(core)];
    const count = 1 + Math.floor(random() * 4);
    for (let k = 0; k < count; k++) refs.push(order[drawLibrary()]!);
    refs.push(...owned(name, 600e3, 0.6, 3));
    const big = random() < 0.04 ? 20 : 1;
    programs.push(add(name, logNormal(random, 2.5e6 * big, 1.3), refs));
  }
  return { graph: makePackageGraph(names, sizes, deps), programs };
}

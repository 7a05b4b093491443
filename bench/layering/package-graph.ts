// A package set as the benchmark handles it (Debian's, or a generated one)
// and how it is dressed up as Nix closures: each package becomes a store path
// with a fake but fixed hash, so the strategies see exactly what the origin
// would hand them.
import { createHash } from 'node:crypto';
import type { ClosureGraph, StorePathInfo } from '../../origin/layers/graph.ts';

export interface PackageGraph {
  readonly names: readonly string[];
  readonly sizes: readonly number[];
  readonly deps: readonly (readonly number[])[];
  /** Synthesised store path of each package. */
  readonly paths: readonly string[];
}

const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

export function fakeHash(name: string): string {
  const digest = createHash('sha256').update(name).digest();
  let out = '';
  for (let i = 0; i < 32; i++) out += NIX_BASE32[digest[i]! % 32];
  return out;
}

export function makePackageGraph(names: readonly string[], sizes: readonly number[], deps: readonly (readonly number[])[]): PackageGraph {
  return { names, sizes, deps, paths: names.map((n) => `/nix/store/${fakeHash(n)}-${n}`) };
}

/** The closure (package indices, itself included) of some packages. */
export function closureOf(g: PackageGraph, roots: readonly number[], seen = new Uint8Array(g.names.length)): number[] {
  const out: number[] = [];
  const stack = [...roots];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen[n]) continue;
    seen[n] = 1;
    out.push(n);
    for (const d of g.deps[n]!) if (!seen[d]) stack.push(d);
  }
  return out;
}

/**
 * For each package, how many packages' closures contain it (itself
 * included): the share of the archive that would pull it in, the measure
 * a registry serving arbitrary images cares about.
 */
export function closurePopularity(g: PackageGraph): Uint32Array {
  const count = new Uint32Array(g.names.length);
  const stamp = new Int32Array(g.names.length).fill(-1);
  const stack: number[] = [];
  for (let p = 0; p < g.names.length; p++) {
    stack.push(p);
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (stamp[n] === p) continue;
      stamp[n] = p;
      count[n]!++;
      for (const d of g.deps[n]!) if (stamp[d] !== p) stack.push(d);
    }
  }
  return count;
}

/**
 * Popularity as Nixery's popcount publishes it: per path name without hash,
 * how many paths list it among their references (every path lists itself
 * here, as imageGraph makes them), paths counted once dropped.
 */
export function popcount(g: PackageGraph): Map<string, number> {
  const count = new Uint32Array(g.names.length);
  for (let p = 0; p < g.names.length; p++) {
    count[p]!++;
    for (const d of new Set(g.deps[p]!)) if (d !== p) count[d]!++;
  }
  const out = new Map<string, number>();
  g.names.forEach((name, i) => {
    if (count[i]! > 1) out.set(name, count[i]!);
  });
  return out;
}

/** The runtime closure of an image made of some packages, as the origin would see it. */
export function imageGraph(g: PackageGraph, roots: readonly number[]): ClosureGraph {
  const members = closureOf(g, roots);
  const paths: StorePathInfo[] = members.map((n) => ({
    path: g.paths[n]!,
    narSize: g.sizes[n]!,
    // Nix lists a path among its own references when it refers to itself;
    // many do, so the strategies must cope with it.
    references: [g.paths[n]!, ...g.deps[n]!.map((d) => g.paths[d]!)],
  }));
  return { roots: roots.map((r) => g.paths[r]!), paths };
}

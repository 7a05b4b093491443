// Nixery's layering (layers.go in tazjin/nixery), re-implemented from its
// published description and behaviour:
//
// - a graph with an artificial image root, an edge from it to each package
//   the image asks for, an edge from every path to each path it references
//   (self-references skipped), and an extra edge from the root to every path
//   that is "big or popular": closure size over 100 MB, or popularity of at
//   least 100;
// - popularity looked up by the store path's name without hash (the form
//   popcount publishes), 1 when absent, 500000 for nss-cacert and iana-etc
//   (which Nixery adds to every image);
// - the dominator tree of that graph; each subtree under the root is a
//   layer, rated by its root's popularity × the summed closure sizes of its
//   paths (Nixery's node size is Nix's closureSize);
// - while there are more layers than the budget, the lowest-rated layer is
//   merged into the next one in ascending order of rating (the merged layer
//   keeps its place; the list is not re-sorted), which in effect pours the
//   lowest-rated layers into one.
//
// Where Go's unstable sort leaves ties to chance, ties here are broken by the
// layer's first path, so the benchmark is repeatable.
import { condense } from '../../../origin/layers/condensed.ts';
import { immediateDominators } from '../../../origin/layers/dominators.ts';
import type { ClosureGraph, LayerGroup } from '../../../origin/layers/graph.ts';
import type { Strategy } from './strategy.ts';

const SIZE_THRESHOLD = 100 * 1000000;
const POPULAR = 100;

function nameWithoutHash(path: string): string {
  return path.replace(/^\/nix\/store\/[a-z0-9]+-/, '');
}

/** Nix's closureSize of each path: its NAR size plus that of everything it references, transitively. */
function closureSizes(graph: ClosureGraph): Map<string, number> {
  const g = condense(graph);
  const units = g.members.length;
  const own = new Float64Array(units);
  for (let u = 0; u < units; u++) for (const i of g.members[u]!) own[u]! += g.narSize[i]!;
  const words = (units + 31) >>> 5;
  const bits = new Int32Array(units * words);
  const sizes = new Float64Array(units);
  for (let k = g.topo.length - 1; k >= 0; k--) {
    const u = g.topo[k]!;
    const row = u * words;
    bits[row + (u >>> 5)]! |= 1 << (u & 31);
    for (const v of g.succ[u]!) for (let w = 0; w < words; w++) bits[row + w]! |= bits[v * words + w]!;
    let total = 0;
    for (let w = 0; w < words; w++) {
      let word = bits[row + w]!;
      while (word !== 0) {
        const low = word & -word;
        total += own[(w << 5) + 31 - Math.clz32(low)]!;
        word ^= low;
      }
    }
    sizes[u] = total;
  }
  return new Map(g.paths.map((p, i) => [p, sizes[g.unitOf[i]!]!]));
}

interface Layer {
  contents: string[];
  rating: number;
}

export function nixeryGroup(graph: ClosureGraph, budget: number, popularityByName: ReadonlyMap<string, number>): LayerGroup[] {
  const paths = graph.paths.map((p) => p.path);
  const index = new Map(paths.map((p, i) => [p, i + 1])); // 0 is the image root
  const closureSize = closureSizes(graph);
  const size = [0, ...paths.map((p) => closureSize.get(p)!)];
  const pop = [0, ...paths.map((p) => {
    const id = nameWithoutHash(p);
    if (id.startsWith('nss-cacert') || id.startsWith('iana-etc')) return 500000;
    return popularityByName.get(id) ?? 1;
  })];

  const succ: Set<number>[] = Array.from({ length: paths.length + 1 }, () => new Set<number>());
  for (const r of graph.roots) {
    const i = index.get(r);
    if (i !== undefined) succ[0]!.add(i);
  }
  graph.paths.forEach((p, k) => {
    const i = k + 1;
    if (size[i]! > SIZE_THRESHOLD || pop[i]! >= POPULAR) succ[0]!.add(i);
    for (const ref of p.references) {
      const j = index.get(ref);
      if (j !== undefined && ref !== p.path) succ[i]!.add(j);
    }
  });
  const idom = immediateDominators(succ.map((s) => [...s]), 0);

  const children: number[][] = Array.from({ length: paths.length + 1 }, () => []);
  for (let i = 1; i <= paths.length; i++) if (idom[i]! >= 0) children[idom[i]!]!.push(i);

  const layers: Layer[] = children[0]!.map((top) => {
    const contents: string[] = [];
    let total = 0;
    for (const stack = [top]; stack.length > 0; ) {
      const n = stack.pop()!;
      contents.push(paths[n - 1]!);
      total += size[n]!;
      stack.push(...children[n]!);
    }
    contents.sort();
    return { contents, rating: pop[top]! * total };
  });
  layers.sort((a, b) => a.rating - b.rating || (a.contents[0]! < b.contents[0]! ? -1 : 1));

  while (layers.length > budget) {
    const [a, b] = layers as [Layer, Layer];
    layers[1] = { contents: [...a.contents, ...b.contents], rating: a.rating + b.rating };
    layers.shift();
  }
  return layers.map((l) => [...l.contents].sort());
}

export const nixery: Strategy = {
  name: "Nixery's dominator layering",
  group(graph, budget, context) {
    return nixeryGroup(graph, budget, context.popularityByName);
  },
};

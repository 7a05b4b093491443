// The grouping of origin/layers/group.ts as of commit 75a3e9d, before it learned from the
// instance's own images; the benchmark keeps it to compare against.

// Groups the store paths of a closure into layers so that clients pulling
// many different images download each store path as few times as possible.
//
// A client skips a layer it already has, and a layer is its set of store
// paths (identity.ts). So a path is downloaded again exactly when it turns
// up in a set the client has not seen before. One layer per path would be
// ideal; the budget forbids that for large closures, and the question is
// which paths can share a layer at the least cost in later pulls.
//
//  1. Free folds. Paths that refer to each other are always pulled together,
//     so each strongly connected component is one unit from the start
//     (condensed.ts). Then a path joins the layer of its immediate dominator
//     d (the last path every route to it passes through) when nothing
//     outside this image needs it without d. With popularity data that
//     counts, per path, the packages whose closure contains it, that is
//     exactly
//
//       excess(x, d) = (pop(x) − local(x)) − (pop(d) − local(d)) = 0
//
//     where local() is the same count inside this image: what is left of a
//     path's popularity is its demand elsewhere, and demand for x beyond d's
//     is demand for x without d. Such a path (a package's data, a library
//     only one program links) always travels with its owner, so the owner's
//     layer is the same set in every image and no pull ever pays for the
//     fold. Popular and shared paths have excess, keep their own layer, and
//     that layer holds only themselves and what they own: nothing else in
//     the image changes it.
//  2. The cut, only when the layers still outnumber the budget: the
//     budget − 1 layers worth most to keep apart keep their own, and the
//     others share one remainder layer, which will rarely be seen again. A
//     layer's worth is its bytes × √popularity: what pulling it again would
//     cost times how likely another image is to hold it, a likelihood that
//     grows with popularity but saturates, since a client needs a layer once
//     however many images hold it. The remainder thus gets small, unpopular
//     leftovers, mostly new to the client anyway.
//
// Without popularity data there is no demand to compare: a path joins its
// dominator when nothing else in the image refers to it, and its popularity
// is computed from the image itself (popularity.ts).
//
// Nixery also starts from the dominator tree, but keeps only its top-level
// subtrees as layers, so a path's layer depends on which other packages
// share it in this image, and, over budget, merges the lowest-rated layers,
// however popular their contents, into one that changes with every image.
// nixpkgs' popularity contest ranks paths by how many routes reach them
// inside this one image, so which paths get the last, mixed layer shifts with
// the image, and nothing a package owns travels with it. Here the ranking
// comes from the whole package set and the only folds are the free ones.
import { condense, containmentCounts, type CondensedGraph } from '../../../origin/layers/condensed.ts';
import { immediateDominators } from '../../../origin/layers/dominators.ts';
import type { ClosureGraph, LayerGroup, Popularity } from '../../../origin/layers/graph.ts';
import { popularityOf } from '../../../origin/layers/popularity.ts';
import { Layers } from '../../../origin/layers/layer-sets.ts';


export interface GroupOptions {
  /** Maximum number of layers for store paths (the symlink layer is extra). */
  readonly budget: number;
  /**
   * How many packages need each store path (parsePopularity, or
   * computePopularity over a larger graph than this image's). Paths it does
   * not list are taken to be needed by nothing outside this image.
   */
  readonly popularity?: Popularity;
}

function groupLayersPrevious(graph: ClosureGraph, options: GroupOptions): LayerGroup[] {
  const { budget } = options;
  if (!Number.isInteger(budget) || budget < 1) throw new Error(`layer budget must be a whole number of at least 1, got ${budget}`);
  const g = condense(graph);
  const units = g.members.length;
  if (units === 0) return [];

  const bytes = new Float64Array(units);
  for (let u = 0; u < units; u++) for (const i of g.members[u]!) bytes[u]! += g.narSize[i]!;
  const local = containmentCounts(g);
  const pop = new Float64Array(units);
  const demand = new Float64Array(units);
  for (let u = 0; u < units; u++) {
    if (options.popularity) {
      // Paths of one unit are in the same closures, so the best-known count speaks for all of them.
      let best = -1;
      for (const i of g.members[u]!) best = Math.max(best, popularityOf(options.popularity, g.paths[i]!) ?? -1);
      pop[u] = best < 0 ? local[u]! : best;
      demand[u] = Math.max(0, pop[u]! - local[u]!);
    } else {
      pop[u] = local[u]!;
    }
  }
  const excess = options.popularity
    ? (x: number, into: number): number => demand[x]! - demand[into]!
    : (x: number): number => g.pred[x]!.length - 1;

  const entry = units;
  const idom = immediateDominators([...g.succ, g.roots], entry);
  const isRoot = new Uint8Array(units);
  for (const r of g.roots) isRoot[r] = 1;

  const layers = new Layers(bytes);

  // 1. Free folds, from the top of the closure down so chains collapse in one pass.
  for (const u of g.topo) {
    const d = idom[u]!;
    if (!isRoot[u] && d !== entry && d >= 0 && excess(u, d) <= 0) layers.join(u, d);
  }

  // 2. The cut.
  if (layers.count > budget) {
    const worth = (u: number): number => layers.bytes(u) * Math.sqrt(pop[u]!);
    const tops = layers.tops().sort((a, b) => worth(b) - worth(a) || a - b);
    const [remainder, ...rest] = tops.slice(budget - 1);
    for (const t of rest) layers.join(t, remainder!);
  }

  return layers.groups(g);
}


import type { Strategy } from './strategy.ts';

/** The grouping as it was before it learned from the instance's images: kept to show what changed. */
export const previous: Strategy = {
  name: 'nixery-edge before (√ weight, published data only)',
  group(graph, budget, context) {
    return groupLayersPrevious(graph, { budget, popularity: context.popularity });
  },
};

// nixpkgs' referencesByPopularity (closure-graph.py) with the layer cut of
// dockerTools.streamLayeredImage, re-implemented from their description:
//
// - the roots of the closure are the paths no other path references;
// - every root-to-path route in the reference graph (self-references
//   dropped) is walked, and each path scores, summed over the routes that
//   reach it, how far down them it sits: a route root → a → b gives a 1,
//   b 2, and a path reached by many long routes scores high. Per-path
//   results are memoised, as the original does;
// - paths are ranked by that score, highest first, ties by the path's name
//   with the hash moved to the end; paths never reached (only in a cycle
//   with no root) come last;
// - streamLayeredImage gives each of the first budget − 1 paths its own
//   layer and puts all the others in the last one.
//
// The original recurses forever on a reference cycle other than a
// self-reference; here an edge back to a path being expanded is ignored.
import type { ClosureGraph, LayerGroup } from '../../../origin/layers/graph.ts';
import type { Strategy } from './strategy.ts';

function packageName(path: string): string {
  const parts = path.split('-');
  const start = parts.shift()!;
  parts.push(start);
  return parts.join('-');
}

export function popularityContest(graph: ClosureGraph): string[] {
  const lookup = new Map<string, string[]>();
  for (const p of graph.paths) lookup.set(p.path, p.references.filter((r) => r !== p.path && r !== undefined));
  const referenced = new Set<string>();
  for (const [path, refs] of lookup) for (const r of refs) if (r !== path) referenced.add(r);
  const roots = [...lookup.keys()].filter((p) => !referenced.has(p)).sort();

  const cache = new Map<string, Map<string, number>>();
  const expanding = new Set<string>();
  // contest(path): the scores of everything below path, counted from path's children.
  const contest = (path: string): Map<string, number> => {
    const cached = cache.get(path);
    if (cached) return cached;
    expanding.add(path);
    const scores = new Map<string, number>();
    for (const child of lookup.get(path) ?? []) {
      if (expanding.has(child) || !lookup.has(child)) continue;
      scores.set(child, (scores.get(child) ?? 0) + 1);
      for (const [sub, score] of contest(child)) scores.set(sub, (scores.get(sub) ?? 0) + score + 1);
    }
    expanding.delete(path);
    cache.set(path, scores);
    return scores;
  };
  const popularity = new Map<string, number>();
  for (const root of roots) {
    popularity.set(root, (popularity.get(root) ?? 0) + 1);
    for (const [sub, score] of contest(root)) popularity.set(sub, (popularity.get(sub) ?? 0) + score + 1);
  }

  const ordered = [...popularity.keys()].sort((a, b) => {
    const d = popularity.get(b)! - popularity.get(a)!;
    if (d !== 0) return d;
    const na = packageName(a);
    const nb = packageName(b);
    return na < nb ? -1 : na > nb ? 1 : 0;
  });
  const missing = [...lookup.keys()].filter((p) => !popularity.has(p)).sort();
  return [...ordered, ...missing];
}

export const popularityContestStrategy: Strategy = {
  name: 'nixpkgs popularity contest',
  group(graph, budget): LayerGroup[] {
    const ordered = popularityContest(graph);
    const own = ordered.slice(0, budget - 1).map((p) => [p]);
    const rest = ordered.slice(budget - 1).sort();
    return rest.length > 0 ? [...own, rest] : own;
  },
};

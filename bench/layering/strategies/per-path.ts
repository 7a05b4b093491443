// One layer per store path, biggest first, and everything that does not fit
// the budget in one last layer: what a registry does when it knows nothing
// about other images.
import type { Strategy } from './strategy.ts';

export const perPath: Strategy = {
  name: 'one layer per path, cut at the budget',
  group(graph, budget) {
    const ordered = [...graph.paths].sort((a, b) => b.narSize - a.narSize || (a.path < b.path ? -1 : 1));
    const own = ordered.slice(0, budget - 1).map((p) => [p.path]);
    const rest = ordered.slice(budget - 1).map((p) => p.path).sort();
    return rest.length > 0 ? [...own, rest] : own;
  },
};

// The origin's grouping, as it runs in production: published data and what it learned from the images it built.
import { groupLayers } from '../../../origin/layers/group.ts';
import type { Strategy } from './strategy.ts';

export const ours: Strategy = {
  name: 'nixery-edge (ours)',
  group(graph, budget, context) {
    return groupLayers(graph, { budget, popularity: context.popularity, counts: context.counts, learned: context.learned });
  },
};

/** The same with nothing learned: what a fresh instance does. */
export const oursUnlearned: Strategy = {
  name: 'nixery-edge (ours), nothing learned',
  group(graph, budget, context) {
    return groupLayers(graph, { budget, popularity: context.popularity, counts: context.counts });
  },
};

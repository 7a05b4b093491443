// The origin's grouping, as it runs in production.
import { groupLayers } from '../../../origin/layers/group.ts';
import type { Strategy } from './strategy.ts';

export const ours: Strategy = {
  name: 'nixery-edge (ours)',
  group(graph, budget, context) {
    return groupLayers(graph, { budget, popularity: context.popularity });
  },
};

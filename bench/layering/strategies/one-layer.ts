// The baseline without layering: the whole closure in one layer, as a plain
// `docker build` of a Nix closure would ship it.
import type { Strategy } from './strategy.ts';

export const oneLayer: Strategy = {
  name: 'one layer',
  group(graph) {
    const paths = [...new Set(graph.paths.map((p) => p.path))].sort();
    return paths.length > 0 ? [paths] : [];
  },
};

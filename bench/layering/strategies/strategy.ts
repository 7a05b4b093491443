// What every layering strategy in the benchmark looks like: a closure and a
// layer budget in, layers out, with the popularity data of the whole
// package set at hand for those that use it.
import type { ClosureGraph, LayerGroup, Popularity } from '../../../origin/layers/graph.ts';

export interface StrategyContext {
  /** Keyed by store path name with hash (`<hash>-<name>`), this repository's form. */
  readonly popularity: Popularity;
  /** Keyed by name without hash, the form Nixery's popcount publishes. */
  readonly popularityByName: ReadonlyMap<string, number>;
}

export interface Strategy {
  readonly name: string;
  group(graph: ClosureGraph, budget: number, context: StrategyContext): LayerGroup[];
}

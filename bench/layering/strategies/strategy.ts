// What every layering strategy in the benchmark looks like: a closure and a
// layer budget in, layers out, with the popularity data the origin has at
// hand for those that use it.
import type { ClosureGraph, LayerGroup, Popularity } from '../../../origin/layers/graph.ts';
import type { LearnedPopularity } from '../../../origin/layers/learned-popularity.ts';

export interface StrategyContext {
  /** NIX_POPULARITY_URL's data as the origin parses it; absent when there is none. */
  readonly popularity?: Popularity;
  /** What the popularity counts (GroupOptions.counts). */
  readonly counts?: 'referrers' | 'closures';
  /** Keyed by name without hash, the form Nixery's popcount publishes (empty when there is none). */
  readonly popularityByName: ReadonlyMap<string, number>;
  /** What the origin learned from the images it built before this one. */
  readonly learned?: LearnedPopularity;
}

export interface Strategy {
  readonly name: string;
  group(graph: ClosureGraph, budget: number, context: StrategyContext): LayerGroup[];
}

// The benchmark's simulation: one client pulling a sequence of images through
// an origin that remembers the images it built (a repeated image is served
// as it was) and learns from them (two replicas taking turns, their counts
// merged), counting the bytes the client downloads.
import type { ClosureGraph, LayerGroup } from '../../origin/layers/graph.ts';
import { layerId } from '../../origin/layers/identity.ts';
import { mergeRecords, ReplicaCounter, type LearnedPopularity } from '../../origin/layers/learned-popularity.ts';
import type { Sequence } from './families.ts';
import type { Strategy, StrategyContext } from './strategies/strategy.ts';

export function check(strategy: Strategy, graph: ClosureGraph, groups: LayerGroup[], budget: number): void {
  const seen = new Set<string>();
  for (const group of groups) for (const p of group) {
    if (seen.has(p)) throw new Error(`${strategy.name}: ${p} is in two layers`);
    seen.add(p);
  }
  if (seen.size !== graph.paths.length) throw new Error(`${strategy.name}: ${graph.paths.length - seen.size} paths in no layer`);
  if (groups.length > budget && strategy.name !== 'one layer') throw new Error(`${strategy.name}: ${groups.length} layers over a budget of ${budget}`);
}

const imageKey = (image: ClosureGraph): string => [...image.roots].sort().join(' ');

/** The origin as the client sees it: an image cache, and counts learned by two replicas building in turn. */
export class Origin {
  readonly #replicas = [new ReplicaCounter('a'), new ReplicaCounter('b')];
  readonly #built = new Map<string, LayerGroup[]>();
  #view: LearnedPopularity = mergeRecords([]);
  #sinceRefresh = 0;
  #turn = 0;

  readonly strategy: Strategy;
  readonly sequence: Sequence;
  readonly budget: number;
  /** Learned counts reach the layering every `refreshEvery` images (1: after every image). */
  readonly refreshEvery: number;

  constructor(strategy: Strategy, sequence: Sequence, budget: number, refreshEvery: number) {
    this.strategy = strategy;
    this.sequence = sequence;
    this.budget = budget;
    this.refreshEvery = refreshEvery;
  }

  pull(image: ClosureGraph, rebuild = false): LayerGroup[] {
    const key = imageKey(image);
    const cached = this.#built.get(key);
    if (cached && !rebuild) return cached;
    const context: StrategyContext = { popularity: this.sequence.popularity, counts: this.sequence.counts, popularityByName: this.sequence.popularityByName, learned: this.#view };
    const groups = this.strategy.group(image, this.budget, context);
    check(this.strategy, image, groups, this.budget);
    this.#built.set(key, groups);
    this.observe(image);
    return groups;
  }

  observe(image: ClosureGraph): void {
    const replica = this.#replicas[this.#turn++ % 2]!;
    if (!replica.observe(imageKey(image), image.paths.map((p) => p.path))) return;
    if (++this.#sinceRefresh >= this.refreshEvery) {
      this.#sinceRefresh = 0;
      this.#view = mergeRecords(this.#replicas.map((r) => r.record()));
    }
  }

  get learned(): LearnedPopularity {
    return this.#view;
  }
}

export interface Run {
  ratio: number;
  layers: number;
  maxLayers: number;
  /** Bytes a warm client downloads again when every image is rebuilt after more traffic, / ideal. */
  drift: number;
  origin: Origin;
}

export function run(strategy: Strategy, sequence: Sequence, budget: number, refreshEvery = 1): Run {
  const origin = new Origin(strategy, sequence, budget, refreshEvery);
  const cache = new Set<string>();
  /** Bytes of the layers of one pull the client does not have yet. */
  const pull = (image: ClosureGraph, groups: LayerGroup[]): number => {
    const size = new Map(image.paths.map((p) => [p.path, p.narSize]));
    let bytes = 0;
    for (const group of groups) {
      const id = layerId(group);
      if (cache.has(id)) continue;
      cache.add(id);
      for (const p of group) bytes += size.get(p)!;
    }
    return bytes;
  };
  const union = new Map<string, number>();
  let downloaded = 0;
  let layers = 0;
  let maxLayers = 0;
  for (const image of sequence.images) {
    for (const p of image.paths) union.set(p.path, p.narSize);
    const groups = origin.pull(image);
    layers += groups.length;
    maxLayers = Math.max(maxLayers, groups.length);
    downloaded += pull(image, groups);
  }
  let ideal = 0;
  for (const bytes of union.values()) ideal += bytes;
  // Drift: the origin goes on learning from other clients' images (here the
  // same package combinations again, seen by the origin only), its image
  // cache is lost, and this client pulls every image once more.
  for (const image of [...sequence.images].reverse()) origin.observe({ ...image, roots: [...image.roots, 'other-traffic'] });
  let again = 0;
  for (const image of sequence.images) again += pull(image, origin.pull(image, true));
  return { ratio: downloaded / ideal, layers: layers / sequence.images.length, maxLayers, drift: again / ideal, origin };
}


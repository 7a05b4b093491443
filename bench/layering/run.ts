// Judges the layering strategies on Debian's package graph (see
// make-debian-graph.ts): one fixed-seed sequence of images, pulled in order
// by one client whose layer cache keeps everything it pulled before.
//
// Run: node_modules/.bin/node bench/layering/run.ts
import type { ClosureGraph, LayerGroup } from '../../origin/layers/graph.ts';
import { layerId } from '../../origin/layers/identity.ts';
import { closureOf, closurePopularity, imageGraph, loadDebianGraph, type PackageGraph } from './debian.ts';
import { nixery } from './strategies/nixery.ts';
import { oneLayer } from './strategies/one-layer.ts';
import { ours } from './strategies/ours.ts';
import { perPath } from './strategies/per-path.ts';
import { popularityContestStrategy } from './strategies/popularity-contest.ts';
import type { Strategy, StrategyContext } from './strategies/strategy.ts';

const SEED = 0x6e697872; // "nixr"
const IMAGES = 50;
const BUDGETS = [99, 20];
const TIMED_PATHS = 2000;
const TIMING_RUNS = 5;
const strategies: Strategy[] = [oneLayer, perPath, nixery, popularityContestStrategy, ours];

/** mulberry32: small, fast, and the same sequence on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Packages drawn with weight √popularity: libraries many packages need come
 * up often, as they do in real images, while the long tail of leaf programs
 * (weight 1 each, but tens of thousands of them) still makes up a fair share.
 */
function sampler(pop: Uint32Array, random: () => number): () => number {
  const cumulative = new Float64Array(pop.length);
  let total = 0;
  for (let i = 0; i < pop.length; i++) cumulative[i] = total += Math.sqrt(pop[i]!);
  return () => {
    const x = random() * total;
    let lo = 0;
    let hi = pop.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

function drawImages(g: PackageGraph, pop: Uint32Array): number[][] {
  const random = prng(SEED);
  const draw = sampler(pop, random);
  const images: number[][] = [];
  for (let k = 0; k < IMAGES; k++) {
    const count = 1 + Math.floor(random() * 5);
    const chosen = new Set<number>();
    while (chosen.size < count) chosen.add(draw());
    images.push([...chosen].sort((a, b) => g.names[a]! < g.names[b]! ? -1 : 1));
  }
  return images;
}

/** A closure of at least TIMED_PATHS paths: the union of closures of packages drawn until it is that big. */
function bigClosure(g: PackageGraph, pop: Uint32Array): ClosureGraph {
  const random = prng(SEED ^ 0x2000);
  const draw = sampler(pop, random);
  const roots: number[] = [];
  const seen = new Uint8Array(g.names.length);
  let size = 0;
  while (size < TIMED_PATHS) {
    const p = draw();
    if (seen[p]) continue;
    roots.push(p);
    size += closureOf(g, [p], seen).length;
  }
  return imageGraph(g, roots);
}

function check(strategy: Strategy, graph: ClosureGraph, groups: LayerGroup[], budget: number): void {
  const seen = new Set<string>();
  for (const group of groups) for (const p of group) {
    if (seen.has(p)) throw new Error(`${strategy.name}: ${p} is in two layers`);
    seen.add(p);
  }
  if (seen.size !== graph.paths.length) throw new Error(`${strategy.name}: ${graph.paths.length - seen.size} paths in no layer`);
  if (groups.length > budget && strategy !== oneLayer) throw new Error(`${strategy.name}: ${groups.length} layers over a budget of ${budget}`);
}

interface Row {
  strategy: Strategy;
  ratio: number;
  meanLayers: number;
  maxLayers: number;
  bestMs: number;
  medianMs: number;
}

function evaluate(strategy: Strategy, images: ClosureGraph[], budget: number, context: StrategyContext, ideal: number, timed: ClosureGraph): Row {
  const cache = new Set<string>();
  let downloaded = 0;
  let layers = 0;
  let maxLayers = 0;
  for (const image of images) {
    const size = new Map(image.paths.map((p) => [p.path, p.narSize]));
    const groups = strategy.group(image, budget, context);
    check(strategy, image, groups, budget);
    layers += groups.length;
    maxLayers = Math.max(maxLayers, groups.length);
    for (const group of groups) {
      const id = layerId(group);
      if (cache.has(id)) continue;
      cache.add(id);
      for (const p of group) downloaded += size.get(p)!;
    }
  }
  const times: number[] = [];
  strategy.group(timed, budget, context); // warm-up: let the JIT settle before the clock runs
  for (let r = 0; r < TIMING_RUNS; r++) {
    const t0 = performance.now();
    strategy.group(timed, budget, context);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return {
    strategy,
    ratio: downloaded / ideal,
    meanLayers: layers / images.length,
    maxLayers,
    bestMs: times[0]!,
    medianMs: times[times.length >> 1]!,
  };
}

function table(rows: Row[]): string {
  const lines = [
    '| strategy | downloaded / ideal | layers per image (mean) | (max) | group 2,000 paths, ms (best / median) |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    lines.push(`| ${r.strategy.name} | ${r.ratio.toFixed(3)} | ${r.meanLayers.toFixed(1)} | ${r.maxLayers} | ${r.bestMs.toFixed(1)} / ${r.medianMs.toFixed(1)} |`);
  }
  return lines.join('\n');
}

function main(): void {
  const g = loadDebianGraph();
  const pop = closurePopularity(g);
  const popularity = new Map<string, number>();
  const popularityByName = new Map<string, number>();
  g.paths.forEach((path, i) => {
    popularity.set(path.slice('/nix/store/'.length), pop[i]!);
    popularityByName.set(g.names[i]!, pop[i]!);
  });
  const context: StrategyContext = { popularity, popularityByName };

  const drawn = drawImages(g, pop);
  const images = drawn.map((roots) => imageGraph(g, roots));
  const union = new Set<number>();
  for (const roots of drawn) for (const p of closureOf(g, roots)) union.add(p);
  let ideal = 0;
  for (const p of union) ideal += g.sizes[p]!;
  const timed = bigClosure(g, pop);
  const sizes = images.map((i) => i.paths.length).sort((a, b) => a - b);

  console.log(`Debian graph: ${g.names.length} packages. ${IMAGES} images of 1–5 packages (seed ${SEED.toString(16)}), ` +
    `closures of ${sizes[0]}–${sizes[sizes.length - 1]} paths (median ${sizes[sizes.length >> 1]}), ` +
    `${union.size} distinct paths, ideal download ${(ideal / 2 ** 20).toFixed(1)} MiB. Timing on a ${timed.paths.length}-path closure.`);

  let failed = false;
  for (const budget of BUDGETS) {
    const rows = strategies.map((s) => evaluate(s, images, budget, context, ideal, timed));
    console.log(`\n### Layer budget ${budget}\n\n${table(rows)}`);
    const mine = rows.find((r) => r.strategy === ours)!;
    const beaten = rows.filter((r) => r.strategy !== ours && r.ratio < mine.ratio);
    if (beaten.length > 0) {
      failed = true;
      console.log(`\nours is beaten at budget ${budget} by: ${beaten.map((r) => r.strategy.name).join(', ')}`);
    }
    if (budget === 99 && mine.ratio > 1.1) {
      failed = true;
      console.log(`\nours is ${mine.ratio.toFixed(3)}× the ideal at budget 99, over the 1.10 target`);
    }
  }
  if (failed) process.exitCode = 1;
}

main();

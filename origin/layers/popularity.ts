// Popularity of store paths: how much of the package set needs each one.
//
// Nixery publishes it as a JSON object from a store path's name to a count,
// made by its `popcount` tool: for every path of a nixpkgs channel it reads
// the narinfo's References and counts, per referenced path, how many
// narinfos list it, then drops the paths counted once (only their own
// self-reference). popcount strips the hash from each reference before
// counting (`<hash>-<name>` → `<name>`), so its keys are names without hash,
// e.g. "glibc-2.38"; Nixery's layers.go likewise looks a path up by its name
// with `/nix/store/<hash>-` removed, defaulting to 1. Keys with the hash
// (`<hash>-glibc-2.38`) are what this repository's Popularity type is keyed
// by and are more precise (two builds of the same name stay apart), so a
// lookup tries the full name first, then the name without hash.
import { condense, containmentCounts } from './condensed.ts';
import { storePathName, type ClosureGraph, type Popularity } from './graph.ts';

const NIX_HASH = /^[0-9a-z]{32}-/;

/**
 * Validates popularity data as Nixery serves it (the parsed JSON, or its
 * text) and returns it as a map. Keys may be names with or without the hash;
 * a full store path is reduced to its name. Counts must be non-negative
 * integers, as popcount writes them and Go's decoder into map[string]int
 * demands.
 */
export function parsePopularity(json: unknown): Popularity {
  let value = json;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch (err) {
      throw new Error(`popularity data is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new Error(`popularity data must be a JSON object mapping store path names to counts, got ${kind}`);
  }
  const out = new Map<string, number>();
  for (const [key, count] of Object.entries(value)) {
    const name = storePathName(key.trim());
    if (name === '') throw new Error(`popularity data has an empty store path name (key ${JSON.stringify(key)})`);
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
      throw new Error(`popularity of ${JSON.stringify(key)} must be a non-negative integer, got ${JSON.stringify(count)}`);
    }
    // A path given twice (as a full path and as a name) keeps its larger count.
    out.set(name, Math.max(out.get(name) ?? 0, count));
  }
  return out;
}

/** The popularity recorded for a store path: by its full name, else by its name without hash. */
export function popularityOf(popularity: Popularity, path: string): number | undefined {
  const name = storePathName(path);
  const exact = popularity.get(name);
  if (exact !== undefined) return exact;
  return NIX_HASH.test(name) ? popularity.get(name.slice(33)) : undefined;
}

/**
 * Popularity computed from a closure graph, for when no data was published:
 * for each path, how many paths of the graph have it in their closure (itself
 * included).
 *
 * Counting closures rather than the roots that reach a path, because roots
 * are too few to tell paths apart (an image has a handful, so nearly every
 * count would be 1 or 2) while closures grade them: the C library is in
 * almost every closure, a package's private data file in one or two. On the
 * graph of a whole package set (or of every image the origin has built so
 * far) the count is exactly the share of packages that would pull the path
 * into an image, the quantity layering cares about; on a single image's
 * graph it is the same measure, seen through that image only.
 */
export function computePopularity(graph: ClosureGraph): Popularity {
  const g = condense(graph);
  const counts = containmentCounts(g);
  const out = new Map<string, number>();
  g.paths.forEach((path, i) => out.set(storePathName(path), counts[g.unitOf[i]!]!));
  return out;
}

/**
 * Popularity as Nixery's popcount computes it over a package set: per path,
 * how many paths list it among their references (itself included when it
 * refers to itself), paths counted once left out. What NIX_POPULARITY_URL
 * serves, computed here from a graph for tests and benchmarks.
 */
export function countReferrers(graph: ClosureGraph): Popularity {
  const count = new Map<string, number>();
  for (const p of graph.paths) {
    for (const r of new Set(p.references)) count.set(storePathName(r), (count.get(storePathName(r)) ?? 0) + 1);
  }
  const listed = new Set(graph.paths.map((p) => storePathName(p.path)));
  const out = new Map<string, number>();
  for (const [name, c] of count) if (c > 1 && listed.has(name)) out.set(name, c);
  return out;
}

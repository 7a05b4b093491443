// A closure graph normalised for the layering algorithms: store paths in
// byte order (so nothing depends on the order Nix listed them in), references
// to paths outside the closure and self-references dropped, and strongly
// connected components collapsed into units.
//
// Collapsing is free for caching: paths that refer to each other are always
// in the same closures, so keeping them in one layer never costs a download
// that keeping them apart would have saved, and the rest of the algorithm
// works on a DAG.
import type { ClosureGraph } from './graph.ts';

export interface CondensedGraph {
  /** Every store path once, sorted. */
  readonly paths: readonly string[];
  readonly narSize: readonly number[];
  /** unitOf[path index] = the unit (strongly connected component) holding it. */
  readonly unitOf: Int32Array;
  /** Path indices of each unit, ascending; units are numbered in order of their first path. */
  readonly members: readonly (readonly number[])[];
  /** Units each unit refers to directly, ascending, without itself. */
  readonly succ: readonly (readonly number[])[];
  /** Units that refer to each unit directly, ascending. */
  readonly pred: readonly (readonly number[])[];
  /** Units in an order where every unit precedes the units it refers to. */
  readonly topo: readonly number[];
  /** Units the image is made of: the graph's roots, plus any unit nothing refers to. */
  readonly roots: readonly number[];
}

const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function condense(graph: ClosureGraph): CondensedGraph {
  // Nix lists each path once; should a caller repeat one, the copies are
  // merged rather than trusted in whatever order they came.
  const slot = new Map<string, number>();
  const given: { narSize: number; references: string[] }[] = [];
  for (const p of graph.paths) {
    const at = slot.get(p.path);
    if (at === undefined) {
      slot.set(p.path, given.length);
      given.push({ narSize: p.narSize, references: [...p.references] });
    } else {
      given[at]!.narSize = Math.max(given[at]!.narSize, p.narSize);
      given[at]!.references.push(...p.references);
    }
  }
  const paths = [...slot.keys()].sort(byteOrder);
  const index = new Map<string, number>();
  paths.forEach((p, i) => index.set(p, i));
  const n = paths.length;
  const narSize = paths.map((p) => given[slot.get(p)!]!.narSize);
  const refs = paths.map((p, i) => {
    const out: number[] = [];
    for (const r of given[slot.get(p)!]!.references) {
      const j = index.get(r);
      if (j !== undefined && j !== i) out.push(j);
    }
    return sortedUnique(out);
  });

  const component = tarjan(refs);
  // Renumber components by their smallest path so unit numbers, like path
  // numbers, follow byte order: paths are visited in order, so a component
  // is numbered when its first path is met.
  const renumber = new Int32Array(n).fill(-1);
  const unitOf = new Int32Array(n);
  const members: number[][] = [];
  for (let i = 0; i < n; i++) {
    const c = component[i]!;
    if (renumber[c] === -1) {
      renumber[c] = members.length;
      members.push([]);
    }
    unitOf[i] = renumber[c]!;
    members[renumber[c]!]!.push(i);
  }

  const units = members.length;
  const succ: number[][] = Array.from({ length: units }, () => []);
  for (let i = 0; i < n; i++) {
    const u = unitOf[i]!;
    for (const j of refs[i]!) if (unitOf[j] !== u) succ[u]!.push(unitOf[j]!);
  }
  for (let u = 0; u < units; u++) succ[u] = sortedUnique(succ[u]!);
  const pred: number[][] = Array.from({ length: units }, () => []);
  for (let u = 0; u < units; u++) for (const v of succ[u]!) pred[v]!.push(u);

  const topo = topologicalOrder(succ, pred);
  const isRoot = new Uint8Array(units);
  for (const r of graph.roots) {
    const i = index.get(r);
    if (i !== undefined) isRoot[unitOf[i]!] = 1;
  }
  // A path nothing refers to and nobody asked for still has to ship.
  const roots: number[] = [];
  for (let u = 0; u < units; u++) if (isRoot[u] || pred[u]!.length === 0) roots.push(u);

  return { paths, narSize, unitOf, members, succ, pred, topo, roots };
}

function sortedUnique(xs: number[]): number[] {
  xs.sort((a, b) => a - b);
  let k = 0;
  for (let i = 0; i < xs.length; i++) if (i === 0 || xs[i] !== xs[i - 1]) xs[k++] = xs[i]!;
  xs.length = k;
  return xs;
}

/** Strongly connected components (Tarjan), iteratively: closures can be thousands deep. */
function tarjan(succ: readonly (readonly number[])[]): Int32Array {
  const n = succ.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const comp = new Int32Array(n).fill(-1);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  const cursor = new Int32Array(n);
  let counter = 0;
  let comps = 0;
  for (let s = 0; s < n; s++) {
    if (index[s] !== -1) continue;
    const call: number[] = [s];
    index[s] = low[s] = counter++;
    stack.push(s);
    onStack[s] = 1;
    while (call.length > 0) {
      const v = call[call.length - 1]!;
      const next = succ[v]!;
      if (cursor[v]! < next.length) {
        const w = next[cursor[v]!++]!;
        if (index[w] === -1) {
          index[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = 1;
          call.push(w);
        } else if (onStack[w]) {
          low[v] = Math.min(low[v]!, index[w]!);
        }
        continue;
      }
      call.pop();
      const parent = call[call.length - 1];
      if (parent !== undefined) low[parent] = Math.min(low[parent]!, low[v]!);
      if (low[v] === index[v]) {
        let w: number;
        do {
          w = stack.pop()!;
          onStack[w] = 0;
          comp[w] = comps;
        } while (w !== v);
        comps++;
      }
    }
  }
  return comp;
}

/** Kahn's algorithm, taking the smallest ready unit first so the order is canonical. */
function topologicalOrder(succ: readonly (readonly number[])[], pred: readonly (readonly number[])[]): number[] {
  const waiting = pred.map((p) => p.length);
  const ready: number[] = [];
  for (let u = 0; u < succ.length; u++) if (waiting[u] === 0) ready.push(u);
  const order: number[] = [];
  // The DAG has no cycles left, so a plain FIFO suffices; units enter it in a fixed order.
  for (let head = 0; head < ready.length; head++) {
    const u = ready[head]!;
    order.push(u);
    for (const v of succ[u]!) if (--waiting[v]! === 0) ready.push(v);
  }
  return order;
}

/**
 * For each unit, how many store paths of the graph have it in their closure
 * (its own paths included): transitive closures as bitsets, built from the
 * leaves up, so a 2,000-path closure costs a few hundred thousand word
 * operations.
 */
export function containmentCounts(g: CondensedGraph): Float64Array {
  const units = g.members.length;
  const words = (units + 31) >>> 5;
  const bits = new Int32Array(units * words);
  for (let k = g.topo.length - 1; k >= 0; k--) {
    const u = g.topo[k]!;
    const row = u * words;
    bits[row + (u >>> 5)]! |= 1 << (u & 31);
    for (const v of g.succ[u]!) {
      const other = v * words;
      for (let w = 0; w < words; w++) bits[row + w]! |= bits[other + w]!;
    }
  }
  const count = new Float64Array(units);
  for (let u = 0; u < units; u++) {
    const weight = g.members[u]!.length;
    const row = u * words;
    for (let w = 0; w < words; w++) {
      let word = bits[row + w]!;
      while (word !== 0) {
        const low = word & -word;
        count[(w << 5) + 31 - Math.clz32(low)]! += weight;
        word ^= low;
      }
    }
  }
  return count;
}

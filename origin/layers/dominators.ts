// Immediate dominators of a directed graph (Cooper, Harvey & Kennedy, "A
// Simple, Fast Dominance Algorithm"): v's immediate dominator is the last
// node that every path from the entry to v passes through. In a closure, a
// path whose every route goes through one package is needed by that package
// alone, which is what lets it share that package's layer.
//
// The graph may have cycles (Nix closures occasionally do); nodes the entry
// cannot reach get -1.

/** succ[v] lists v's successors; returns idom[v] (the entry is its own). */
export function immediateDominators(succ: readonly (readonly number[])[], entry: number): Int32Array {
  const n = succ.length;
  // Reverse postorder by an iterative DFS, so deep closures cannot overflow the stack.
  const order: number[] = [];
  const state = new Uint8Array(n); // 0 new, 1 on stack, 2 done
  const stack: number[] = [entry];
  const cursor = new Int32Array(n);
  state[entry] = 1;
  while (stack.length > 0) {
    const v = stack[stack.length - 1]!;
    const next = succ[v]!;
    const i = cursor[v]!;
    if (i < next.length) {
      cursor[v] = i + 1;
      const w = next[i]!;
      if (state[w] === 0) {
        state[w] = 1;
        stack.push(w);
      }
    } else {
      state[v] = 2;
      order.push(v);
      stack.pop();
    }
  }
  order.reverse();
  const rpo = new Int32Array(n).fill(-1);
  order.forEach((v, i) => (rpo[v] = i));

  const pred: number[][] = Array.from({ length: n }, () => []);
  for (const v of order) for (const w of succ[v]!) pred[w]!.push(v);

  const idom = new Int32Array(n).fill(-1);
  idom[entry] = entry;
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while (rpo[a]! > rpo[b]!) a = idom[a]!;
      while (rpo[b]! > rpo[a]!) b = idom[b]!;
    }
    return a;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (const v of order) {
      if (v === entry) continue;
      let candidate = -1;
      for (const p of pred[v]!) {
        if (idom[p] === -1) continue;
        candidate = candidate === -1 ? p : intersect(p, candidate);
      }
      if (candidate !== idom[v]) {
        idom[v] = candidate;
        changed = true;
      }
    }
  }
  return idom;
}

// The sets of units that become layers: a union-find in which each set is
// named by its top unit, shared by the grouping and its benchmark baseline.
import type { CondensedGraph } from './condensed.ts';
import type { LayerGroup } from './graph.ts';

/** Union-find over units, each set a layer named by its top unit, which later joins never change. */
export class Layers {
  readonly #parent: Int32Array;
  readonly #bytes: Float64Array;
  count: number;

  constructor(bytes: Float64Array) {
    this.#parent = Int32Array.from({ length: bytes.length }, (_, i) => i);
    this.#bytes = Float64Array.from(bytes);
    this.count = bytes.length;
  }

  find(u: number): number {
    let r = u;
    while (this.#parent[r] !== r) r = this.#parent[r]!;
    while (this.#parent[u] !== r) {
      const next = this.#parent[u]!;
      this.#parent[u] = r;
      u = next;
    }
    return r;
  }

  bytes(u: number): number {
    return this.#bytes[this.find(u)]!;
  }

  /** Moves x's layer into into's layer (whose top stays the top). */
  join(x: number, into: number): void {
    const a = this.find(x);
    const b = this.find(into);
    if (a === b) return;
    this.#parent[a] = b;
    this.#bytes[b]! += this.#bytes[a]!;
    this.count--;
  }

  tops(): number[] {
    const out: number[] = [];
    for (let u = 0; u < this.#parent.length; u++) if (this.find(u) === u) out.push(u);
    return out;
  }

  groups(g: CondensedGraph): LayerGroup[] {
    const byTop = new Map<number, string[]>();
    // Paths are visited in byte order, so every group comes out sorted.
    g.paths.forEach((path, i) => {
      const top = this.find(g.unitOf[i]!);
      const list = byTop.get(top);
      if (list) list.push(path);
      else byTop.set(top, [path]);
    });
    return [...byTop.values()].sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  }
}

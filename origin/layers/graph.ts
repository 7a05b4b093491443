// The runtime closure of an image as a graph of store paths: what Nix tells
// us after a build, and the only input the layering algorithm needs.

export interface StorePathInfo {
  /** Full store path, e.g. /nix/store/<hash>-glibc-2.38. */
  readonly path: string;
  /** Size of the path's NAR serialisation, in bytes (Nix's narSize). */
  readonly narSize: number;
  /** Store paths this path references at run time (may include itself). */
  readonly references: readonly string[];
}

export interface ClosureGraph {
  /** The top-level store paths the user asked for (the packages' outputs). */
  readonly roots: readonly string[];
  /** Every path of the runtime closure, each once. */
  readonly paths: readonly StorePathInfo[];
}

/** Popularity of store paths, keyed by store path name without the /nix/store/ prefix (<hash>-<name>). */
export type Popularity = ReadonlyMap<string, number>;

/** A layer's worth of store paths, sorted. */
export type LayerGroup = readonly string[];

export function storePathName(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash >= 0 ? path.slice(slash + 1) : path;
}

// The cache key of a layer. A layer's bytes are a function of its store
// paths alone (entries.ts makes them canonical), so the sorted set of paths
// identifies it before any tarball exists: two images that group the same
// paths together share the layer, and the origin can look it up without
// building it again.
import { createHash } from 'node:crypto';
import type { LayerGroup } from './graph.ts';

/** sha256 (hex) of the layer's store paths, sorted and joined by "\n". */
export function layerId(group: LayerGroup): string {
  // Sorting here as well keeps the key a property of the set, whatever order a caller holds it in.
  const sorted = [...group].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(sorted.join('\n')).digest('hex');
}

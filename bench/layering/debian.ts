// Loads the Debian package graph (make-debian-graph.ts) as a package set.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { makePackageGraph, type PackageGraph } from './package-graph.ts';

export function loadDebianGraph(file = new URL('./debian-graph.json.gz', import.meta.url)): PackageGraph {
  const data = JSON.parse(gunzipSync(readFileSync(file)).toString('utf8')) as {
    names: string[];
    sizes: number[];
    deps: number[][];
  };
  return makePackageGraph(data.names, data.sizes, data.deps);
}

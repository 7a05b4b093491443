// What the image pipeline asks of Nix, as a small interface, so the pipeline
// can be driven by another implementation (a fake in its unit test) the way
// the git source takes a GitRunner. `nixCli` is the real one: nix.ts's
// commands with this origin's time limit and cancellation signal.
import type { StorePathInfo } from '../layers/graph.ts';
import { buildDerivations, fetchSource, readClosure, resolvePackages, type NixOptions, type NixSource, type Resolution } from './nix.ts';

/** Receives each line Nix prints while it works on one image. */
export type NixLog = (line: string) => void;

export interface Nix {
  /**
   * Fetches the package source into the store (the download resolvePackages
   * starts with) and returns its store path; null for a local path, which
   * needs no fetch. Optional: without it, resolvePackages fetches.
   */
  fetchSource?(source: NixSource, log?: NixLog): Promise<string | null>;
  /** Evaluates the image's packages: their derivations and outputs, or why a name is no package. */
  resolvePackages(source: NixSource, system: string, packages: readonly string[], log?: NixLog): Promise<Resolution>;
  /** Builds derivations; resolves once their outputs are valid in the store. */
  buildDerivations(drvs: readonly string[], log?: NixLog): Promise<void>;
  /** The runtime closure of store paths, with sizes and references. */
  readClosure(paths: readonly string[], log?: NixLog): Promise<StorePathInfo[]>;
}

/** Runs the Nix commands of nix.ts; `options.onLog` (if any) sees every line too. */
export function nixCli(options: NixOptions): Nix {
  const withLog = (log?: NixLog): NixOptions =>
    log === undefined
      ? options
      : {
          ...options,
          onLog: (line) => {
            options.onLog?.(line);
            log(line);
          },
        };
  return {
    fetchSource: async (source, log) => (source.type === 'path' ? null : fetchSource(source, withLog(log))),
    resolvePackages: (source, system, packages, log) => resolvePackages(source, system, packages, withLog(log)),
    buildDerivations: (drvs, log) => buildDerivations(drvs, withLog(log)),
    readClosure: (paths, log) => readClosure(paths, withLog(log)),
  };
}

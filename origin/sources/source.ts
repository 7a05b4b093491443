// Where packages come from. A source turns an image tag into the arguments
// Nix needs, and says whether the result may be cached under a stable key.
import type { NixSource } from '../nix/nix.ts';

export interface ResolvedSource {
  nix: NixSource;
  /**
   * Identifies exactly what Nix will evaluate (a pinned commit, say), so a
   * built image can be found again without running Nix. Null when only the
   * evaluation itself can tell (a local path that may change at any time):
   * the builder then keys the image by the derivations Nix evaluated.
   */
  cacheKey: string | null;
}

export interface PackageSource {
  /** For logs and the start-up line, e.g. `path /srv/pkgs`. */
  readonly description: string;
  resolve(tag: string): Promise<ResolvedSource>;
  /**
   * The tags a client can pull that the source can enumerate cheaply, for
   * the tag list; always holds `latest`. docs/sources.md says what each lists.
   */
  listTags(): Promise<readonly string[]>;
}

/**
 * How a source runs a resolution that starts a process (a channel's
 * prefetch, which is a Nix fetch; a `git ls-remote`), keyed by what it
 * resolves. Tags cost nothing to make up, so the origin (resolution-gate.ts)
 * admits such work to the evaluation queue and remembers its failures as it
 * does an image's. A source given none runs the work at once.
 */
export type ResolutionGate = <T>(key: string, work: () => Promise<T>) => Promise<T>;

export const ungated: ResolutionGate = (_key, work) => work();

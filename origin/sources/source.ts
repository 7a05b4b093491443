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

// A package set in a local directory (NIXERY_PKGS_PATH). The tag does not
// select anything: the directory is what it is now, so nothing is cacheable
// before evaluation.
import type { PackageSource, ResolvedSource } from './source.ts';

export class PathSource implements PackageSource {
  readonly path: string;
  readonly description: string;

  constructor(path: string) {
    this.path = path;
    this.description = `path ${path}`;
  }

  async resolve(_tag: string): Promise<ResolvedSource> {
    return { nix: { type: 'path', path: this.path }, cacheKey: null };
  }
}

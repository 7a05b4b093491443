// A package set in a local directory (NIXERY_PKGS_PATH). The directory has
// one version, what it holds now, and that version is `latest`: any other
// tag names nothing, so it answers MANIFEST_UNKNOWN, and the tag list says
// `latest` alone. Nothing is cacheable before evaluation.
import { errors } from '../../shared/errors.ts';
import type { PackageSource, ResolvedSource } from './source.ts';

export class PathSource implements PackageSource {
  readonly path: string;
  readonly description: string;

  constructor(path: string) {
    this.path = path;
    this.description = `path ${path}`;
  }

  async resolve(tag: string): Promise<ResolvedSource> {
    if (tag !== 'latest') {
      throw errors.manifestUnknown(`tag ${JSON.stringify(tag)}: this registry serves a local package set, whose one version is "latest"`, { tag });
    }
    return { nix: { type: 'path', path: this.path }, cacheKey: null };
  }

  async listTags(): Promise<readonly string[]> {
    return ['latest'];
  }
}

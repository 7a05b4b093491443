// Chooses the package source named by the configuration.
import type { SourceConfig } from '../config.ts';
import { PathSource } from './path.ts';
import type { PackageSource } from './source.ts';

export function createSource(config: SourceConfig): PackageSource {
  switch (config.type) {
    case 'path':
      return new PathSource(config.path);
    case 'channel':
    case 'git':
      throw new Error(`the ${config.type} package source is not implemented yet; set NIXERY_PKGS_PATH`);
  }
}

// Chooses the package source named by the configuration.
import type { SourceConfig } from '../config.ts';
import { ChannelSource } from './channel.ts';
import { GitSource } from './git.ts';
import { PathSource } from './path.ts';
import type { PackageSource } from './source.ts';

export function createSource(config: SourceConfig): PackageSource {
  switch (config.type) {
    case 'path':
      return new PathSource(config.path);
    case 'channel':
      return new ChannelSource(config);
    case 'git':
      return new GitSource(config);
  }
}

// Chooses the package source named by the configuration.
import type { SourceConfig } from '../config.ts';
import { ChannelSource } from './channel.ts';
import { GitSource } from './git.ts';
import { PathSource } from './path.ts';
import type { PackageSource } from './source.ts';
import type { TagWorkGate } from '../nix/tag-work-gate.ts';

/** `gate` runs the resolutions that start a process (nix/tag-work-gate.ts); a path source has none. */
export function createSource(config: SourceConfig, gate?: TagWorkGate): PackageSource {
  switch (config.type) {
    case 'path':
      return new PathSource(config.path);
    case 'channel':
      return new ChannelSource({ ...config, ...(gate ? { gate } : {}) });
    case 'git':
      return new GitSource({ ...config, ...(gate ? { gate } : {}) });
  }
}

// nixpkgs from an archive of tarballs (NIXERY_CHANNEL), as Nixery does:
// `${archiveBaseUrl}/${channelOrCommit}.tar.gz`, fetched by Nix. The tag picks
// the version: `latest` is the configured channel, a full commit hash is that
// commit, a channel name (see isChannelName) is that channel.
//
// A commit's tarball never changes, so it is its own cache key and a known
// image is served without running anything. A channel moves, and a tarball
// URL carries no commit to resolve to without GitHub's API, so a channel is
// resolved by fetching its tarball (Nix, with tarball-ttl set to our TTL) and
// keyed by the NAR hash of what arrived: the content itself, whatever URL it
// came from. Evaluation then pins fetchTarball to that hash, so the image
// built is exactly the one the key names, even if the channel moves meanwhile.
import { errors } from '../../shared/errors.ts';
import { NixError, NixFetchError, fetchSource, narHash, type NixOptions } from '../nix/nix.ts';
import { isCommitHash } from './git-ref.ts';
import { redactCredentials } from './redact.ts';
import type { PackageSource, ResolvedSource } from './source.ts';
import { ungated, type TagWorkGate } from '../nix/tag-work-gate.ts';
import { TtlCache } from './ttl-cache.ts';

/**
 * nixpkgs' channel names: `nixos-` or `nixpkgs-`, then `unstable` or a
 * release `YY.MM`, then optionally `-small`, `-darwin` or `-aarch64`. E.g.
 * nixos-unstable, nixos-unstable-small, nixpkgs-unstable, nixos-24.05,
 * nixos-24.05-small, nixpkgs-24.05-darwin.
 */
const CHANNEL = /^(?:nixos|nixpkgs)-(?:unstable|[0-9]{2}\.[0-9]{2})(?:-(?:small|darwin|aarch64))?$/;

export function isChannelName(tag: string): boolean {
  return CHANNEL.test(tag);
}

/** Fetches a tarball into the store, trusting a cached download for ttlSeconds; returns its NAR hash. */
export type TarballPrefetcher = (url: string, options: { ttlSeconds: number; timeoutSeconds: number }) => Promise<string>;

/** The two Nix commands of a prefetch; nix.ts's unless a test stands in for them. */
export interface PrefetchSteps {
  fetch: typeof fetchSource;
  hash: typeof narHash;
}

/**
 * Fetches with Nix, then reads the NAR hash of what arrived. Nothing roots
 * the download between the two commands: a collection in between takes it
 * and the hash fails (the path is no longer valid). Then both run once more.
 */
export function nixPrefetcher(steps: PrefetchSteps = { fetch: fetchSource, hash: narHash }): TarballPrefetcher {
  return async (url, options) => {
    const nix: NixOptions = { timeoutSeconds: options.timeoutSeconds };
    const once = async () => steps.hash(await steps.fetch({ type: 'tarball', url }, { ...nix, tarballTtlSeconds: options.ttlSeconds }), nix);
    try {
      return await once();
    } catch (err) {
      // Only a hash that ran and failed; a failed fetch, a timeout or a cancel stands.
      if (!(err instanceof NixError) || err instanceof NixFetchError || err.timedOut || err.exitCode === null) throw err;
      return once();
    }
  };
}

export interface ChannelSourceOptions {
  /** The channel name or commit `latest` means. */
  channel: string;
  archiveBaseUrl: string;
  /** Seconds a channel's resolution (its tarball's hash) is trusted. */
  ttlSeconds: number;
  /** Seconds fetching a channel's tarball may take. */
  timeoutSeconds: number;
  prefetch?: TarballPrefetcher;
  /** Runs each prefetch (the origin's evaluation queue and failure memory); at once if absent. */
  gate?: TagWorkGate;
}

export class ChannelSource implements PackageSource {
  readonly description: string;
  private readonly options: ChannelSourceOptions;
  private readonly prefetch: TarballPrefetcher;
  private readonly gate: TagWorkGate;
  private readonly channels: TtlCache<string>;

  constructor(options: ChannelSourceOptions) {
    this.options = { ...options, archiveBaseUrl: options.archiveBaseUrl.replace(/\/+$/, '') };
    this.description = `channel ${options.channel} from ${redactCredentials(this.options.archiveBaseUrl)}`;
    this.prefetch = options.prefetch ?? nixPrefetcher();
    this.gate = options.gate ?? ungated;
    this.channels = new TtlCache<string>(options.ttlSeconds);
  }

  /** The archive URL of a channel or commit. */
  url(channelOrCommit: string): string {
    return `${this.options.archiveBaseUrl}/${channelOrCommit}.tar.gz`;
  }

  async resolve(tag: string): Promise<ResolvedSource> {
    let version: string;
    if (tag === 'latest') version = this.options.channel;
    else if (isCommitHash(tag)) version = tag.toLowerCase();
    else if (isChannelName(tag)) version = tag;
    else {
      throw errors.manifestUnknown(
        `tag ${JSON.stringify(tag.slice(0, 140))} names no nixpkgs version: use latest (${this.options.channel}), a channel name such as nixos-24.05 or nixos-unstable, or a full 40-character commit hash`,
        { tag: tag.slice(0, 140) },
      );
    }
    const url = this.url(version);
    if (isCommitHash(version)) return { nix: { type: 'tarball', url }, cacheKey: `tarball ${url}` };
    const sha256 = await this.channels.get(version, () => this.gate(`channel ${tag}`, () => this.fetchChannel(version, url, tag)));
    return { nix: { type: 'tarball', url, sha256 }, cacheKey: `tarball ${sha256}` };
  }

  /**
   * `latest` alone: every channel name and commit can be pulled, but knowing
   * which exist means asking the archive over the network, which a tag list
   * request must not cost.
   */
  async listTags(): Promise<readonly string[]> {
    return ['latest'];
  }

  private async fetchChannel(channel: string, url: string, tag: string): Promise<string> {
    try {
      return await this.prefetch(url, { ttlSeconds: this.options.ttlSeconds, timeoutSeconds: this.options.timeoutSeconds });
    } catch (err) {
      if (err instanceof NixFetchError) {
        throw errors.manifestUnknown(`tag ${JSON.stringify(tag)}: cannot fetch channel ${channel}: ${err.reason}`, {
          tag,
          url: redactCredentials(url),
          nix: err.stderr,
        });
      }
      throw err;
    }
  }
}

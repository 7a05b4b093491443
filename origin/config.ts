// Reads the origin's configuration from the environment once, at start-up,
// into a typed object. Variable names are Nixery's where the meaning is the
// same. Anything invalid stops start-up with one line naming the variable.
import { existsSync, statSync } from 'node:fs';
import { join, relative, resolve, isAbsolute } from 'node:path';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { defaultAdmission, type AdmissionConfig } from './nix/admission.ts';
import { MIB, type ImageLimits } from './image/limits.ts';
import type { NixGcConfig } from './nix/garbage-collector.ts';

import { ConfigError, configInteger, configText, gcsEndpoint } from '../shared/config.ts';
import type { Architecture } from '../shared/names.ts';

export { ConfigError };

export type SourceConfig =
  | { type: 'path'; path: string }
  | {
      type: 'channel';
      /** A channel name or a nixpkgs commit: what the `latest` tag means. */
      channel: string;
      archiveBaseUrl: string;
      ttlSeconds: number;
      timeoutSeconds: number;
    }
  | { type: 'git'; repo: string; ttlSeconds: number; timeoutSeconds: number };

export type StorageConfig =
  | { backend: 'filesystem'; path: string }
  | {
      backend: 'gcs';
      bucket: string;
      signing: { account: string; privateKeyPem: string } | null;
      urlLifetimeSeconds: number;
      /** Another endpoint for the GCS JSON API (an emulator, a private endpoint); null for Google's. */
      apiEndpoint: string | null;
    };

export interface OriginConfig {
  port: number;
  host: string;
  source: SourceConfig;
  storage: StorageConfig;
  nixTimeoutSeconds: number;
  popularityUrl: string | null;
  /**
   * Shared with the edge; when any is set, /v2/ requests carrying none of
   * them are refused. Two, so the secret can be rotated without a window in
   * which the origin and the Worker disagree (ORIGIN_SECRET_PREVIOUS).
   */
  originSecrets: readonly string[];
  /** Layers per image, the symlink layer included. */
  maxLayers: number;
  logLevel: string;
  /** Seconds in-flight builds may run on after SIGTERM before they are cancelled. */
  shutdownGraceSeconds: number;
  /** Names this replica's record of learned popularity; stable across restarts at best (a StatefulSet ordinal). */
  replicaId: string;
  /**
   * NIXERY_PLATFORMS: what a name without a platform is built for. The
   * first is the default; with several, such a name is an image index.
   */
  platforms: readonly Architecture[];
  /** Caps and queues of Nix evaluations and builds. */
  admission: AdmissionConfig;
  /** Seconds a failed image (build, evaluation, unknown package, limit) is remembered. */
  failureTtlSeconds: number;
  /** Niceness of the threads that gzip layers (0-19): below the event loop that answers cached pulls. */
  layerNiceness: number;
  limits: ImageLimits;
  retention: RetentionConfig;
  /**
   * Seconds between two writes of one image's last use by a replica
   * (gc/usage.ts), and how long an image record seen in storage is trusted
   * before looking again (gc/image-hits.ts).
   */
  usageWriteIntervalSeconds: number;
  /** The origin's own Nix garbage collection and the GC roots of builds in flight. */
  nixGc: NixGcConfig;
}

/** Retention of images and objects in storage (origin/gc/retention-run.ts, docs/operations.md). */
export interface RetentionConfig {
  /** Images not requested for this many days are deleted; 0 turns retention off. */
  maxIdleDays: number;
  /** Seconds between runs (across replicas: a run recorded in storage within this time is not repeated). */
  intervalSeconds: number;
  /** Seconds an object stays whatever references it (builds in flight), and dead records outlive their objects. */
  graceSeconds: number;
}

type Env = Record<string, string | undefined>;

const get = configText;
const integer = configInteger;

function url(env: Env, name: string): string | undefined {
  const raw = get(env, name);
  if (raw === undefined) return undefined;
  try {
    const parsed = new URL(raw);
    if (!['http:', 'https:', 'file:'].includes(parsed.protocol)) throw new Error();
  } catch {
    throw new ConfigError(name, `must be an http(s) or file URL, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

function readSource(env: Env): SourceConfig {
  const path = get(env, 'NIXERY_PKGS_PATH');
  const repo = get(env, 'NIXERY_PKGS_REPO');
  const channel = get(env, 'NIXERY_CHANNEL');
  const set = [path && 'NIXERY_PKGS_PATH', repo && 'NIXERY_PKGS_REPO', channel && 'NIXERY_CHANNEL'].filter(Boolean);
  if (set.length > 1) throw new ConfigError(set.join(', '), 'set exactly one package source, not several');
  if (path !== undefined) {
    const absolute = resolve(path);
    if (!existsSync(absolute) || !statSync(absolute).isDirectory()) throw new ConfigError('NIXERY_PKGS_PATH', `${absolute} is not a directory`);
    return { type: 'path', path: absolute };
  }
  const timeoutSeconds = integer(env, 'NIXERY_RESOLVE_TIMEOUT', 60, 1, 3600);
  if (repo !== undefined) {
    return { type: 'git', repo: gitRepository(repo), ttlSeconds: integer(env, 'NIXERY_REF_TTL', 60, 0, 7 * 24 * 3600), timeoutSeconds };
  }
  if (channel !== undefined && (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(channel) || channel.includes('..'))) {
    // It becomes part of a URL path: a name or a commit, nothing that could climb out of the archive.
    throw new ConfigError('NIXERY_CHANNEL', `must be a channel name or a commit hash ([A-Za-z0-9][A-Za-z0-9._-]*, no ".."), got ${JSON.stringify(channel)}`);
  }
  return {
    type: 'channel',
    channel: channel ?? 'nixos-unstable',
    archiveBaseUrl: url(env, 'NIXERY_CHANNEL_ARCHIVE_URL') ?? 'https://github.com/NixOS/nixpkgs/archive',
    ttlSeconds: integer(env, 'NIXERY_CHANNEL_TTL', 3600, 0, 7 * 24 * 3600),
    timeoutSeconds,
  };
}

/** Any URL git accepts; a local path is made absolute, as git and Nix run from different directories. */
function gitRepository(repo: string): string {
  if (repo.startsWith('-')) throw new ConfigError('NIXERY_PKGS_REPO', `must be a repository URL or path, got ${JSON.stringify(repo)}`);
  const isUrl = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(repo);
  // scp-like syntax: [user@]host:path, with no slash before the colon.
  const isScpLike = /^[^/]+:/.test(repo);
  return isUrl || isScpLike ? repo : resolve(repo);
}

function readStorage(env: Env): StorageConfig {
  const backend = get(env, 'STORAGE_BACKEND') ?? 'filesystem';
  if (backend === 'filesystem') {
    return { backend, path: resolve(get(env, 'STORAGE_PATH') ?? 'var/storage') };
  }
  if (backend === 'gcs') {
    const bucket = get(env, 'BUCKET');
    if (bucket === undefined) throw new ConfigError('BUCKET', 'is required when STORAGE_BACKEND=gcs');
    const key = get(env, 'GCS_SIGNING_KEY');
    const account = get(env, 'GCS_SIGNING_ACCOUNT');
    if ((key === undefined) !== (account === undefined)) {
      throw new ConfigError(key === undefined ? 'GCS_SIGNING_KEY' : 'GCS_SIGNING_ACCOUNT', 'GCS_SIGNING_KEY and GCS_SIGNING_ACCOUNT go together');
    }
    return {
      backend,
      bucket,
      signing: key !== undefined && account !== undefined ? { account, privateKeyPem: key } : null,
      urlLifetimeSeconds: integer(env, 'GCS_URL_LIFETIME', 300, 10, 7 * 24 * 3600),
      // STORAGE_EMULATOR_HOST too: the client library would follow it for object calls alone.
      apiEndpoint: gcsEndpoint(env),
    };
  }
  throw new ConfigError('STORAGE_BACKEND', `must be "filesystem" or "gcs", got ${JSON.stringify(backend)}`);
}

function readOriginSecrets(env: Env): string[] {
  const current = get(env, 'ORIGIN_SECRET');
  const previous = get(env, 'ORIGIN_SECRET_PREVIOUS');
  if (previous !== undefined && current === undefined) {
    throw new ConfigError('ORIGIN_SECRET_PREVIOUS', 'is only accepted beside ORIGIN_SECRET (it keeps the old secret valid while rotating)');
  }
  return [current, previous].filter((secret): secret is string => secret !== undefined);
}

function replicaId(env: Env): string {
  const given = get(env, 'NIXERY_REPLICA_ID');
  const id = given ?? (hostname().replace(/[^a-zA-Z0-9._-]/g, '-').replace(/^[^a-zA-Z0-9]+/, '').slice(0, 63) || 'origin');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/.test(id) || id === 'replicas') {
    throw new ConfigError('NIXERY_REPLICA_ID', `must be letters, digits, ".", "_", "-" (at most 63, not "replicas"), got ${JSON.stringify(id)}`);
  }
  return id;
}

const PLATFORMS: readonly Architecture[] = ['amd64', 'arm64'];

function readPlatforms(env: Env): Architecture[] {
  const raw = get(env, 'NIXERY_PLATFORMS');
  if (raw === undefined) return ['amd64'];
  const platforms: Architecture[] = [];
  for (const part of raw.split(',').map((p) => p.trim())) {
    const platform = PLATFORMS.find((p) => p === part);
    if (platform === undefined) {
      throw new ConfigError('NIXERY_PLATFORMS', `must be a comma-separated list of ${PLATFORMS.join(', ')} (the first is the default), got ${JSON.stringify(part)} in ${JSON.stringify(raw)}`);
    }
    if (platforms.includes(platform)) throw new ConfigError('NIXERY_PLATFORMS', `names ${platform} twice in ${JSON.stringify(raw)}`);
    platforms.push(platform);
  }
  return platforms;
}

function readRetention(env: Env): RetentionConfig {
  return {
    maxIdleDays: integer(env, 'NIXERY_RETENTION_DAYS', 30, 0, 100 * 365),
    intervalSeconds: integer(env, 'NIXERY_RETENTION_INTERVAL', 6 * 3600, 1, 30 * 24 * 3600),
    // Below ten minutes a slow build could lose a layer it wrote before its image record.
    graceSeconds: integer(env, 'NIXERY_RETENTION_GRACE', 24 * 3600, 600, 30 * 24 * 3600),
  };
}

function readAdmission(env: Env): AdmissionConfig {
  // In a container, the cgroup's memory limit, not the node's memory (process.constrainedMemory: 0 when unlimited).
  const constrained = process.constrainedMemory();
  const memory = constrained > 0 && constrained < totalmem() ? constrained : totalmem();
  const defaults = defaultAdmission(availableParallelism(), memory);
  const queueLength = integer(env, 'NIX_QUEUE_LENGTH', defaults.queueLength, 0, 100_000);
  const share = get(env, 'NIX_CLIENT_SHARE');
  return {
    maxEvaluations: integer(env, 'NIX_MAX_EVALUATIONS', defaults.maxEvaluations, 1, 1024),
    maxBuilds: integer(env, 'NIX_MAX_BUILDS', defaults.maxBuilds, 1, 1024),
    queueLength,
    queueWaitSeconds: integer(env, 'NIX_QUEUE_WAIT', 30, 0, 3600),
    clientShare: share === undefined ? null : integer(env, 'NIX_CLIENT_SHARE', 1, 1, 100_000),
  };
}

/**
 * Nix's store and state directories as Nix itself reads them, and where the
 * roots of builds go: inside Nix's gcroots directory, the only place Nix looks
 * for roots without registering each one (a root elsewhere would protect nothing).
 */
function readNixGc(env: Env): NixGcConfig {
  const storeDir = get(env, 'NIX_STORE_DIR') ?? '/nix/store';
  const gcroots = join(get(env, 'NIX_STATE_DIR') ?? '/nix/var/nix', 'gcroots');
  const rootsDir = resolve(get(env, 'NIX_GC_ROOTS_DIR') ?? join(gcroots, 'nixery-edge'));
  const inside = relative(gcroots, rootsDir);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    throw new ConfigError('NIX_GC_ROOTS_DIR', `must be a directory inside Nix's gcroots directory ${gcroots} (Nix finds roots only there), got ${JSON.stringify(rootsDir)}`);
  }
  const minFreeMib = integer(env, 'NIX_GC_MIN_FREE_MIB', 8192, 0, 1024 * 1024 * 1024);
  const maxFreeMib = integer(env, 'NIX_GC_MAX_FREE_MIB', Math.max(16384, minFreeMib), 0, 1024 * 1024 * 1024);
  if (maxFreeMib < minFreeMib) throw new ConfigError('NIX_GC_MAX_FREE_MIB', `must be at least NIX_GC_MIN_FREE_MIB (${minFreeMib}), got ${maxFreeMib}`);
  return {
    storeDir,
    rootsDir,
    minFreeBytes: minFreeMib * MIB,
    maxFreeBytes: maxFreeMib * MIB,
    intervalSeconds: integer(env, 'NIX_GC_INTERVAL_SECONDS', 86_400, 0, 365 * 24 * 3600),
    checkSeconds: integer(env, 'NIX_GC_CHECK_SECONDS', 30, 1, 24 * 3600),
  };
}

export function readConfig(env: Env = process.env): OriginConfig {
  return {
    port: integer(env, 'PORT', 8080, 0, 65535),
    host: get(env, 'HOST') ?? '0.0.0.0',
    source: readSource(env),
    storage: readStorage(env),
    nixTimeoutSeconds: integer(env, 'NIX_TIMEOUT', 60, 1, 24 * 3600),
    popularityUrl: url(env, 'NIX_POPULARITY_URL') ?? null,
    originSecrets: readOriginSecrets(env),
    maxLayers: integer(env, 'MAX_LAYERS', 100, 2, 125),
    logLevel: get(env, 'LOG_LEVEL') ?? 'info',
    shutdownGraceSeconds: integer(env, 'SHUTDOWN_GRACE_SECONDS', 25, 0, 24 * 3600),
    replicaId: replicaId(env),
    platforms: readPlatforms(env),
    admission: readAdmission(env),
    failureTtlSeconds: integer(env, 'FAILURE_TTL', 30, 0, 24 * 3600),
    layerNiceness: integer(env, 'LAYER_NICENESS', 10, 0, 19),
    limits: {
      maxPackages: integer(env, 'MAX_IMAGE_PACKAGES', 64, 1, 10_000),
      maxClosureBytes: integer(env, 'MAX_CLOSURE_MIB', 8192, 1, 1024 * 1024) * MIB,
      maxLayerBytes: integer(env, 'MAX_LAYER_MIB', 4096, 1, 1024 * 1024) * MIB,
    },
    retention: readRetention(env),
    usageWriteIntervalSeconds: integer(env, 'USAGE_WRITE_INTERVAL', 3600, 1, 24 * 3600),
    nixGc: readNixGc(env),
  };
}

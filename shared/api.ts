// The page's JSON API (docs/api.md): its paths, its limits, and the parsing
// of what a client sends. Shared by the edge and the origin, so the edge
// refuses a bad request before anything crosses to the origin and both sides
// refuse exactly the same ones. Nothing here runs Nix; names and tags follow
// the pull API's grammar (names.ts) before they get anywhere near it.
import { errors } from './errors.ts';
import { MAX_NAME_LENGTH, parseImageName, parseReference, type Architecture, type ImageSpec } from './names.ts';

export const API_LIMITS = {
  /** Longest search query: no package name or description word a person types is longer. */
  maxQueryLength: 100,
  defaultLimit: 20,
  /** Largest page of search results: nixpkgs has ~100k attributes, never sent at once. */
  maxLimit: 100,
  maxOffset: 100_000,
  /** Packages in one image built from the page (the name's 255 characters bound it too). */
  maxPackages: 20,
  /** Bytes of a build request's JSON body. */
  maxBodyBytes: 8192,
  /**
   * Build event streams one client may hold open at the origin (a person
   * watches a build or two, in a tab or two), and all clients together: each
   * is a connection kept until its build ends.
   */
  maxEventStreamsPerClient: 4,
  maxEventStreams: 512,
} as const;

export const API_PATHS = {
  search: '/api/search',
  builds: '/api/builds',
  failures: '/api/failures',
} as const;

const EVENTS = /^\/api\/builds\/(.+):([^:/]+)\/events$/;

export interface SearchQuery {
  q: string;
  tag: string;
  limit: number;
  offset: number;
}

function tagOf(raw: string | null): string {
  const tag = raw === null || raw === '' ? 'latest' : raw;
  const reference = parseReference(tag);
  if (reference.kind !== 'tag') throw errors.queryInvalid('tag must be a tag, not a digest', { tag: tag.slice(0, 140) });
  return reference.tag;
}

function integerParam(params: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw errors.queryInvalid(`${name} must be a whole number from ${min} to ${max}`, { [name]: raw.slice(0, 20) });
  }
  return Number(raw);
}

/** The search parameters of `/api/search` (and of the page's `/?q=`); throws QUERY_INVALID. */
export function parseSearchQuery(params: URLSearchParams): SearchQuery {
  const q = (params.get('q') ?? '').trim().replace(/\s+/g, ' ');
  if (q.length > API_LIMITS.maxQueryLength) {
    throw errors.queryInvalid(`the search query is longer than ${API_LIMITS.maxQueryLength} characters`, { length: q.length, max: API_LIMITS.maxQueryLength });
  }
  // Control characters never name a package; refusing them keeps logs and caches clean.
  if (/[\u0000-\u001f\u007f]/.test(q)) throw errors.queryInvalid('the search query contains a control character');
  return {
    q,
    tag: tagOf(params.get('tag')),
    limit: integerParam(params, 'limit', API_LIMITS.defaultLimit, 1, API_LIMITS.maxLimit),
    offset: integerParam(params, 'offset', 0, 0, API_LIMITS.maxOffset),
  };
}

/** One canonical query string per search, so equal searches share a cache entry at the edge. */
export function searchPath(query: SearchQuery): string {
  const params = new URLSearchParams({ q: query.q, tag: query.tag, limit: String(query.limit), offset: String(query.offset) });
  return `${API_PATHS.search}?${params.toString()}`;
}

export interface BuildRequest {
  /** The image's repository name, as a client would pull it (lower case). */
  name: string;
  tag: string;
  spec: ImageSpec;
}

/**
 * A build request's body: `{"packages": [...], "arch"?: "amd64"|"arm64", "tag"?: "latest"}`.
 * Packages are attribute paths as the search returns them (any case); the
 * image name is made from them exactly as a client would write it.
 */
export function parseBuildRequest(body: unknown): BuildRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw errors.queryInvalid('the body must be a JSON object: {"packages": ["hello"], "tag": "latest"}');
  const { packages, arch, tag } = body as { packages?: unknown; arch?: unknown; tag?: unknown };
  if (!Array.isArray(packages) || packages.length === 0 || !packages.every((p) => typeof p === 'string')) {
    throw errors.queryInvalid('packages must be a non-empty list of package names');
  }
  if (packages.length > API_LIMITS.maxPackages) {
    throw errors.queryInvalid(`an image built from the page holds at most ${API_LIMITS.maxPackages} packages, not ${packages.length}`, { max: API_LIMITS.maxPackages, count: packages.length });
  }
  if (arch !== undefined && arch !== 'amd64' && arch !== 'arm64') throw errors.queryInvalid('arch must be "amd64" or "arm64"', { arch: String(arch).slice(0, 20) });
  if (tag !== undefined && typeof tag !== 'string') throw errors.queryInvalid('tag must be a string');
  const components = (packages as string[]).map((p) => p.toLowerCase());
  const name = imageName(components, (arch as Architecture | undefined) ?? 'amd64');
  return { name, tag: tagOf(tag ?? null), spec: parseImageName(name) };
}

/** The repository name of some packages: what `docker pull` names. */
export function imageName(packages: readonly string[], arch: Architecture = 'amd64'): string {
  const name = [...(arch === 'arm64' ? ['arm64'] : []), ...packages].join('/');
  if (name.length > MAX_NAME_LENGTH) throw errors.nameInvalid(name.slice(0, 64) + '…', `longer than ${MAX_NAME_LENGTH} characters`);
  return name;
}

/** Where a build's progress is streamed (server-sent events). */
export function eventsPath(name: string, tag: string): string {
  return `${API_PATHS.builds}/${name}:${tag}/events`;
}

/** The image of `/api/builds/<name>:<tag>/events`, validated; null for any other path. */
export function parseEventsPath(pathname: string): { name: string; tag: string; spec: ImageSpec } | null {
  const m = EVENTS.exec(pathname);
  if (!m) return null;
  return { name: m[1]!, tag: tagOf(m[2]!), spec: parseImageName(m[1]!) };
}

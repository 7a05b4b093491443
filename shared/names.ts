// The grammar of repository names and references (OCI distribution spec),
// and the rule that turns an image name into the set of packages it holds.
// Everything here runs before a name gets anywhere near Nix or git.
import { errors } from './errors.ts';
import { isDigestLike, parseDigest, type Digest } from './digest.ts';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const COMMIT = /^[0-9a-fA-F]{40}$/;

/** A full SHA-1 commit hash (what `git rev-parse` prints), in either case. */
export function isCommitHash(value: string): boolean {
  return COMMIT.test(value);
}
/** The distribution spec suggests 255 characters as the limit for a whole name. */
export const MAX_NAME_LENGTH = 255;

/** Nixery's meta-package: an interactive base most users expect in an image. */
export const SHELL_PACKAGES = ['bashInteractive', 'cacert', 'coreutils', 'iana-etc', 'moreutils', 'nano'] as const;

export type Architecture = 'amd64' | 'arm64';

export const NIX_SYSTEM: Record<Architecture, string> = { amd64: 'x86_64-linux', arm64: 'aarch64-linux' };

export interface ImageSpec {
  /** The repository name as requested (validated). */
  readonly name: string;
  readonly arch: Architecture;
  /**
   * Whether the name chose the platform (`arm64/…`, `amd64/…`). A name that
   * does not is answered for the origin's platforms (an image index when it
   * has several); `arch` is then only the default.
   */
  readonly platformNamed: boolean;
  /**
   * Package attribute paths, with `shell` expanded, de-duplicated and sorted,
   * so `hello/shell` and `shell/hello` are the same image.
   */
  readonly packages: readonly string[];
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function validateName(name: string): string {
  if (name.length === 0) throw errors.nameInvalid(name, 'empty name');
  if (name.length > MAX_NAME_LENGTH) throw errors.nameInvalid(name.slice(0, 64) + '…', `longer than ${MAX_NAME_LENGTH} characters`);
  for (const component of name.split('/')) {
    if (!COMPONENT.test(component)) {
      throw errors.nameInvalid(name, `component ${JSON.stringify(component)} does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*`);
    }
  }
  return name;
}

/** Whether a string is a registry tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}). */
export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

export function parseReference(reference: string): Reference {
  if (isDigestLike(reference)) return { kind: 'digest', digest: parseDigest(reference) };
  if (!TAG.test(reference)) {
    throw errors.manifestUnknown(`invalid tag ${JSON.stringify(reference.slice(0, 140))}: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, { tag: reference.slice(0, 140) });
  }
  // A 40-character hex tag is a commit to every source, whatever its case: spelt one way here, so the
  // edge's caches and KV keep one entry for it, not one per mix of cases a client can send.
  return { kind: 'tag', tag: isCommitHash(reference) ? reference.toLowerCase() : reference };
}

/** Turns a validated repository name into the image it specifies. */
export function parseImageName(name: string): ImageSpec {
  validateName(name);
  let components = name.split('/');
  let arch: Architecture = 'amd64';
  let platformNamed = false;
  if (components[0] === 'arm64' || components[0] === 'amd64') {
    arch = components[0];
    platformNamed = true;
    components = components.slice(1);
  }
  if (components.length === 0) throw errors.nameInvalid(name, 'names at least one package after the architecture');
  const packages = new Set<string>();
  for (const component of components) {
    if (component === 'shell') SHELL_PACKAGES.forEach((p) => packages.add(p));
    else packages.add(component);
  }
  return { name, arch, platformNamed, packages: [...packages].sort() };
}

/** The canonical form of an image: equal for every name that specifies the same image. */
export function canonicalImage(spec: ImageSpec): string {
  return [spec.arch, ...spec.packages].join('/');
}

/**
 * The canonical form of what a name asks for: like canonicalImage, but a
 * name without a platform stays apart from `amd64/…`, since the origin may
 * answer it with an index (or with another default platform).
 */
export function requestedImage(spec: ImageSpec): string {
  return spec.platformNamed ? canonicalImage(spec) : ['any', ...spec.packages].join('/');
}

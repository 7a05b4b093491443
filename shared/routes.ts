// Parses the paths of the pull API, shared by the edge and the origin so both
// accept and refuse exactly the same requests.
import { errors } from './errors.ts';
import { parseDigest, type Digest } from './digest.ts';
import { validateName, parseReference, type Reference } from './names.ts';

export type RegistryRoute =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: Reference; rawReference: string }
  | { kind: 'blob'; name: string; digest: Digest }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: Digest }
  | { kind: 'catalog' };

const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;
const REFERRERS = /^\/v2\/(.+)\/referrers\/([^/]+)$/;

/**
 * Returns the route of a /v2/ path, throws a RegistryError for a malformed
 * name, reference or digest, and returns null for paths outside the API.
 */
export function parseRegistryPath(pathname: string): RegistryRoute | null {
  if (pathname === '/v2' || pathname === '/v2/') return { kind: 'base' };
  if (!pathname.startsWith('/v2/')) return null;
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };
  let m = MANIFEST.exec(pathname);
  if (m) {
    const rawReference = decodeURIComponent(m[2]!);
    return { kind: 'manifest', name: validateName(m[1]!), reference: parseReference(rawReference), rawReference };
  }
  m = BLOB.exec(pathname);
  if (m) return { kind: 'blob', name: validateName(m[1]!), digest: parseDigest(decodeURIComponent(m[2]!)) };
  m = TAGS.exec(pathname);
  if (m) return { kind: 'tags', name: validateName(m[1]!) };
  m = REFERRERS.exec(pathname);
  // A malformed digest is DIGEST_INVALID (400): the spec allows no 404 from a registry with the referrers API.
  if (m) return { kind: 'referrers', name: validateName(m[1]!), digest: parseDigest(decodeURIComponent(m[2]!)) };
  if (pathname.includes('/blobs/uploads')) throw errors.unsupported('this registry is read-only: images are built from their names, not pushed');
  return null;
}

/** Methods other than GET and HEAD change a registry; this one builds its images and refuses them. */
export function isReadMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

/**
 * The route of a request under /v2/, or the registry error both sides
 * answer: a malformed name, reference or encoding, a method that would
 * push, or a path outside the pull API.
 */
export function parseRegistryRequest(method: string, pathname: string): RegistryRoute {
  let route: RegistryRoute | null;
  try {
    route = parseRegistryPath(pathname);
  } catch (err) {
    if (err instanceof URIError) throw errors.nameInvalid(pathname, 'malformed percent-encoding');
    throw err;
  }
  if (!isReadMethod(method)) throw errors.unsupported('this registry is read-only: images are built from their names, not pushed');
  if (route === null) throw errors.notFound(pathname);
  return route;
}

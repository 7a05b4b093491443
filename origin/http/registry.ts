// The pull API's answers at the origin: each route answered as for a GET,
// as a Reply (bytes, a stream opened only when sent, or a redirect) or a
// thrown RegistryError. Writing them is reply.ts's and errors.ts's job.
import type { Request } from 'express';
import { errors } from '../../shared/errors.ts';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA, negotiate } from '../../shared/media-types.ts';
import { parseImageName } from '../../shared/names.ts';
import type { RegistryRoute } from '../../shared/routes.ts';
import { CACHE_CONTROL } from '../../shared/responses.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { ManifestRecovery } from '../image/manifest-recovery.ts';
import type { AdmitRebuild, BlobRecovery } from '../image/blob-recovery.ts';
import type { Storage } from '../storage/storage.ts';
import type { PackageSource } from '../sources/source.ts';
import { nextPageLink, parseTagListQuery, tagListPage } from '../../shared/tag-list.ts';
import { referrersAnswer } from '../../shared/referrers.ts';
import type { ImageBuilder } from '../image/builder.ts';
import type { ImageStore } from '../image/image-store.ts';
import type { ImageHits } from '../gc/image-hits.ts';
import { redirect, type Reply } from './reply.ts';
import { parseRange } from './range.ts';

export interface RegistryDeps {
  builder: ImageBuilder;
  /** The read path of manifests by digest. */
  images: ImageStore;
  storage: Storage;
  /** What the tag list names. */
  source: PackageSource;
  /** Rebuilds layer blobs that are missing or damaged; absent, a missing blob is simply unknown. */
  recovery?: BlobRecovery | undefined;
  /** The queue a client's blob rebuild waits in (the origin's build queue); at once if absent. */
  admitRebuild?: AdmitRebuild | undefined;
  /** Re-derives lost or damaged manifests and configs from image records. */
  manifestRecovery?: ManifestRecovery | undefined;
  /** Counts every manifest answered as its image's use (gc/image-hits.ts); absent, nothing is counted. */
  hits?: Pick<ImageHits, 'answered'> | undefined;
}

const encoder = new TextEncoder();

export async function answerRegistry(req: Request, route: RegistryRoute, deps: RegistryDeps): Promise<Reply> {
  switch (route.kind) {
    case 'base':
      return { status: 200, headers: { 'Content-Type': MEDIA.json }, body: encoder.encode('{}') };
    case 'catalog':
      throw errors.noCatalog();
    case 'tags':
      return tagList(req, route.name, deps.source);
    case 'referrers': {
      parseImageName(route.name);
      const answer = referrersAnswer(queryOf(req).get('artifactType'));
      return { status: 200, headers: answer.headers, body: answer.body };
    }
    case 'manifest':
      return manifest(req, route, deps);
    case 'blob':
      return blob(req, route.digest, deps);
  }
}

/** The query string: the app turns Express's query parser off, so it is read here. */
function queryOf(req: Request): URLSearchParams {
  const at = req.originalUrl.indexOf('?');
  return new URLSearchParams(at < 0 ? '' : req.originalUrl.slice(at + 1));
}

/** What the source can list (sources/*.ts listTags), a page at a time (shared/tag-list.ts). */
async function tagList(req: Request, name: string, source: PackageSource): Promise<Reply> {
  parseImageName(name);
  const page = tagListPage(name, await source.listTags(), parseTagListQuery(queryOf(req)));
  const headers: Record<string, string> = { 'Content-Type': MEDIA.json };
  if (page.next !== null) headers.Link = nextPageLink(name, page.next);
  return { status: 200, headers, body: encoder.encode(JSON.stringify(page.body)) };
}

async function manifest(req: Request, route: Extract<RegistryRoute, { kind: 'manifest' }>, { builder, images, manifestRecovery, hits }: RegistryDeps): Promise<Reply> {
  const spec = parseImageName(route.name);
  const reference = route.reference;
  // A tag's answer depends on Accept (manifest format, index or not); a digest's never does.
  const vary: Record<string, string> = reference.kind === 'tag' ? { Vary: 'Accept' } : {};
  const cacheControl = reference.kind === 'digest' ? CACHE_CONTROL.immutable : 'public, max-age=60';
  const resolve = async (): Promise<Digest> => {
    if (reference.kind === 'digest') return reference.digest;
    const wanted = negotiate(req.get('accept'));
    const platforms = builder.platforms;
    if (!spec.platformNamed && platforms.length > 1 && wanted.index !== null) {
      return (await builder.index(spec, reference.tag)).manifests[wanted.index].digest;
    }
    // A name without a platform, to a client that reads no index: the default platform's image.
    const image = spec.platformNamed ? spec : { ...spec, arch: platforms[0]! };
    return (await builder.image(image, reference.tag)).manifests[wanted.manifest].digest;
  };
  const stored = async (digest: Digest) => {
    const found = await images.manifest(digest);
    if (!manifestRecovery || found?.intact) return found;
    return (await manifestRecovery.recover(digest)) ? await images.manifest(digest) : null;
  };
  let digest = await resolve();
  let found = await stored(digest);
  // A tag answered from a record this replica still holds in memory after retention deleted the
  // image (its manifest and record gone from storage): forget it and resolve again, which builds.
  if (!found && reference.kind === 'tag' && images.forgetManifest(digest)) {
    digest = await resolve();
    found = await stored(digest);
  }
  if (!found) throw errors.manifestUnknown(`manifest unknown: ${digest}`, { digest });
  // The edge's tag revalidations and misses land here: the origin's own count of use, recorded without delaying the answer.
  hits?.answered(digest, Date.now());
  return {
    status: 200,
    headers: { 'Content-Type': found.mediaType, 'Docker-Content-Digest': digest, ETag: `"${digest}"`, 'Cache-Control': cacheControl, ...vary },
    body: found.bytes,
  };
}

async function blob(req: Request, digest: Digest, { storage, recovery, admitRebuild, manifestRecovery }: RegistryDeps): Promise<Reply> {
  const key = STORAGE_KEYS.blob(digestHex(digest));
  let info = await storage.stat(key);
  // A blob of another size than its layer record says is damaged (truncated): as good as missing.
  // Only a blob some layer record knows is rebuilt: a digest nothing knows (any a stranger makes
  // up) takes no place in the build queue.
  const expected = recovery ? await recovery.expectedSize(digest) : null;
  if (recovery && expected !== null && (!info || info.size !== expected)) {
    const size = await recovery.recover(digest, admitRebuild);
    info = size === null ? null : { size };
  }
  // Not a layer: a config, which its image record can derive again; one of
  // another size than the record's config was truncated, as good as missing.
  if (info && expected === null && manifestRecovery) {
    const configSize = await manifestRecovery.expectedConfigSize(digest);
    if (configSize !== null && configSize !== info.size) info = null;
  }
  if (!info && manifestRecovery && (await manifestRecovery.recover(digest))) info = await storage.stat(key);
  if (!info) throw errors.blobUnknown(digest);
  const url = await storage.publicUrl(key);
  if (url !== null) {
    // A HEAD asks what the blob is, which the stat above has answered: its
    // real length and digest, not a redirect's empty body. Only a GET, which
    // wants the bytes, is sent to storage.
    if (req.method === 'HEAD') {
      return { status: 200, headers: { 'Content-Type': MEDIA.octetStream, 'Docker-Content-Digest': digest, ETag: `"${digest}"`, 'Content-Length': String(info.size), 'Cache-Control': CACHE_CONTROL.immutable }, body: null };
    }
    return redirect(url, { 'Docker-Content-Digest': digest, 'Cache-Control': 'private, max-age=60' });
  }
  const range = parseRange(req.get('range'), info.size);
  const headers: Record<string, string> = {
    'Content-Type': MEDIA.octetStream,
    'Docker-Content-Digest': digest,
    ETag: `"${digest}"`,
    'Accept-Ranges': 'bytes',
    'Cache-Control': CACHE_CONTROL.immutable,
    'Content-Length': String(range ? range.end - range.start + 1 : info.size),
  };
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${info.size}`;
  const open = async () => {
    const stream = await storage.read(key, range ?? undefined);
    if (!stream) throw errors.blobUnknown(digest);
    return stream;
  };
  return { status: range ? 206 : 200, headers, body: { open } };
}

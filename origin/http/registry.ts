// The pull API's answers at the origin: each route answered as for a GET,
// as a Reply (bytes, a stream opened only when sent, or a redirect) or a
// thrown RegistryError. Writing them is reply.ts's and errors.ts's job.
import type { Request } from 'express';
import { errors } from '../../shared/errors.ts';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA, negotiateManifestFormat } from '../../shared/media-types.ts';
import { parseImageName } from '../../shared/names.ts';
import type { RegistryRoute } from '../../shared/routes.ts';
import { CACHE_CONTROL } from '../../shared/responses.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import { ManifestRecovery } from '../image/manifest-recovery.ts';
import type { BlobRecovery } from '../image/blob-recovery.ts';
import type { Storage } from '../storage/storage.ts';
import type { ImageBuilder } from '../image/builder.ts';
import type { ImageStore } from '../image/image-store.ts';
import { redirect, type Reply } from './reply.ts';
import { parseRange } from './range.ts';

export interface RegistryDeps {
  builder: ImageBuilder;
  /** The read path of manifests by digest. */
  images: ImageStore;
  storage: Storage;
  /** Rebuilds layer blobs that are missing or damaged; absent, a missing blob is simply unknown. */
  recovery?: BlobRecovery | undefined;
  /** Re-derives lost or damaged manifests and configs from image records. */
  manifestRecovery?: ManifestRecovery | undefined;
}

const encoder = new TextEncoder();

export async function answerRegistry(req: Request, route: RegistryRoute, deps: RegistryDeps): Promise<Reply> {
  switch (route.kind) {
    case 'base':
      return { status: 200, headers: { 'Content-Type': MEDIA.json }, body: encoder.encode('{}') };
    case 'catalog':
      throw errors.noCatalog();
    case 'tags':
      parseImageName(route.name);
      return { status: 200, headers: { 'Content-Type': MEDIA.json }, body: encoder.encode(JSON.stringify({ name: route.name, tags: ['latest'] })) };
    case 'manifest':
      return manifest(req, route, deps);
    case 'blob':
      return blob(req, route.digest, deps);
  }
}

async function manifest(req: Request, route: Extract<RegistryRoute, { kind: 'manifest' }>, { builder, images, manifestRecovery }: RegistryDeps): Promise<Reply> {
  const spec = parseImageName(route.name);
  let digest: Digest;
  let cacheControl: string;
  if (route.reference.kind === 'digest') {
    digest = route.reference.digest;
    cacheControl = CACHE_CONTROL.immutable;
  } else {
    const record = await builder.image(spec, route.reference.tag);
    digest = record.manifests[negotiateManifestFormat(req.get('accept'))].digest;
    cacheControl = 'public, max-age=60';
  }
  let found = await images.manifest(digest);
  if (manifestRecovery && (!found || !(await ManifestRecovery.intact(digest, found.bytes)))) {
    found = (await manifestRecovery.recover(digest)) ? await images.manifest(digest) : null;
  }
  if (!found) throw errors.manifestUnknown(`manifest unknown: ${digest}`, { digest });
  return {
    status: 200,
    headers: { 'Content-Type': found.mediaType, 'Docker-Content-Digest': digest, ETag: `"${digest}"`, 'Cache-Control': cacheControl },
    body: found.bytes,
  };
}

async function blob(req: Request, digest: Digest, { storage, recovery, manifestRecovery }: RegistryDeps): Promise<Reply> {
  const key = STORAGE_KEYS.blob(digestHex(digest));
  let info = await storage.stat(key);
  // A blob of another size than its layer record says is damaged (truncated): as good as missing.
  const expected = recovery ? await recovery.expectedSize(digest) : null;
  if (recovery && (!info || (expected !== null && info.size !== expected))) {
    const size = await recovery.recover(digest);
    info = size === null ? null : { size };
  }
  // Not a layer: a config, which its image record can derive again.
  if (!info && manifestRecovery && (await manifestRecovery.recover(digest))) info = await storage.stat(key);
  if (!info) throw errors.blobUnknown(digest);
  const url = await storage.publicUrl(key);
  if (url !== null) return redirect(url, { 'Docker-Content-Digest': digest, 'Cache-Control': 'private, max-age=60' });
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

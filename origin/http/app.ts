// The origin's HTTP surface: the pull API of the distribution spec. Routes
// are parsed by the shared parser (the edge uses the same one); handlers
// return replies or throw RegistryErrors, and HEAD is answered by the same
// code as GET, minus the body (reply.ts).
import express, { type NextFunction, type Request, type Response } from 'express';
import { timingSafeEqual, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { errors } from '../../shared/errors.ts';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA, negotiateManifestFormat } from '../../shared/media-types.ts';
import { parseImageName } from '../../shared/names.ts';
import { parseRegistryRequest, type RegistryRoute } from '../../shared/routes.ts';
import { ORIGIN_SECRET_HEADER, REQUEST_ID_HEADER } from '../../shared/headers.ts';
import { CACHE_CONTROL } from '../../shared/responses.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import type { ImageBuilder } from '../image/builder.ts';
import type { ImageStore } from '../image/image-store.ts';
import { sendError } from './errors.ts';
import { redirect, sendReply, type Reply } from './reply.ts';
import { parseRange } from './range.ts';

export interface AppDeps {
  builder: ImageBuilder;
  /** The read path of manifests by digest. */
  images: ImageStore;
  storage: Storage;
  log: Logger;
  /** Secrets the edge may send; empty: the origin answers anyone. */
  originSecrets: readonly string[];
  /** Extra routes outside /v2/ (health, metrics), mounted before the registry. */
  extra?: (app: express.Express) => void;
}

const encoder = new TextEncoder();

function secretMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * What kind of route a request was (base, manifest, blob, tags, catalog, or
 * a name set by an `extra` route such as healthz): a label of bounded
 * cardinality for logs and metrics, unlike the raw path.
 */
export function routeKind(res: Response): string {
  return typeof res.locals.route === 'string' ? res.locals.route : 'unknown';
}

export function createApp(deps: AppDeps): express.Express {
  const { builder, images, storage, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);

  app.use((req, res, next) => {
    const id = req.get(REQUEST_ID_HEADER) ?? randomUUID();
    const started = performance.now();
    res.locals.log = log.child({ requestId: id });
    res.setHeader(REQUEST_ID_HEADER, id);
    res.on('finish', () => {
      (res.locals.log as Logger).info(
        {
          method: req.method,
          path: req.path,
          route: routeKind(res),
          status: res.statusCode,
          ms: Math.round((performance.now() - started) * 10) / 10,
        },
        'request',
      );
    });
    next();
  });

  deps.extra?.(app);

  app.use('/v2', (req, res, next) => {
    const given = req.get(ORIGIN_SECRET_HEADER);
    if (deps.originSecrets.length > 0 && !deps.originSecrets.some((secret) => secretMatches(secret, given))) {
      next(errors.denied('this origin answers its edge only'));
      return;
    }
    next();
  });

  // Every handler answers as for a GET and returns its reply (or throws a
  // RegistryError); sendReply writes it, without the body for a HEAD.
  app.all(/^\/v2(\/.*)?$/, async (req, res, next) => {
    try {
      res.locals.route = 'unknown';
      const route = parseRegistryRequest(req.method, req.path);
      res.locals.route = route.kind;
      await sendReply(res, await answer(req, route));
    } catch (err) {
      next(err);
    }
  });

  async function answer(req: Request, route: RegistryRoute): Promise<Reply> {
    switch (route.kind) {
      case 'base':
        return { status: 200, headers: { 'Content-Type': MEDIA.json }, body: encoder.encode('{}') };
      case 'catalog':
        throw errors.noCatalog();
      case 'tags':
        parseImageName(route.name);
        return { status: 200, headers: { 'Content-Type': MEDIA.json }, body: encoder.encode(JSON.stringify({ name: route.name, tags: ['latest'] })) };
      case 'manifest':
        return manifest(req, route);
      case 'blob':
        return blob(req, route.digest);
    }
  }

  async function manifest(req: Request, route: Extract<RegistryRoute, { kind: 'manifest' }>): Promise<Reply> {
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
    const found = await images.manifest(digest);
    if (!found) throw errors.manifestUnknown(`manifest unknown: ${digest}`, { digest });
    return {
      status: 200,
      headers: { 'Content-Type': found.mediaType, 'Docker-Content-Digest': digest, ETag: `"${digest}"`, 'Cache-Control': cacheControl },
      body: found.bytes,
    };
  }

  async function blob(req: Request, digest: Digest): Promise<Reply> {
    const key = STORAGE_KEYS.blob(digestHex(digest));
    const info = await storage.stat(key);
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

  app.use((req, _res, next) => next(errors.notFound(req.path)));

  // Express recognises an error handler by its four parameters.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    sendError(res, err, (res.locals.log as Logger | undefined) ?? log);
  });

  return app;
}

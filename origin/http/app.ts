// The origin's HTTP surface: the pull API of the distribution spec. Routes
// are parsed by the shared parser (the edge uses the same one); handlers are
// thin and HEAD is answered by the same code as GET, minus the body.
import express, { type NextFunction, type Request, type Response } from 'express';
import { timingSafeEqual, randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { errors } from '../../shared/errors.ts';
import { digestHex, type Digest } from '../../shared/digest.ts';
import { MEDIA, negotiateManifestFormat } from '../../shared/media-types.ts';
import { parseImageName } from '../../shared/names.ts';
import { parseRegistryRequest, type RegistryRoute } from '../../shared/routes.ts';
import { ORIGIN_SECRET_HEADER, REQUEST_ID_HEADER } from '../../shared/headers.ts';
import { keys, type Storage } from '../storage/storage.ts';
import type { ImageBuilder } from '../image/builder.ts';
import { sendError } from './errors.ts';
import { parseRange } from './range.ts';
import { asClient } from './client.ts';

export interface AppDeps {
  builder: ImageBuilder;
  storage: Storage;
  log: Logger;
  /** Secrets the edge may send; empty: the origin answers anyone. */
  originSecrets: readonly string[];
  /** Extra routes outside /v2/ (health, metrics), mounted before the registry. */
  extra?: (app: express.Express) => void;
}

const API_HEADERS = { 'Docker-Distribution-API-Version': 'registry/2.0' };
const IMMUTABLE = 'public, max-age=31536000, immutable';

function secretMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Sends headers, then the body only for GET: HEAD gets exactly GET's headers. */
function respond(req: Request, res: Response, status: number, headers: Record<string, string>, body?: Uint8Array): void {
  res.status(status).set({ ...API_HEADERS, ...headers });
  res.end(req.method === 'HEAD' || body === undefined ? undefined : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
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
  const { builder, storage, log } = deps;
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
    asClient(req, deps.originSecrets.length > 0, next);
  });

  app.all(/^\/v2(\/.*)?$/, async (req, res, next) => {
    try {
      res.locals.route = 'unknown';
      const route = parseRegistryRequest(req.method, req.path);
      res.locals.route = route.kind;
      switch (route.kind) {
        case 'base':
          respond(req, res, 200, { 'Content-Type': MEDIA.json, 'Content-Length': '2' }, new TextEncoder().encode('{}'));
          return;
        case 'catalog':
          throw errors.unsupported('this registry has no catalog: every name of packages is an image');
        case 'tags': {
          parseImageName(route.name);
          const body = new TextEncoder().encode(JSON.stringify({ name: route.name, tags: ['latest'] }));
          respond(req, res, 200, { 'Content-Type': MEDIA.json, 'Content-Length': String(body.length) }, body);
          return;
        }
        case 'manifest':
          await serveManifest(req, res, route);
          return;
        case 'blob':
          await serveBlob(req, res, route.digest);
          return;
      }
    } catch (err) {
      next(err);
    }
  });

  async function serveManifest(req: Request, res: Response, route: Extract<RegistryRoute, { kind: 'manifest' }>): Promise<void> {
    const spec = parseImageName(route.name);
    let digest: Digest;
    let cacheControl: string;
    if (route.reference.kind === 'digest') {
      digest = route.reference.digest;
      cacheControl = IMMUTABLE;
    } else {
      const record = await builder.image(spec, route.reference.tag);
      digest = record.manifests[negotiateManifestFormat(req.get('accept'))].digest;
      cacheControl = 'public, max-age=60';
    }
    const manifest = await builder.manifestBytes(digest);
    if (!manifest) throw errors.manifestUnknown(`manifest unknown: ${digest}`, { digest });
    respond(
      req,
      res,
      200,
      {
        'Content-Type': manifest.mediaType,
        'Content-Length': String(manifest.bytes.length),
        'Docker-Content-Digest': digest,
        ETag: `"${digest}"`,
        'Cache-Control': cacheControl,
      },
      manifest.bytes,
    );
  }

  async function serveBlob(req: Request, res: Response, digest: Digest): Promise<void> {
    const key = keys.blob(digestHex(digest));
    const info = await storage.stat(key);
    if (!info) throw errors.blobUnknown(digest);
    const url = await storage.publicUrl(key);
    if (url !== null) {
      respond(req, res, 307, { Location: url, 'Docker-Content-Digest': digest, 'Content-Length': '0', 'Cache-Control': 'private, max-age=60' });
      return;
    }
    const range = parseRange(req.get('range'), info.size);
    const headers: Record<string, string> = {
      'Content-Type': MEDIA.octetStream,
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
      'Accept-Ranges': 'bytes',
      'Cache-Control': IMMUTABLE,
      'Content-Length': String(range ? range.end - range.start + 1 : info.size),
    };
    if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${info.size}`;
    const status = range ? 206 : 200;
    if (req.method === 'HEAD') {
      respond(req, res, status, headers);
      return;
    }
    const stream = await storage.read(key, range ?? undefined);
    if (!stream) throw errors.blobUnknown(digest);
    res.status(status).set({ ...API_HEADERS, ...headers });
    await pipeline(stream, res);
  }

  app.use((req, _res, next) => next(errors.notFound(req.path)));

  // Express recognises an error handler by its four parameters.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    sendError(res, err, (res.locals.log as Logger | undefined) ?? log);
  });

  return app;
}

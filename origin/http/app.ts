// The origin's HTTP surface: request ids and logs, the edge's secret, the
// extra routes (health, metrics), and the pull API of the distribution spec.
// Routes are parsed by the shared parser (the edge uses the same one);
// registry.ts answers them, reply.ts writes the answer (HEAD: the same
// headers, no body) and errors.ts every error.
import express, { type NextFunction, type Request, type Response } from 'express';
import { timingSafeEqual, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { errors } from '../../shared/errors.ts';
import { parseRegistryRequest } from '../../shared/routes.ts';
import { ORIGIN_SECRET_HEADER, REQUEST_ID_HEADER } from '../../shared/headers.ts';
import { sendError } from './errors.ts';
import { sendReply } from './reply.ts';
import { answerRegistry, type RegistryDeps } from './registry.ts';
import { asClient } from './client.ts';

export interface AppDeps extends RegistryDeps {
  log: Logger;
  /** Secrets the edge may send; empty: the origin answers anyone. */
  originSecrets: readonly string[];
  /** Extra routes outside /v2/ (health, metrics), mounted before the registry. */
  extra?: (app: express.Express) => void;
  /** Routes behind the edge's secret besides the pull API (the page's /api/, http/api.ts; the edge's /edge/, http/edge-hits.ts). */
  api?: (app: express.Express) => void;
}

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

/**
 * The request's logger: its lines carry the request's id. Made when first
 * asked for (an error to log), since most requests log one line only and
 * pino's child loggers are not free on a path strangers can call at will.
 */
function requestLog(res: Response, log: Logger): Logger {
  const made = res.locals.log as Logger | undefined;
  if (made !== undefined) return made;
  const child = log.child({ requestId: res.locals.requestId as string | undefined });
  res.locals.log = child;
  return child;
}

export function createApp(deps: AppDeps): express.Express {
  const { log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);

  app.use((req, res, next) => {
    const id = req.get(REQUEST_ID_HEADER) ?? randomUUID();
    const started = performance.now();
    res.locals.requestId = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    res.on('finish', () => {
      log.info(
        {
          requestId: id,
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

  // /edge/ is the edge's own traffic (its hit reports, http/edge-hits.ts): behind the same secret.
  app.use(['/v2', '/api', '/edge'], (req, res, next) => {
    const given = req.get(ORIGIN_SECRET_HEADER);
    if (deps.originSecrets.length > 0 && !deps.originSecrets.some((secret) => secretMatches(secret, given))) {
      next(errors.denied('this origin answers its edge only'));
      return;
    }
    asClient(req, deps.originSecrets.length > 0, next);
  });

  // Every handler answers as for a GET and returns its reply (or throws a
  // RegistryError); sendReply writes it, without the body for a HEAD, and
  // sendError the error: here, not through Express's error handling, which
  // would walk every later route for an error handler. That is what a
  // stranger's refusal costs, and they can ask for many. Mounted before
  // the API's routes (disjoint paths) for the same reason.
  // No capture group: Express would percent-decode it as a parameter, and a
  // malformed encoding would fail there (a 500) instead of in the shared
  // parser (the same 400 NAME_INVALID as the edge).
  app.all(/^\/v2(?:\/.*)?$/, async (req, res) => {
    try {
      res.locals.route = 'unknown';
      const route = parseRegistryRequest(req.method, req.path);
      res.locals.route = route.kind;
      await sendReply(res, await answerRegistry(req, route, deps));
    } catch (err) {
      sendError(res, err, requestLog(res, log));
    }
  });

  deps.api?.(app);

  app.use((req, _res, next) => next(errors.notFound(req.path)));

  // Express recognises an error handler by its four parameters.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    sendError(res, err, requestLog(res, log));
  });

  return app;
}

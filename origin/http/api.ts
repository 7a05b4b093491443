// The JSON API behind the page (docs/api.md): search the package set, start
// a build, watch it as server-sent events, list the latest failures. Every
// request is validated by shared/api.ts (as the edge does) before any work,
// and refused in the registry error format. A search reads the in-memory
// index and never runs Nix; a build request names only packages the index
// does not rule out, so an unknown name costs no Nix either.
import type express from 'express';
import type { Request, Response } from 'express';
import { errors } from '../../shared/errors.ts';
import { canonicalImage, type ImageSpec } from '../../shared/names.ts';
import { API_LIMITS, API_PATHS, eventsPath, parseBuildRequest, parseEventsPath, parseSearchQuery } from '../../shared/api.ts';
import { STORAGE_KEYS } from '../../shared/storage-keys.ts';
import type { Storage } from '../storage/storage.ts';
import type { ImageBuilder } from '../image/builder.ts';
import type { ImageRecord } from '../image/image-store.ts';
import type { BuildChannels, BuildEvent } from '../image/build-events.ts';
import { summarizeImage, type ImageSummary } from '../image/image-summary.ts';
import type { PackageIndexes } from '../search/indexes.ts';
import { readJsonBody } from './body.ts';
import { currentClient } from './client.ts';
import { StreamSlots } from './stream-slots.ts';

export interface ApiDeps {
  builder: ImageBuilder;
  storage: Storage;
  indexes: PackageIndexes;
  events: BuildChannels;
  /** Milliseconds between keep-alive comments on an event stream (proxies close idle connections). */
  heartbeatMs?: number;
}

const SEARCH_CACHE = 'public, max-age=60';
/** A refused watcher's Retry-After: places free as builds end or watchers leave. */
const STREAM_RETRY_SECONDS = 10;

function sendJson(res: Response, status: number, value: unknown, cacheControl = 'no-store'): void {
  const body = JSON.stringify(value);
  res.status(status).set({ 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': cacheControl });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function mountApi(app: express.Express, deps: ApiDeps): void {
  const { builder, storage, indexes, events } = deps;
  const streams = new StreamSlots({ perClient: API_LIMITS.maxEventStreamsPerClient, total: API_LIMITS.maxEventStreams });

  async function summaryOf(record: ImageRecord): Promise<ImageSummary | null> {
    const digest = record.manifests.docker.digest;
    const manifest = await builder.store.manifest(digest);
    if (manifest === null) return null;
    const configDigest = (JSON.parse(new TextDecoder().decode(manifest.bytes)) as { config: { digest: string } }).config.digest;
    const config = await storage.get(STORAGE_KEYS.blob(configDigest.replace(/^sha256:/, '')));
    return summarizeImage(digest, manifest.bytes, config);
  }

  /** Refuses names the index rules out (no Nix), then starts or joins the build; resolves once its channel exists. */
  async function startBuild(spec: ImageSpec, tag: string): Promise<void> {
    const unknown = (await indexes.forTag(tag)).unknown(spec.packages);
    if (unknown.length > 0) {
      throw errors.manifestUnknown(`unknown package${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, { unknown, notPackages: [], failed: [] });
    }
    const key = `${canonicalImage(spec)}:${tag}`;
    const running = events.get(key);
    const build = builder.image(spec, tag);
    // The outcome reaches watchers through the channel (and failures the ring); nobody awaits it here.
    build.catch(() => {});
    if (running === undefined || running.finished) await events.opened(key, build);
  }

  app.get(API_PATHS.search, async (req, res, next) => {
    try {
      res.locals.route = 'api-search';
      const query = parseSearchQuery(new URL(req.originalUrl, 'http://origin').searchParams);
      const page = (await indexes.forTag(query.tag)).search(query.q, query.limit, query.offset);
      sendJson(res, 200, { query, total: page.total, packages: page.packages }, SEARCH_CACHE);
    } catch (err) {
      next(err);
    }
  });

  app.post(API_PATHS.builds, async (req, res, next) => {
    try {
      res.locals.route = 'api-build';
      const body = await readJsonBody(req, API_LIMITS.maxBodyBytes, '{"packages": ["hello"], "tag": "latest"}');
      const request = parseBuildRequest(body);
      await startBuild(request.spec, request.tag);
      sendJson(res, 202, { name: request.name, tag: request.tag, image: canonicalImage(request.spec), events: eventsPath(request.name, request.tag) });
    } catch (err) {
      next(err);
    }
  });

  app.get(/^\/api\/builds\/.+\/events$/, async (req, res, next) => {
    let target: ReturnType<typeof parseEventsPath>;
    try {
      res.locals.route = 'api-events';
      target = parseEventsPath(req.path);
      if (target === null) throw errors.notFound(req.path);
      // Before any build is started or joined: a refused watcher costs nothing.
      const release = streams.take(currentClient());
      if (release === null) {
        throw errors.tooManyRequests(
          `too many open build event streams (${API_LIMITS.maxEventStreamsPerClient} per client, ${API_LIMITS.maxEventStreams} in all); close one, or pull the image`,
          STREAM_RETRY_SECONDS,
          { limit: 'event-streams', perClient: API_LIMITS.maxEventStreamsPerClient, total: API_LIMITS.maxEventStreams },
        );
      }
      // Whenever the answer ends or its client leaves, even while the build below is being
      // started (an index load can wait minutes for a slot), the place is given back.
      res.once('close', release);
      // A replica that knows nothing of this build (the POST went to another one) starts or joins
      // it here, as a pull would: the watcher always sees a build, and the image is the same.
      if (events.get(`${canonicalImage(target.spec)}:${target.tag}`) === undefined) await startBuild(target.spec, target.tag);
    } catch (err) {
      next(err);
      return;
    }
    // Gone while the build was started: nobody to stream to (its place went back on 'close').
    if (res.closed) return;
    streamEvents(req, res, target.name, target.tag, `${canonicalImage(target.spec)}:${target.tag}`);
  });

  function streamEvents(req: Request, res: Response, name: string, tag: string, key: string): void {
    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      // Proxies that buffer (nginx) pass events on as they come.
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    const write = (event: string, data: unknown, id?: number) => {
      res.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const channel = events.get(key);
    if (channel === undefined) {
      // The build ended and its channel was forgotten before this watcher came: a pull answers now.
      write('idle', { name, tag, message: 'no build of this image is running on this origin' });
      res.end();
      return;
    }
    // A reconnecting EventSource says what it saw last; it is not sent that again.
    const after = Number(req.get('last-event-id') ?? 0) || 0;
    let chain = Promise.resolve();
    let closed = false;
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), deps.heartbeatMs ?? 15_000);
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      res.end();
    };
    const unsubscribe = channel.subscribe((event: BuildEvent, seq: number) => {
      if (seq <= after) return;
      chain = chain.then(async () => {
        if (closed) return;
        if (event.type === 'done') {
          const summary = await summaryOf(event.result as ImageRecord).catch(() => null);
          write('done', { name, tag, summary }, seq);
          close();
        } else if (event.type === 'failed') {
          write('failed', { name, tag, error: event.error }, seq);
          close();
        } else {
          write(event.type, event, seq);
        }
      });
    });
    res.on('close', close);
  }

  app.get(API_PATHS.failures, (_req, res) => {
    res.locals.route = 'api-failures';
    sendJson(res, 200, { failures: events.failures() });
  });

  app.all(/^\/api(\/.*)?$/, (req, _res, next) => {
    const known: readonly string[] = [API_PATHS.search, API_PATHS.builds, API_PATHS.failures];
    next(known.includes(req.path) ? errors.unsupported(`${req.method} is not supported on ${req.path}`) : errors.notFound(req.path));
  });
}

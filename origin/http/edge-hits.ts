// POST /edge/hits: the edge's report of the manifests it answered from its
// own tiers (shared/hit-report.ts). Behind the edge's secret like /v2/ (app.ts).
// The body is capped and every digest checked before any storage is read;
// the answer names the digests this origin can no longer serve.
import type express from 'express';
import { errors } from '../../shared/errors.ts';
import { HIT_REPORT_LIMITS, HIT_REPORT_PATH, hitReportAnswer, parseHitReport } from '../../shared/hit-report.ts';
import { MEDIA } from '../../shared/media-types.ts';
import type { ImageHits } from '../gc/image-hits.ts';
import { readJsonBody } from './body.ts';

export function mountEdgeHits(app: express.Express, hits: ImageHits): void {
  app.post(HIT_REPORT_PATH, async (req, res, next) => {
    try {
      res.locals.route = 'edge-hits';
      const digests = parseHitReport(await readJsonBody(req, HIT_REPORT_LIMITS.maxBodyBytes, '{"digests": ["sha256:…"]}'));
      const body = hitReportAnswer(await hits.report(digests, Date.now()));
      res.status(200).set({ 'Content-Type': MEDIA.json, 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': 'no-store' }).end(body);
    } catch (err) {
      next(err);
    }
  });
  app.all(/^\/edge(\/.*)?$/, (req, _res, next) => {
    next(req.path === HIT_REPORT_PATH ? errors.unsupported(`${req.method} is not supported on ${req.path}`) : errors.notFound(req.path));
  });
}

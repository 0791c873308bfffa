// GET /metrics: Prometheus text format. Like every other read it needs a
// viewer key: scrapers send it as a bearer token (Prometheus's
// `authorization` scrape option); metrics name sources and models, which
// viewers may see and strangers may not.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { requireRole } from '../auth.js';

export function metricsRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('viewer'), async (_req, res) => {
    const text = await ctx.metrics.text();
    res.setHeader('content-type', ctx.metrics.contentType);
    res.setHeader('cache-control', 'no-store');
    res.send(text);
  });
  return r;
}

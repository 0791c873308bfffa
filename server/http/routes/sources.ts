// /api/sources: every camera or line that sent images, with its totals and
// open alert instances.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { listSources } from '../../services/sources.js';
import { requireRole } from '../auth.js';

export function sourcesRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('viewer'), (_req, res) => {
    res.json({ sources: listSources(ctx.db) });
  });
  return r;
}

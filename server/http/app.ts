// Builds the express app from a context without listening: main.ts listens,
// tests call it in-process. The error handler comes last.
import { existsSync } from 'node:fs';
import express from 'express';
import type { Context } from '../context.js';
import { CLIENT_DIR } from '../paths.js';
import { authenticate } from './auth.js';
import { errorHandler, notFound } from './errors.js';
import { auditRouter, keysRouter, sessionRouter } from './routes/admin.js';
import { imagesRouter } from './routes/images.js';
import { jobsRouter, modelsRouter } from './routes/models.js';
import { alertsRouter, rulesRouter, silencesRouter } from './routes/rules.js';
import { healthRouter, statsRouter } from './routes/status.js';

export interface AppOptions {
  /** More fields for /api/health (e.g. WebSocket client count from main). */
  health?: () => Record<string, unknown>;
  clientDir?: string;
}

export function createApp(ctx: Context, o: AppOptions = {}): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use((req, res, next) => {
    const started = performance.now();
    res.on('finish', () => ctx.log.http.debug('request', { method: req.method, path: req.path, status: res.statusCode, ms: performance.now() - started }));
    next();
  });
  app.use(express.json({ limit: '1mb' }));
  app.use(authenticate(ctx));

  app.use('/api/health', healthRouter(ctx, o.health));
  app.use('/api/session', sessionRouter(ctx));
  app.use('/api/images', imagesRouter(ctx));
  app.use('/api/models', modelsRouter(ctx));
  app.use('/api/jobs', jobsRouter(ctx));
  app.use('/api/rules', rulesRouter(ctx));
  app.use('/api/silences', silencesRouter(ctx));
  app.use('/api/alerts', alertsRouter(ctx));
  app.use('/api/keys', keysRouter(ctx));
  app.use('/api/audit', auditRouter(ctx));
  app.use('/api/stats', statsRouter(ctx));
  app.use('/api', notFound);

  const clientDir = o.clientDir ?? CLIENT_DIR;
  if (existsSync(clientDir)) app.use(express.static(clientDir, { index: 'index.html' }));
  app.use(notFound);
  app.use(errorHandler(ctx.log.http));
  return app;
}

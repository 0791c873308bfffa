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
import { sourcesRouter } from './routes/sources.js';
import { metricsRouter } from './routes/metrics.js';
import { healthRouter, statsRouter } from './routes/status.js';

export interface AppOptions {
  /** More fields for /api/health (e.g. WebSocket client count from main). */
  health?: () => Record<string, unknown>;
  clientDir?: string;
}

/**
 * Sent with every response. The dashboard loads only its own script, styles
 * and images; nothing may frame it; browsers must not guess content types.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export function createApp(ctx: Context, o: AppOptions = {}): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // Behind a TLS proxy, req.secure (and so the cookie's Secure flag) needs this.
  app.set('trust proxy', ctx.config.trustProxy);
  app.use((_req, res, next) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    next();
  });
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
  app.use('/api/sources', sourcesRouter(ctx));
  app.use('/api/keys', keysRouter(ctx));
  app.use('/api/audit', auditRouter(ctx));
  app.use('/api/stats', statsRouter(ctx));
  app.use('/api', notFound);
  app.use('/metrics', metricsRouter(ctx));

  const clientDir = o.clientDir ?? CLIENT_DIR;
  if (existsSync(clientDir)) app.use(express.static(clientDir, { index: 'index.html' }));
  app.use(notFound);
  app.use(errorHandler(ctx.log.http));
  return app;
}

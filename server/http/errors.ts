// The one error handler: every failure becomes {"error": {"code", "message"}}
// with a fitting status, never a stack trace. A failure of the server's own
// (5xx) is logged with its stack; the client gets only a generic message,
// since a system error's text names files and paths.
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError } from '../domain/errors.js';
import type { Logger } from '../logger.js';

export const notFound: RequestHandler = (req, _res, next) => {
  next(new AppError('not_found', `no route ${req.method} ${req.path}`));
};

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    let status = 500;
    let body = { code: 'internal', message: 'internal error' };
    if (err instanceof AppError) {
      status = err.status;
      body = err.toJSON();
      if (status >= 500) log.error('request failed', { method: req.method, path: req.path, code: err.code, error: stackOf(err) });
    } else if (err?.type === 'entity.parse.failed') {
      status = 400;
      body = { code: 'bad_request', message: `malformed JSON body: ${err.message}` };
    } else if (err?.type === 'entity.too.large') {
      status = 413;
      body = { code: 'payload_too_large', message: 'request body too large' };
    } else if (typeof err?.status === 'number' && err.status >= 400 && err.status < 500) {
      status = err.status;
      body = { code: 'bad_request', message: String(err.message) };
    } else {
      log.error('unhandled error', { method: req.method, path: req.path, error: stackOf(err) });
    }
    if (res.headersSent) return;
    res.status(status).json({ error: body });
  };
}

/** The stack, followed by those of its causes. */
function stackOf(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e !== undefined && depth < 5; e = (e as Error)?.cause, depth++) {
    parts.push(e instanceof Error ? (e.stack ?? String(e)) : String(e));
  }
  return parts.join('\ncaused by: ');
}

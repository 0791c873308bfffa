// Who is calling: a bearer API key, or the dashboard's session cookie. The
// decision is the auth service's; this file applies it to express requests.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Context } from '../context.js';
import { AppError } from '../domain/errors.js';
import { hasRole, type Role } from '../domain/roles.js';
import { crossOriginRefusal, type AuthService, type Principal } from '../services/auth.js';

export type { Principal } from '../services/auth.js';

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The client address for the failed-key limit (express applies trust proxy). */
export function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

/** Why this browser request may not use the session cookie (see crossOriginRefusal), or undefined. */
export function originRefusal(ctx: Context, req: Request, originRequired: boolean): string | undefined {
  return crossOriginRefusal({
    origin: req.get('origin'),
    secFetchSite: req.get('sec-fetch-site'),
    ownOrigin: req.host ? `${req.protocol}://${req.host}` : undefined,
    allowed: ctx.config.allowedOrigins,
    originRequired,
  });
}

/** Passes err on, with Retry-After when it is the failed-key limit. */
export function passError(auth: AuthService, req: Request, res: Response, next: NextFunction, err: unknown): void {
  if (err instanceof AppError && err.code === 'too_many_requests') res.setHeader('retry-after', String(auth.retryAfterS(clientAddress(req))));
  next(err);
}

export function authenticate(ctx: Context): RequestHandler {
  const auth = ctx.auth;
  return (req, res, next) => {
    try {
      req.principal = auth.identify(req.headers, clientAddress(req));
    } catch (err) {
      return passError(auth, req, res, next, err);
    }
    // A bearer key cannot be sent by another page; a cookie can (CSRF).
    if (req.principal?.via === 'session' && !SAFE_METHODS.has(req.method)) {
      const refusal = originRefusal(ctx, req, true);
      if (refusal) return next(new AppError('forbidden', refusal));
    }
    next();
  };
}

export function requireRole(role: Role): RequestHandler {
  return (req, _res, next) => {
    const p = req.principal;
    if (!p) return next(new AppError('unauthorized', 'sign in or send Authorization: Bearer <api-key>'));
    if (!hasRole(p.role, role)) return next(new AppError('forbidden', `this needs the ${role} role; your key has ${p.role}`));
    next();
  };
}

export function principalOf(req: Request): Principal {
  if (!req.principal) throw new AppError('unauthorized', 'not signed in');
  return req.principal;
}

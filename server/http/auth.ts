// Who is calling: a bearer API key, or the dashboard's session cookie.
import type { Request, RequestHandler } from 'express';
import type { Context } from '../context.js';
import { AppError } from '../domain/errors.js';
import { hasRole, type Role } from '../domain/roles.js';
import { authenticateKey, sessionKey } from '../services/auth.js';

export const SESSION_COOKIE = 'lw_session';

export interface Principal {
  keyId: number;
  name: string;
  role: Role;
  via: 'key' | 'session';
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
  }
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    try {
      out[name] = decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      // a malformed cookie is ignored, not fatal
    }
  }
  return out;
}

/** Resolves the caller from headers; undefined when anonymous or unknown. */
export function identify(ctx: Context, headers: { authorization?: string; cookie?: string }): Principal | undefined {
  const now = ctx.clock.now();
  const auth = headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    const row = m ? authenticateKey(ctx.db, m[1], now) : undefined;
    return row && { keyId: row.id, name: row.name, role: row.role, via: 'key' };
  }
  const token = parseCookies(headers.cookie)[SESSION_COOKIE];
  const row = token ? sessionKey(ctx.db, token, now) : undefined;
  return row && { keyId: row.id, name: row.name, role: row.role, via: 'session' };
}

export function authenticate(ctx: Context): RequestHandler {
  return (req, _res, next) => {
    req.principal = identify(ctx, req.headers);
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

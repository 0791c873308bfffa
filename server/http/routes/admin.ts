// /api/session (sign in with a key, get a cookie), /api/keys and /api/audit.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { audit, listAudit } from '../../db/audit.js';
import { getKey, listKeys, revokeKey } from '../../db/keys.js';
import { AppError } from '../../domain/errors.js';
import { isRole } from '../../domain/roles.js';
import { authenticateKey, createApiKey, createSession, endSession, SESSION_TTL_MS } from '../../services/auth.js';
import { parseCookies, principalOf, requireRole, SESSION_COOKIE } from '../auth.js';
import { idParam, objectBody, strParam } from '../params.js';

export function sessionRouter(ctx: Context): Router {
  const r = Router();
  r.post('/', (req, res) => {
    const key = strParam(objectBody(req.body).key, 'key', { max: 200 })!;
    const row = authenticateKey(ctx.db, key, ctx.clock.now());
    if (!row) throw new AppError('unauthorized', 'unknown or revoked API key');
    const { token } = createSession(ctx.db, row.id, ctx.clock.now());
    const secure = req.secure ? '; Secure' : '';
    res.setHeader('set-cookie', `${SESSION_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_MS / 1000}${secure}`);
    res.status(201).json({ name: row.name, role: row.role });
  });
  // Answers 200 either way, so a signed-out dashboard can ask without an error.
  r.get('/', (req, res) => {
    const p = req.principal;
    res.json(p ? { signedIn: true, name: p.name, role: p.role, via: p.via } : { signedIn: false });
  });
  r.delete('/', (req, res) => {
    const token = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (token) endSession(ctx.db, token);
    res.setHeader('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
    res.status(204).end();
  });
  return r;
}

export function keysRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('admin'), (_req, res) => {
    res.json({ keys: listKeys(ctx.db) });
  });
  r.post('/', requireRole('admin'), (req, res) => {
    const body = objectBody(req.body);
    const name = strParam(body.name, 'name', { max: 100 })!;
    if (!isRole(body.role)) throw new AppError('bad_request', 'role must be viewer, operator or admin');
    const now = ctx.clock.now();
    const { id, key } = createApiKey(ctx.db, name, body.role, now);
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'key.create', target: `key:${id}`, detail: { name, role: body.role }, now });
    // The only time the key itself is ever shown.
    res.status(201).json({ ...getKey(ctx.db, id), key });
  });
  r.delete('/:id', requireRole('admin'), (req, res) => {
    const id = idParam(req.params.id, 'key id');
    if (!getKey(ctx.db, id)) throw new AppError('not_found', `no key ${id}`);
    const now = ctx.clock.now();
    revokeKey(ctx.db, id, now);
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'key.revoke', target: `key:${id}`, now });
    res.status(204).end();
  });
  return r;
}

export function auditRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('admin'), (_req, res) => {
    res.json({ entries: listAudit(ctx.db).map((a) => ({ ...a, detail: JSON.parse(a.detail) })) });
  });
  return r;
}

// /api/session (sign in with a key, get a cookie), /api/keys and /api/audit.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { audit, listAudit } from '../../db/audit.js';
import { AppError } from '../../domain/errors.js';
import { isRole } from '../../domain/roles.js';
import { parseCookies, SESSION_COOKIE, SESSION_TTL_MS } from '../../services/auth.js';
import { clientAddress, originRefusal, passError, principalOf, requireRole } from '../auth.js';
import { idParam, objectBody, strParam } from '../params.js';

export function sessionRouter(ctx: Context): Router {
  const r = Router();
  const auth = ctx.auth;
  r.post('/', (req, res, next) => {
    // Login CSRF: another origin must not sign the browser in to a key of its choosing.
    const refusal = originRefusal(ctx, req, false);
    if (refusal) throw new AppError('forbidden', refusal);
    const key = strParam(objectBody(req.body).key, 'key', { max: 200 })!;
    let session: ReturnType<typeof auth.signIn>;
    try {
      session = auth.signIn(key, clientAddress(req));
    } catch (err) {
      return passError(auth, req, res, next, err);
    }
    const secure = req.secure ? '; Secure' : '';
    res.setHeader('set-cookie', `${SESSION_COOKIE}=${session.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_MS / 1000}${secure}`);
    res.status(201).json({ name: session.key.name, role: session.key.role });
  });
  // Answers 200 either way, so a signed-out dashboard can ask without an error.
  r.get('/', (req, res) => {
    const p = req.principal;
    res.json(p ? { signedIn: true, name: p.name, role: p.role, via: p.via } : { signedIn: false });
  });
  r.delete('/', (req, res) => {
    const token = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (token) auth.signOut(token);
    res.setHeader('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
    res.status(204).end();
  });
  return r;
}

export function keysRouter(ctx: Context): Router {
  const r = Router();
  const auth = ctx.auth;
  r.get('/', requireRole('admin'), (_req, res) => {
    res.json({ keys: auth.listKeys() });
  });
  r.post('/', requireRole('admin'), (req, res) => {
    const body = objectBody(req.body);
    const name = strParam(body.name, 'name', { max: 100 })!;
    if (!isRole(body.role)) throw new AppError('bad_request', 'role must be viewer, operator or admin');
    const { row, key } = auth.createKey(name, body.role);
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'key.create', target: `key:${row.id}`, detail: { name, role: body.role }, now: ctx.clock.now() });
    // The only time the key itself is ever shown.
    res.status(201).json({ ...row, key });
  });
  r.delete('/:id', requireRole('admin'), (req, res) => {
    const id = idParam(req.params.id, 'key id');
    auth.revokeKey(id);
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'key.revoke', target: `key:${id}`, now: ctx.clock.now() });
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

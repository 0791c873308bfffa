// API keys and dashboard sessions. Keys are random 32-byte secrets shown once;
// only their sha256 is stored (they are high-entropy, so no slow hash is needed).
// Who is calling is decided here for both HTTP and /ws, together with the
// failed-key limit and the CSRF rule for the session cookie.
import { createHash, randomBytes } from 'node:crypto';
import {
  countActiveAdmins, deleteSession, findActiveKeyByHash, findKeyByHash, findSessionKey, getKey, insertKey, insertSession,
  listKeys, revokeKey as dbRevokeKey, touchKey, type ApiKeyRow,
} from '../db/keys.js';
import type { Db } from '../db/open.js';
import { AppError } from '../domain/errors.js';
import type { Role } from '../domain/roles.js';
import type { Logger } from '../logger.js';
import type { EventBus } from './event-bus.js';
import { FailureLimiter } from './rate-limit.js';

export const SESSION_TTL_MS = 12 * 3600 * 1000;
export const SESSION_COOKIE = 'lw_session';
/** last_used_at is a hint for admins; writing it at most this often keeps reads free of writes. */
export const TOUCH_INTERVAL_MS = 60_000;

export interface Principal {
  keyId: number;
  name: string;
  role: Role;
  via: 'key' | 'session';
  /** The session's token hash, when signed in by the cookie (so that sign-out can close its sockets). */
  sessionHash?: string;
}

export interface Credentials {
  authorization?: string;
  cookie?: string;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function generateKey(): string {
  return `lw_${randomBytes(32).toString('base64url')}`;
}

export function createApiKey(db: Db, name: string, role: Role, now: number, key = generateKey()): { id: number; key: string } {
  const id = insertKey(db, { name, role, keyHash: hashSecret(key), prefix: key.slice(0, 10), now });
  return { id, key };
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

/**
 * First start: make sure an admin key exists. LATENTWATCH_ADMIN_KEY is used
 * when set (and registered if new); otherwise, when no admin key is active, a
 * key is generated and returned so that main can print it once.
 */
export function bootstrapAdmin(db: Db, configured: string | undefined, now: number): { generated?: string } {
  if (configured) {
    const existing = findKeyByHash(db, hashSecret(configured));
    if (existing?.revoked_at != null) {
      throw new AppError(
        'invalid_option',
        `LATENTWATCH_ADMIN_KEY is API key ${existing.id} ("${existing.name}"), which was revoked on ${new Date(existing.revoked_at).toISOString()}; ` +
          'a revoked key cannot be used again. Set LATENTWATCH_ADMIN_KEY to a new secret (at least 24 characters), ' +
          'or unset it: a new admin key is then generated and printed if no admin key is left.',
      );
    }
    if (!existing) createApiKey(db, 'bootstrap admin (LATENTWATCH_ADMIN_KEY)', 'admin', now, configured);
    return {};
  }
  if (countActiveAdmins(db) > 0) return {};
  return { generated: createApiKey(db, 'bootstrap admin', 'admin', now).key };
}

function originOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

export interface OriginFacts {
  /** The Origin header as sent. */
  origin?: string;
  /** The Sec-Fetch-Site header: only browsers set it, and a page cannot. */
  secFetchSite?: string;
  /** This server as the browser sees it: scheme and Host (as trust proxy allows). */
  ownOrigin?: string;
  allowed: readonly string[];
  /** Refuse a request with no Origin too (cookie-authenticated changes and upgrades). */
  originRequired: boolean;
}

/**
 * SameSite=Strict stops other sites, not other origins of the same site (the
 * same host on another port). So a request that uses the session cookie must
 * come from this server's own origin or a configured one. Returns why it is
 * refused, or undefined when it may go on.
 */
export function crossOriginRefusal(f: OriginFacts): string | undefined {
  if (f.secFetchSite === 'same-origin') return undefined;
  if (f.origin === undefined) {
    if (!f.originRequired) return undefined;
    return 'this request uses the session cookie but has no Origin header, so it may come from another page: ' +
      'use the dashboard, or send Authorization: Bearer <api-key>';
  }
  const origin = originOf(f.origin);
  if (origin !== undefined && (origin === originOf(f.ownOrigin) || f.allowed.includes(origin))) return undefined;
  return `Origin ${JSON.stringify(f.origin.slice(0, 200))} may not use the session cookie: only this server's own origin ` +
    'and LATENTWATCH_ALLOWED_ORIGINS may (other clients: send Authorization: Bearer <api-key>)';
}

export interface AuthDeps {
  db: Db;
  bus: EventBus;
  now: () => number;
  log: Logger;
}

export class AuthService {
  /** Failed sign-ins and failed bearer keys, per client address. */
  readonly failures: FailureLimiter;
  /** When each key's last_used_at was last written (or tried). */
  private readonly touched = new Map<number, number>();

  constructor(private readonly d: AuthDeps) {
    this.failures = new FailureLimiter({ now: d.now });
  }

  /**
   * Who is calling: a bearer key (Authorization wins) or the session cookie;
   * undefined when anonymous or unknown. A failed key counts against the
   * address, and a limited address is refused even with a right key, so that
   * guesses learn nothing.
   */
  identify(c: Credentials, address: string): Principal | undefined {
    const now = this.d.now();
    if (c.authorization !== undefined) {
      this.checkLimit(address);
      const m = /^Bearer\s+(\S+)$/i.exec(c.authorization);
      const row = m ? findActiveKeyByHash(this.d.db, hashSecret(m[1])) : undefined;
      if (!row) {
        this.failures.fail(address);
        return undefined;
      }
      this.touch(row.id, now);
      return { keyId: row.id, name: row.name, role: row.role, via: 'key' };
    }
    const token = parseCookies(c.cookie)[SESSION_COOKIE];
    if (!token) return undefined;
    const sessionHash = hashSecret(token);
    const row = findSessionKey(this.d.db, sessionHash, now);
    return row && { keyId: row.id, name: row.name, role: row.role, via: 'session', sessionHash };
  }

  /** Seconds a limited address must wait (0 when it may try now), for Retry-After. */
  retryAfterS(address: string): number {
    return Math.ceil(this.failures.retryAfterMs(address) / 1000);
  }

  signIn(key: string, address: string): { key: ApiKeyRow; token: string; expiresAt: number } {
    this.checkLimit(address);
    const now = this.d.now();
    const row = findActiveKeyByHash(this.d.db, hashSecret(key));
    if (!row) {
      this.failures.fail(address);
      throw new AppError('unauthorized', 'unknown or revoked API key');
    }
    this.touch(row.id, now);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = now + SESSION_TTL_MS;
    insertSession(this.d.db, hashSecret(token), row.id, now, expiresAt);
    return { key: row, token, expiresAt };
  }

  /** Ends the session and closes its live connections. */
  signOut(token: string): void {
    const sessionHash = hashSecret(token);
    deleteSession(this.d.db, sessionHash);
    this.d.bus.accessEnded({ sessionHash });
  }

  listKeys(): ApiKeyRow[] {
    return listKeys(this.d.db);
  }

  getKey(id: number): ApiKeyRow | undefined {
    return getKey(this.d.db, id);
  }

  createKey(name: string, role: Role): { row: ApiKeyRow; key: string } {
    const { id, key } = createApiKey(this.d.db, name, role, this.d.now());
    return { row: getKey(this.d.db, id)!, key };
  }

  /**
   * Revokes a key, ends its sessions and closes its live connections. The
   * last active admin key stays: without it no one could manage keys.
   */
  revokeKey(id: number): void {
    const revoked = this.d.db.transaction(() => {
      const row = getKey(this.d.db, id);
      if (!row) throw new AppError('not_found', `no key ${id}`);
      if (row.revoked_at === null && row.role === 'admin' && countActiveAdmins(this.d.db) <= 1) {
        throw new AppError('conflict', `key ${id} is the last active admin key; create another admin key first, then revoke this one`);
      }
      return dbRevokeKey(this.d.db, id, this.d.now());
    })();
    if (revoked) this.d.bus.accessEnded({ keyId: id });
  }

  private checkLimit(address: string): void {
    const wait = this.retryAfterS(address);
    if (wait > 0) throw new AppError('too_many_requests', `too many failed sign-ins or API keys from your address; try again in ${wait} s`);
  }

  /** Best effort: a database that cannot be written (read-only, full) must not fail reads. */
  private touch(keyId: number, now: number): void {
    const last = this.touched.get(keyId);
    if (last !== undefined && now - last < TOUCH_INTERVAL_MS) return;
    this.touched.set(keyId, now);
    try {
      touchKey(this.d.db, keyId, now);
    } catch (err) {
      this.d.log.warn('could not record last_used_at for an API key', { keyId, error: (err as Error).message });
    }
  }
}

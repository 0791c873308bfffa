// API keys and dashboard sessions. Keys are random 32-byte secrets shown once;
// only their sha256 is stored (they are high-entropy, so no slow hash is needed).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { countActiveKeys, findActiveKeyByHash, findSessionKey, insertKey, insertSession, touchKey, deleteSession, type ApiKeyRow } from '../db/keys.js';
import type { Db } from '../db/open.js';
import type { Role } from '../domain/roles.js';

export const SESSION_TTL_MS = 12 * 3600 * 1000;

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

export function authenticateKey(db: Db, key: string, now: number): ApiKeyRow | undefined {
  const row = findActiveKeyByHash(db, hashSecret(key));
  if (row) touchKey(db, row.id, now);
  return row;
}

export function createSession(db: Db, keyId: number, now: number): { token: string; expiresAt: number } {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = now + SESSION_TTL_MS;
  insertSession(db, hashSecret(token), keyId, now, expiresAt);
  return { token, expiresAt };
}

export function sessionKey(db: Db, token: string, now: number): ApiKeyRow | undefined {
  return findSessionKey(db, hashSecret(token), now);
}

export function endSession(db: Db, token: string): void {
  deleteSession(db, hashSecret(token));
}

/**
 * First start: make sure an admin key exists. LATENTWATCH_ADMIN_KEY is used
 * when set (and registered if new); otherwise a key is generated and returned
 * so that main can print it once.
 */
export function bootstrapAdmin(db: Db, configured: string | undefined, now: number): { generated?: string } {
  if (configured) {
    if (!findActiveKeyByHash(db, hashSecret(configured))) createApiKey(db, 'bootstrap admin (LATENTWATCH_ADMIN_KEY)', 'admin', now, configured);
    return {};
  }
  if (countActiveKeys(db) > 0) return {};
  return { generated: createApiKey(db, 'bootstrap admin', 'admin', now).key };
}

/** Constant-time string comparison for secrets that are not looked up by hash. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

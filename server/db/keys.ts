// api_keys and sessions. Keys and session tokens are stored as sha256 hashes.
import type { Role } from '../domain/roles.js';
import type { ApiKeyView } from '../domain/wire.js';
import type { Db } from './open.js';

/** The API lists key rows as they are stored. */
export type ApiKeyRow = ApiKeyView;

const KEY_COLUMNS = 'id, name, role, prefix, created_at, last_used_at, revoked_at';

export function insertKey(db: Db, k: { name: string; role: Role; keyHash: string; prefix: string; now: number }): number {
  return Number(
    db.prepare('INSERT INTO api_keys (name, role, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(k.name, k.role, k.keyHash, k.prefix, k.now).lastInsertRowid,
  );
}

export function countActiveKeys(db: Db): number {
  return (db.prepare('SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL').get() as { n: number }).n;
}

export function countActiveAdmins(db: Db): number {
  return (db.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL AND role = 'admin'").get() as { n: number }).n;
}

/** Revoked keys too: a revoked hash can never be registered again (key_hash is UNIQUE). */
export function findKeyByHash(db: Db, keyHash: string): ApiKeyRow | undefined {
  return db.prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = ?`).get(keyHash) as ApiKeyRow | undefined;
}

export function findActiveKeyByHash(db: Db, keyHash: string): ApiKeyRow | undefined {
  return db.prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL`).get(keyHash) as ApiKeyRow | undefined;
}

export function touchKey(db: Db, id: number, now: number): void {
  db.prepare('UPDATE api_keys SET last_used_at = ? WHERE id = ?').run(now, id);
}

export function listKeys(db: Db): ApiKeyRow[] {
  return db.prepare(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY id`).all() as ApiKeyRow[];
}

export function getKey(db: Db, id: number): ApiKeyRow | undefined {
  return db.prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = ?`).get(id) as ApiKeyRow | undefined;
}

export function revokeKey(db: Db, id: number, now: number): boolean {
  const changed = db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0;
  db.prepare('DELETE FROM sessions WHERE key_id = ?').run(id);
  return changed;
}

export function insertSession(db: Db, tokenHash: string, keyId: number, now: number, expiresAt: number): void {
  db.prepare('INSERT INTO sessions (token_hash, key_id, created_at, expires_at) VALUES (?, ?, ?, ?)').run(tokenHash, keyId, now, expiresAt);
}

export function findSessionKey(db: Db, tokenHash: string, now: number): ApiKeyRow | undefined {
  return db
    .prepare(
      `SELECT ${KEY_COLUMNS.split(', ').map((c) => `k.${c}`).join(', ')} FROM sessions s JOIN api_keys k ON k.id = s.key_id
       WHERE s.token_hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL`,
    )
    .get(tokenHash, now) as ApiKeyRow | undefined;
}

export function deleteSession(db: Db, tokenHash: string): void {
  db.prepare('DELETE FROM sessions WHERE token_hash = ?').run(tokenHash);
}

export function deleteExpiredSessions(db: Db, now: number): number {
  return db.prepare('DELETE FROM sessions WHERE expires_at <= ?').run(now).changes;
}

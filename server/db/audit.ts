// Who changed rules, thresholds, models and keys, and when.
import type { AuditEntryView } from '../domain/wire.js';
import type { Db } from './open.js';

/** As stored: `detail` is JSON text, parsed into AuditEntryView.detail by the API. */
export type AuditRow = Omit<AuditEntryView, 'detail'> & { detail: string };

export function audit(db: Db, a: { keyId: number | null; action: string; target: string; detail?: unknown; now: number }): void {
  db.prepare('INSERT INTO audit_log (at, key_id, action, target, detail) VALUES (?, ?, ?, ?, ?)')
    .run(a.now, a.keyId, a.action, a.target, JSON.stringify(a.detail ?? {}));
}

export function listAudit(db: Db, limit = 100): AuditRow[] {
  return db.prepare('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?').all(limit) as AuditRow[];
}

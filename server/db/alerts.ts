// Alert rules, alerts with their state transitions, and silences. The state
// machine's memory lives per instance (rule, source), in alert-instances.ts.
import type { AlertRule, AlertStateName, Threshold } from '../domain/alert-types.js';
import type { SilenceView } from '../domain/wire.js';
import type { Db } from './open.js';

interface RuleRow {
  id: number;
  name: string;
  channel: AlertRule['channel'];
  source: string | null;
  threshold: string;
  pending_k: number;
  pending_n: number;
  recovery: string | null;
  clear_after: number;
  renotify_seconds: number | null;
  enabled: 0 | 1;
  webhook_url: string | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

export interface StoredRule extends AlertRule {
  createdAt: number;
  updatedAt: number;
}

function toRule(r: RuleRow): StoredRule {
  return {
    id: r.id, name: r.name, channel: r.channel, source: r.source,
    threshold: JSON.parse(r.threshold) as Threshold,
    pendingK: r.pending_k, pendingN: r.pending_n,
    recovery: r.recovery === null ? null : (JSON.parse(r.recovery) as Threshold),
    clearAfter: r.clear_after, renotifySeconds: r.renotify_seconds,
    enabled: r.enabled === 1, webhookUrl: r.webhook_url,
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

function params(rule: Omit<AlertRule, 'id'>) {
  return {
    name: rule.name, channel: rule.channel, source: rule.source, threshold: JSON.stringify(rule.threshold),
    pending_k: rule.pendingK, pending_n: rule.pendingN,
    recovery: rule.recovery === null ? null : JSON.stringify(rule.recovery),
    clear_after: rule.clearAfter, renotify_seconds: rule.renotifySeconds,
    enabled: rule.enabled ? 1 : 0, webhook_url: rule.webhookUrl,
  };
}

export function insertRule(db: Db, rule: Omit<AlertRule, 'id'>, now: number): number {
  return Number(
    db.prepare(
      `INSERT INTO alert_rules (name, channel, source, threshold, pending_k, pending_n, recovery, clear_after,
         renotify_seconds, enabled, webhook_url, created_at, updated_at)
       VALUES (@name, @channel, @source, @threshold, @pending_k, @pending_n, @recovery, @clear_after,
         @renotify_seconds, @enabled, @webhook_url, @now, @now)`,
    ).run({ ...params(rule), now }).lastInsertRowid,
  );
}

export function updateRule(db: Db, id: number, rule: Omit<AlertRule, 'id'>, now: number): void {
  db.prepare(
    `UPDATE alert_rules SET name = @name, channel = @channel, source = @source, threshold = @threshold,
       pending_k = @pending_k, pending_n = @pending_n, recovery = @recovery, clear_after = @clear_after,
       renotify_seconds = @renotify_seconds, enabled = @enabled, webhook_url = @webhook_url,
       updated_at = @now WHERE id = @id AND deleted_at IS NULL`,
  ).run({ ...params(rule), now, id });
}

export function getRule(db: Db, id: number): StoredRule | undefined {
  const row = db.prepare('SELECT * FROM alert_rules WHERE id = ? AND deleted_at IS NULL').get(id) as RuleRow | undefined;
  return row && toRule(row);
}

export function listRules(db: Db): StoredRule[] {
  return (db.prepare('SELECT * FROM alert_rules WHERE deleted_at IS NULL ORDER BY id').all() as RuleRow[]).map(toRule);
}

export function deleteRule(db: Db, id: number, now: number): boolean {
  return db.prepare('UPDATE alert_rules SET deleted_at = ?, enabled = 0 WHERE id = ? AND deleted_at IS NULL').run(now, id).changes > 0;
}

export interface AlertRow {
  id: number;
  rule_id: number;
  /** The instance's source; null only for old alerts whose images were gone when sources were added. */
  source: string | null;
  state: AlertStateName;
  started_at: number;
  updated_at: number;
  first_image_id: number | null;
  last_image_id: number | null;
  value: number | null;
  acked_by: number | null;
  acked_at: number | null;
}

/** The instance's current episode: the latest alert of (rule, source) that has not resolved or gone back to normal. */
export function openAlert(db: Db, ruleId: number, source: string): AlertRow | undefined {
  return db.prepare("SELECT * FROM alerts WHERE rule_id = ? AND source = ? AND state IN ('pending', 'firing') ORDER BY id DESC LIMIT 1").get(ruleId, source) as AlertRow | undefined;
}

/** The open episodes of every instance of a rule, oldest first. */
export function openAlertsOfRule(db: Db, ruleId: number): AlertRow[] {
  return db.prepare("SELECT * FROM alerts WHERE rule_id = ? AND state IN ('pending', 'firing') ORDER BY id").all(ruleId) as AlertRow[];
}

/** Every open episode of a rule not deleted, with its rule's name, oldest first. */
export function openAlerts(db: Db): (AlertRow & { rule_name: string })[] {
  return db.prepare(
    `SELECT a.*, r.name AS rule_name FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
     WHERE a.state IN ('pending', 'firing') AND r.deleted_at IS NULL ORDER BY a.id`,
  ).all() as (AlertRow & { rule_name: string })[];
}

export function insertAlert(db: Db, a: { ruleId: number; source: string; state: AlertStateName; imageId: number; value: number; now: number }): number {
  return Number(
    db.prepare('INSERT INTO alerts (rule_id, source, state, started_at, updated_at, first_image_id, last_image_id, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(a.ruleId, a.source, a.state, a.now, a.now, a.imageId, a.imageId, a.value).lastInsertRowid,
  );
}

export function updateAlertState(db: Db, id: number, a: { state: AlertStateName; imageId: number; value: number; now: number }): void {
  db.prepare('UPDATE alerts SET state = ?, last_image_id = ?, value = ?, updated_at = ? WHERE id = ?').run(a.state, a.imageId, a.value, a.now, id);
}

/** Closes an episode without an image: its rule was reset or deleted. */
export function closeAlert(db: Db, id: number, state: AlertStateName, now: number): void {
  db.prepare('UPDATE alerts SET state = ?, updated_at = ? WHERE id = ?').run(state, now, id);
}

/** imageId and value are null for a change no image caused (a rule reset or deleted). */
export function insertTransition(db: Db, t: { alertId: number; from: AlertStateName; to: AlertStateName; imageId: number | null; value: number | null; notified: boolean; now: number }): void {
  db.prepare('INSERT INTO alert_transitions (alert_id, from_state, to_state, at, image_id, value, notified) VALUES (?, ?, ?, ?, ?, ?, ?)')
    .run(t.alertId, t.from, t.to, t.now, t.imageId, t.value, t.notified ? 1 : 0);
}

export function getAlert(db: Db, id: number): AlertRow | undefined {
  return db.prepare('SELECT * FROM alerts WHERE id = ?').get(id) as AlertRow | undefined;
}

export function listAlerts(db: Db, f: { state?: AlertStateName; ruleId?: number; source?: string; before?: number; limit: number }): AlertRow[] {
  const where: string[] = [];
  const p: Record<string, unknown> = { limit: f.limit };
  if (f.state) { where.push('state = @state'); p.state = f.state; }
  if (f.ruleId !== undefined) { where.push('rule_id = @ruleId'); p.ruleId = f.ruleId; }
  if (f.source !== undefined) { where.push('source = @source'); p.source = f.source; }
  if (f.before !== undefined) { where.push('id < @before'); p.before = f.before; }
  return db.prepare(`SELECT * FROM alerts ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`).all(p) as AlertRow[];
}

export function transitionsOf(db: Db, alertId: number): { from_state: string; to_state: string; at: number; image_id: number | null; value: number | null; notified: number }[] {
  return db.prepare('SELECT from_state, to_state, at, image_id, value, notified FROM alert_transitions WHERE alert_id = ? ORDER BY id').all(alertId) as never;
}

export function ackAlert(db: Db, id: number, keyId: number, now: number): boolean {
  return db.prepare('UPDATE alerts SET acked_by = ?, acked_at = ? WHERE id = ? AND acked_at IS NULL').run(keyId, now, id).changes > 0;
}

export type SilenceRow = SilenceView;

export function insertSilence(db: Db, s: { ruleId: number | null; source: string | null; startsAt: number; endsAt: number; reason: string; createdBy: number | null; now: number }): number {
  return Number(
    db.prepare('INSERT INTO silences (rule_id, source, starts_at, ends_at, reason, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(s.ruleId, s.source, s.startsAt, s.endsAt, s.reason, s.createdBy, s.now).lastInsertRowid,
  );
}

export function listSilences(db: Db, now: number): SilenceRow[] {
  return db.prepare('SELECT * FROM silences WHERE ends_at > ? ORDER BY starts_at').all(now) as SilenceRow[];
}

export function deleteSilence(db: Db, id: number): boolean {
  return db.prepare('DELETE FROM silences WHERE id = ?').run(id).changes > 0;
}

/** Whether a silence covers the instance (rule, source) now: one of that rule or of every rule, for that source or every source. */
export function isSilenced(db: Db, ruleId: number, source: string | null, now: number): boolean {
  return db.prepare(
    'SELECT 1 FROM silences WHERE (rule_id = ? OR rule_id IS NULL) AND (source = ? OR source IS NULL) AND starts_at <= ? AND ends_at > ? LIMIT 1',
  ).get(ruleId, source, now, now) !== undefined;
}

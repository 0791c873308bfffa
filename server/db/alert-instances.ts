// Alert instances: the state machine's memory for one (rule, source) pair. A
// rule for one source has one instance; a rule for every source gets one per
// source it has seen an image from (docs/architecture.md, Alerts).
import type { AlertStateName, RuleState } from '../domain/alert-types.js';
import type { Db } from './open.js';

interface InstanceRow {
  rule_id: number;
  source: string;
  state: AlertStateName;
  breaches: string;
  clean_streak: number;
  last_notified_at: number | null;
}

export interface InstanceSummary {
  ruleId: number;
  source: string;
  state: AlertStateName;
}

export function getInstanceState(db: Db, ruleId: number, source: string): RuleState | undefined {
  const r = db.prepare('SELECT * FROM alert_instances WHERE rule_id = ? AND source = ?').get(ruleId, source) as InstanceRow | undefined;
  return r && { state: r.state, window: JSON.parse(r.breaches) as boolean[], cleanStreak: r.clean_streak, lastNotifiedAt: r.last_notified_at };
}

export function saveInstanceState(db: Db, ruleId: number, source: string, s: RuleState): void {
  db.prepare(
    `INSERT INTO alert_instances (rule_id, source, state, breaches, clean_streak, last_notified_at)
     VALUES (@ruleId, @source, @state, @breaches, @cleanStreak, @lastNotifiedAt)
     ON CONFLICT (rule_id, source) DO UPDATE SET state = excluded.state, breaches = excluded.breaches,
       clean_streak = excluded.clean_streak, last_notified_at = excluded.last_notified_at`,
  ).run({ ruleId, source, state: s.state, breaches: JSON.stringify(s.window), cleanStreak: s.cleanStreak, lastNotifiedAt: s.lastNotifiedAt });
}

/** Forgets every instance of a rule: it was reset (re-targeted, disabled) or deleted. */
export function deleteInstances(db: Db, ruleId: number): void {
  db.prepare('DELETE FROM alert_instances WHERE rule_id = ?').run(ruleId);
}

/** The instances of the rules not deleted, by rule and source. */
export function listInstances(db: Db): InstanceSummary[] {
  return db.prepare(
    `SELECT i.rule_id AS ruleId, i.source, i.state FROM alert_instances i
     JOIN alert_rules r ON r.id = i.rule_id WHERE r.deleted_at IS NULL ORDER BY i.rule_id, i.source`,
  ).all() as InstanceSummary[];
}

/** How many instances of enabled rules are in each state, per source. */
export function countInstances(db: Db): { source: string; state: AlertStateName; n: number }[] {
  return db.prepare(
    `SELECT i.source, i.state, COUNT(*) AS n FROM alert_instances i
     JOIN alert_rules r ON r.id = i.rule_id WHERE r.deleted_at IS NULL AND r.enabled = 1
     GROUP BY i.source, i.state`,
  ).all() as { source: string; state: AlertStateName; n: number }[];
}

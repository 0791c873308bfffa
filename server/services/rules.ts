// Alert rules, silences and acknowledgements: the business rules behind
// /api/rules, /api/silences and /api/alerts, kept out of the routes so that
// the CLI or a queue worker applying the same change behaves the same way.
//
// A rule keeps one state machine per source (an instance). A rule change
// that resets the rule's memory (it now watches another channel, source or
// window, or it was disabled) and a delete both forget every instance and
// close their open alerts in the same transaction, so no alert is left firing
// that no image can ever resolve. Events are recorded inside the transaction and
// broadcast, with any webhook, only after it commits.
import { observe, step, type ResetReason } from '../domain/alert-machine.js';
import { INITIAL_RULE_STATE, type AlertRule, type AlertStateName, type RuleState } from '../domain/alert-types.js';
import { AppError } from '../domain/errors.js';
import { webhookUrlProblem } from '../domain/net-policy.js';
import type { AlertView, RuleView, SilenceView } from '../domain/wire.js';
import { listInstances, type InstanceSummary } from '../db/alert-instances.js';
import * as store from '../db/alerts.js';
import { listImages } from '../db/images.js';
import type { Db } from '../db/open.js';
import { alertView, calibrationThreshold, channelValue, resetInstances, type AlertChange } from './alerting.js';
import type { EventBus } from './event-bus.js';
import type { ModelRegistry } from './model-registry.js';
import type { WebhookSender } from './webhooks.js';

export interface RulesDeps {
  db: Db;
  bus: EventBus;
  webhooks: WebhookSender;
  registry: ModelRegistry;
  now: () => number;
  /** config.webhookAllowPrivate */
  allowPrivateWebhooks: boolean;
}

export type RuleInput = Omit<AlertRule, 'id'>;

const bad = (msg: string) => new AppError('bad_request', msg);

/** Most urgent first: what a rule's own state shows when its instances differ. */
const URGENCY: AlertStateName[] = ['firing', 'pending', 'resolved', 'normal'];

/** A rule with its instances (all of them: they are filtered to this rule). */
export function ruleView(r: store.StoredRule, all: InstanceSummary[]): RuleView {
  const instances = all.filter((i) => i.ruleId === r.id).map(({ source, state }) => ({ source, state }));
  const state = URGENCY.find((u) => instances.some((i) => i.state === u)) ?? 'normal';
  return { ...r, state, instances };
}

function viewOf(d: RulesDeps, r: store.StoredRule): RuleView {
  return ruleView(r, listInstances(d.db));
}

/** Checks that span fields, and the webhook target against the address policy. */
function checkRule(rule: RuleInput, allowPrivateWebhooks: boolean): void {
  if (rule.pendingK > rule.pendingN) throw bad(`pendingK (${rule.pendingK}) cannot exceed pendingN (${rule.pendingN})`);
  if (rule.webhookUrl !== null) {
    const problem = webhookUrlProblem(rule.webhookUrl, allowPrivateWebhooks);
    if (problem !== null) throw bad(problem);
  }
}

/** Why a change makes the rule forget its state; null when its memory still applies. */
function resetReason(before: RuleInput, after: RuleInput): ResetReason | null {
  if (before.enabled && !after.enabled) return 'disabled';
  if (after.channel !== before.channel || after.source !== before.source || after.pendingN !== before.pendingN) return 'retargeted';
  return null;
}

/** Broadcasts and sends what a committed transaction recorded. */
function publish(d: RulesDeps, changes: (AlertChange | null)[]): void {
  for (const c of changes) {
    if (!c) continue;
    d.bus.broadcast(c.event);
    if (c.webhook) d.webhooks.enqueue(c.webhook.url, c.webhook.body);
  }
}

export function findRule(d: RulesDeps, id: number): store.StoredRule {
  const rule = store.getRule(d.db, id);
  if (!rule) throw new AppError('not_found', `no rule ${id}`);
  return rule;
}

export function listRules(d: RulesDeps): RuleView[] {
  const instances = listInstances(d.db);
  return store.listRules(d.db).map((r) => ruleView(r, instances));
}

export function getRule(d: RulesDeps, id: number): RuleView {
  return viewOf(d, findRule(d, id));
}

export function createRule(d: RulesDeps, rule: RuleInput): RuleView {
  checkRule(rule, d.allowPrivateWebhooks);
  const id = store.insertRule(d.db, rule, d.now());
  return viewOf(d, store.getRule(d.db, id)!);
}

/** Applies `change` to the stored rule; `change` gets the rule as it is now, inside the transaction. */
export function updateRule(d: RulesDeps, id: number, change: (current: store.StoredRule) => RuleInput): { before: RuleView; after: RuleView } {
  const { before, after, closed } = d.db.transaction(() => {
    const current = findRule(d, id);
    const next = change(current);
    checkRule(next, d.allowPrivateWebhooks);
    const now = d.now();
    const before = viewOf(d, current);
    const reason = resetReason(current, next);
    const closed = reason === null ? [] : resetInstances(d.db, d.bus, current, reason, now);
    store.updateRule(d.db, id, next, now);
    return { before, after: viewOf(d, store.getRule(d.db, id)!), closed };
  })();
  publish(d, closed);
  return { before, after };
}

/** Soft delete (alerts keep pointing at the rule), closing its instances' open alerts. */
export function deleteRule(d: RulesDeps, id: number): RuleView {
  const { rule, closed } = d.db.transaction(() => {
    const rule = viewOf(d, findRule(d, id));
    const now = d.now();
    const closed = resetInstances(d.db, d.bus, rule, 'deleted', now);
    store.deleteRule(d.db, id, now);
    return { rule, closed };
  })();
  publish(d, closed);
  return rule;
}

export interface Preview {
  images: number;
  breaches: number;
  firings: number;
  finalState: AlertStateName;
}

/**
 * How the rule would have behaved over the last `last` stored images (oldest
 * first), one state machine per source as when it runs. Changes nothing.
 * finalState is the most urgent final state among the sources.
 */
export async function previewRule(d: RulesDeps, input: RuleInput, last: number): Promise<Preview> {
  if (input.pendingK > input.pendingN) throw bad(`pendingK (${input.pendingK}) cannot exceed pendingN (${input.pendingN})`);
  const rule: AlertRule = { id: 0, ...input };
  const active = await d.registry.active();
  if (!active) throw new AppError('no_active_model', 'no active model to resolve thresholds against');
  const images = listImages(d.db, { source: rule.source ?? undefined, limit: last }).reverse();
  const resolve = calibrationThreshold(active.detector.meta.calibration);
  const states = new Map<string, RuleState>();
  let breaches = 0;
  let firings = 0;
  for (const img of images) {
    const obs = observe(rule, channelValue(img, rule.channel), resolve);
    if (obs.breach) breaches++;
    const s = step(rule, states.get(img.source) ?? INITIAL_RULE_STATE, obs, img.received_at, false);
    if (s.transition?.to === 'firing') firings++;
    states.set(img.source, s.next);
  }
  const finals = [...states.values()].map((s) => s.state);
  return { images: images.length, breaches, firings, finalState: URGENCY.find((u) => finals.includes(u)) ?? 'normal' };
}

export function activeSilences(d: RulesDeps): SilenceView[] {
  return store.listSilences(d.db, d.now());
}

export interface SilenceInput {
  ruleId: number | null;
  /** null: every source */
  source: string | null;
  startsAt: number;
  endsAt: number;
  reason: string;
  createdBy: number | null;
}

export function createSilence(d: RulesDeps, s: SilenceInput): { id: number; ruleId: number | null; source: string | null; startsAt: number; endsAt: number; reason: string } {
  if (s.ruleId !== null) {
    const rule = findRule(d, s.ruleId);
    if (s.source !== null && rule.source !== null && rule.source !== s.source) {
      throw bad(`rule ${rule.id} watches only source ${JSON.stringify(rule.source)}, so a silence of it for ${JSON.stringify(s.source)} would never apply`);
    }
  }
  if (s.endsAt <= s.startsAt) throw bad('give minutes, or an endsAt after startsAt');
  const id = store.insertSilence(d.db, { ...s, now: d.now() });
  return { id, ruleId: s.ruleId, source: s.source, startsAt: s.startsAt, endsAt: s.endsAt, reason: s.reason };
}

export function deleteSilence(d: RulesDeps, id: number): void {
  if (!store.deleteSilence(d.db, id)) throw new AppError('not_found', `no silence ${id}`);
}

export function alertPage(d: RulesDeps, f: { state?: AlertStateName; ruleId?: number; source?: string; before?: number; limit: number }): { alerts: AlertView[]; nextCursor: number | null } {
  const rows = store.listAlerts(d.db, f);
  return { alerts: rows.map(alertView), nextCursor: rows.length === f.limit ? rows[rows.length - 1].id : null };
}

export function alertDetail(d: RulesDeps, id: number): AlertView & { transitions: ReturnType<typeof store.transitionsOf> } {
  const a = store.getAlert(d.db, id);
  if (!a) throw new AppError('not_found', `no alert ${id}`);
  return { ...alertView(a), transitions: store.transitionsOf(d.db, a.id) };
}

/** Acknowledges once; the first acknowledgement is recorded and broadcast, later ones change nothing. */
export function acknowledgeAlert(d: RulesDeps, id: number, keyId: number): { alert: AlertView; changed: boolean } {
  const { alert, event } = d.db.transaction(() => {
    if (!store.getAlert(d.db, id)) throw new AppError('not_found', `no alert ${id}`);
    const changed = store.ackAlert(d.db, id, keyId, d.now());
    const alert = alertView(store.getAlert(d.db, id)!);
    const event = changed ? d.bus.record('alert.changed', { alert, acknowledged: true, message: `${alert.source ?? 'unknown source'}: alert ${id} acknowledged` }) : null;
    return { alert, event };
  })();
  if (event) d.bus.broadcast(event);
  return { alert, changed: event !== null };
}

// /api/rules, /api/silences and /api/alerts: alerting configuration and
// history. Thin: parse, call services/rules.ts, audit, answer.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { audit } from '../../db/audit.js';
import type { AlertRule, AlertStateName, Threshold } from '../../domain/alert-types.js';
import { AppError } from '../../domain/errors.js';
import * as rules from '../../services/rules.js';
import { principalOf, requireRole } from '../auth.js';
import { boolParam, idParam, intParam, numParam, objectBody, strParam, timeParam } from '../params.js';

const CHANNELS = ['kl', 'recon', 'elbo', 'combined'] as const;
const bad = (msg: string) => new AppError('bad_request', msg);

function thresholdFrom(v: unknown, name: string): Threshold {
  if (typeof v !== 'object' || v === null) throw bad(`${name} must be {"kind": "absolute", "value": X} or {"kind": "rate", "rate": R}`);
  const t = v as Record<string, unknown>;
  if (t.kind === 'absolute') return { kind: 'absolute', value: numParam(t.value, `${name}.value`) };
  if (t.kind === 'rate') return { kind: 'rate', rate: numParam(t.rate, `${name}.rate`, { min: 0, max: 0.5, exclusiveMin: true }) };
  throw bad(`${name}.kind must be "absolute" or "rate"`);
}

/**
 * A rule from a request body; `base` fills what a partial update leaves out.
 * Only the shape is checked here; services/rules.ts checks the rest.
 */
export function ruleFrom(body: Record<string, unknown>, base?: AlertRule): Omit<AlertRule, 'id'> {
  const has = (k: string) => body[k] !== undefined;
  const channel = has('channel') ? body.channel : base?.channel;
  if (!CHANNELS.includes(channel as never)) throw bad(`channel must be one of ${CHANNELS.join(', ')}`);
  const rule: Omit<AlertRule, 'id'> = {
    name: has('name') || !base ? strParam(body.name, 'name', { max: 100 })! : base.name,
    channel: channel as AlertRule['channel'],
    source: has('source') ? strParam(body.source, 'source', { max: 100, optional: true }) ?? null : base?.source ?? null,
    threshold: has('threshold') || !base ? thresholdFrom(body.threshold, 'threshold') : base.threshold,
    pendingK: has('pendingK') ? intParam(body.pendingK, 'pendingK', { min: 1, max: 1000 }) : base?.pendingK ?? 1,
    pendingN: has('pendingN') ? intParam(body.pendingN, 'pendingN', { min: 1, max: 1000 }) : base?.pendingN ?? 1,
    recovery: has('recovery') ? (body.recovery === null ? null : thresholdFrom(body.recovery, 'recovery')) : base?.recovery ?? null,
    clearAfter: has('clearAfter') ? intParam(body.clearAfter, 'clearAfter', { min: 1, max: 10_000 }) : base?.clearAfter ?? 1,
    renotifySeconds: has('renotifySeconds') ? (body.renotifySeconds === null ? null : intParam(body.renotifySeconds, 'renotifySeconds', { min: 1 })) : base?.renotifySeconds ?? null,
    enabled: boolParam(body.enabled, 'enabled', base?.enabled ?? true),
    webhookUrl: has('webhookUrl') ? strParam(body.webhookUrl, 'webhookUrl', { max: 2000, optional: true }) ?? null : base?.webhookUrl ?? null,
  };
  return rule;
}

const rulesDeps = (ctx: Context): rules.RulesDeps => ({
  db: ctx.db, bus: ctx.bus, webhooks: ctx.webhooks, registry: ctx.registry,
  now: () => ctx.clock.now(), allowPrivateWebhooks: ctx.config.webhookAllowPrivate,
});

export function rulesRouter(ctx: Context): Router {
  const r = Router();
  const d = rulesDeps(ctx);

  r.get('/', requireRole('viewer'), (_req, res) => {
    res.json({ rules: rules.listRules(d) });
  });

  r.post('/', requireRole('operator'), (req, res) => {
    const input = ruleFrom(objectBody(req.body));
    const rule = rules.createRule(d, input);
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'rule.create', target: `rule:${rule.id}`, detail: input, now: d.now() });
    res.status(201).json(rule);
  });

  /** How the rule would have behaved over the last N stored images (oldest first). */
  r.post('/preview', requireRole('viewer'), async (req, res) => {
    const body = objectBody(req.body);
    const input = ruleFrom(body);
    const last = intParam(body.last, 'last', { min: 1, max: 5000, fallback: 200 });
    res.json(await rules.previewRule(d, input, last));
  });

  r.get('/:id', requireRole('viewer'), (req, res) => {
    res.json(rules.getRule(d, idParam(req.params.id, 'rule id')));
  });

  r.put('/:id', requireRole('operator'), (req, res) => {
    const body = objectBody(req.body);
    let after: Omit<AlertRule, 'id'> | undefined;
    const { before, after: view } = rules.updateRule(d, idParam(req.params.id, 'rule id'), (current) => (after = ruleFrom(body, current)));
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'rule.update', target: `rule:${view.id}`, detail: { before, after }, now: d.now() });
    res.json(view);
  });

  r.delete('/:id', requireRole('operator'), (req, res) => {
    const rule = rules.deleteRule(d, idParam(req.params.id, 'rule id'));
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'rule.delete', target: `rule:${rule.id}`, now: d.now() });
    res.status(204).end();
  });

  return r;
}

export function silencesRouter(ctx: Context): Router {
  const r = Router();
  const d = rulesDeps(ctx);
  r.get('/', requireRole('viewer'), (_req, res) => {
    res.json({ silences: rules.activeSilences(d) });
  });
  r.post('/', requireRole('operator'), (req, res) => {
    const body = objectBody(req.body);
    const now = d.now();
    const ruleId = body.ruleId === undefined || body.ruleId === null ? null : idParam(body.ruleId, 'rule id');
    const source = strParam(body.source, 'source', { max: 100, optional: true }) ?? null;
    const startsAt = timeParam(body.startsAt, 'startsAt') ?? now;
    const endsAt = body.minutes !== undefined ? startsAt + intParam(body.minutes, 'minutes', { min: 1, max: 525_600 }) * 60_000 : timeParam(body.endsAt, 'endsAt');
    if (endsAt === undefined) throw bad('give minutes, or an endsAt after startsAt');
    const reason = strParam(body.reason, 'reason', { max: 500, optional: true }) ?? '';
    const who = principalOf(req).keyId;
    const silence = rules.createSilence(d, { ruleId, source, startsAt, endsAt, reason, createdBy: who });
    audit(ctx.db, { keyId: who, action: 'silence.create', target: `silence:${silence.id}`, detail: { ruleId, source, startsAt, endsAt, reason }, now });
    res.status(201).json(silence);
  });
  r.delete('/:id', requireRole('operator'), (req, res) => {
    const id = idParam(req.params.id, 'silence id');
    rules.deleteSilence(d, id);
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'silence.delete', target: `silence:${id}`, now: d.now() });
    res.status(204).end();
  });
  return r;
}

export function alertsRouter(ctx: Context): Router {
  const r = Router();
  const d = rulesDeps(ctx);
  r.get('/', requireRole('viewer'), (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const state = q.state as AlertStateName | undefined;
    if (state !== undefined && !['pending', 'firing', 'resolved', 'normal'].includes(state)) throw bad('state must be pending, firing, resolved or normal');
    res.json(rules.alertPage(d, {
      state,
      limit: intParam(q.limit, 'limit', { min: 1, max: 500, fallback: 50 }),
      ruleId: q.rule === undefined ? undefined : intParam(q.rule, 'rule', { min: 1 }),
      source: strParam(q.source, 'source', { max: 100, optional: true }),
      before: q.cursor === undefined ? undefined : intParam(q.cursor, 'cursor', { min: 1 }),
    }));
  });
  r.get('/:id', requireRole('viewer'), (req, res) => {
    res.json(rules.alertDetail(d, idParam(req.params.id, 'alert id')));
  });
  r.post('/:id/ack', requireRole('operator'), (req, res) => {
    const id = idParam(req.params.id, 'alert id');
    const who = principalOf(req).keyId;
    const { alert, changed } = rules.acknowledgeAlert(d, id, who);
    if (changed) audit(ctx.db, { keyId: who, action: 'alert.ack', target: `alert:${id}`, now: d.now() });
    res.json(alert);
  });
  return r;
}

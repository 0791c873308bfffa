// /api/rules, /api/silences and /api/alerts: alerting configuration and history.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { ackAlert, deleteRule, deleteSilence, getAlert, getRule, insertRule, insertSilence, listAlerts, listRules, listSilences, transitionsOf, updateRule, type StoredRule } from '../../db/alerts.js';
import { audit } from '../../db/audit.js';
import { listImages } from '../../db/images.js';
import { observe, step } from '../../domain/alert-machine.js';
import { INITIAL_RULE_STATE, type AlertRule, type AlertStateName, type Threshold } from '../../domain/alert-types.js';
import { AppError } from '../../domain/errors.js';
import type { RuleView } from '../../domain/wire.js';
import { alertView, calibrationThreshold, channelValue } from '../../services/alerting.js';
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

/** A rule from a request body; `base` fills what a partial update leaves out. */
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
  if (rule.pendingK > rule.pendingN) throw bad(`pendingK (${rule.pendingK}) cannot exceed pendingN (${rule.pendingN})`);
  if (rule.webhookUrl !== null) {
    let url: URL;
    try {
      url = new URL(rule.webhookUrl);
    } catch {
      throw bad('webhookUrl must be an absolute http(s) URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('webhookUrl must be an absolute http(s) URL');
  }
  return rule;
}

function ruleView(r: StoredRule): RuleView {
  const { state, ...rest } = r;
  return { ...rest, state: state.state };
}

export function rulesRouter(ctx: Context): Router {
  const r = Router();
  const now = () => ctx.clock.now();
  const find = (id: unknown) => {
    const rule = getRule(ctx.db, idParam(id, 'rule id'));
    if (!rule) throw new AppError('not_found', `no rule ${String(id)}`);
    return rule;
  };

  r.get('/', requireRole('viewer'), (_req, res) => {
    res.json({ rules: listRules(ctx.db).map(ruleView) });
  });

  r.post('/', requireRole('operator'), (req, res) => {
    const rule = ruleFrom(objectBody(req.body));
    const id = insertRule(ctx.db, rule, INITIAL_RULE_STATE, now());
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'rule.create', target: `rule:${id}`, detail: rule, now: now() });
    res.status(201).json(ruleView(getRule(ctx.db, id)!));
  });

  /** How the rule would have behaved over the last N stored images (oldest first). */
  r.post('/preview', requireRole('viewer'), async (req, res) => {
    const body = objectBody(req.body);
    const rule = { id: 0, ...ruleFrom(body) };
    const last = intParam(body.last, 'last', { min: 1, max: 5000, fallback: 200 });
    const active = await ctx.registry.active();
    if (!active) throw new AppError('no_active_model', 'no active model to resolve thresholds against');
    const images = listImages(ctx.db, { source: rule.source ?? undefined, limit: last }).reverse();
    const resolve = calibrationThreshold(active.detector.meta.calibration);
    let state = INITIAL_RULE_STATE;
    let breaches = 0;
    let firings = 0;
    for (const img of images) {
      const obs = observe(rule, channelValue(img, rule.channel), resolve);
      if (obs.breach) breaches++;
      const s = step(rule, state, obs, img.received_at, false);
      if (s.transition?.to === 'firing') firings++;
      state = s.next;
    }
    res.json({ images: images.length, breaches, firings, finalState: state.state });
  });

  r.get('/:id', requireRole('viewer'), (req, res) => {
    res.json(ruleView(find(req.params.id)));
  });

  r.put('/:id', requireRole('operator'), (req, res) => {
    const current = find(req.params.id);
    const rule = ruleFrom(objectBody(req.body), current);
    // Changing what a rule watches starts its memory afresh.
    const reset = rule.channel !== current.channel || rule.source !== current.source || rule.pendingN !== current.pendingN;
    updateRule(ctx.db, current.id, rule, reset ? INITIAL_RULE_STATE : current.state, now());
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'rule.update', target: `rule:${current.id}`, detail: { before: ruleView(current), after: rule }, now: now() });
    res.json(ruleView(getRule(ctx.db, current.id)!));
  });

  r.delete('/:id', requireRole('operator'), (req, res) => {
    const rule = find(req.params.id);
    deleteRule(ctx.db, rule.id, now());
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'rule.delete', target: `rule:${rule.id}`, now: now() });
    res.status(204).end();
  });

  return r;
}

export function silencesRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('viewer'), (_req, res) => {
    res.json({ silences: listSilences(ctx.db, ctx.clock.now()) });
  });
  r.post('/', requireRole('operator'), (req, res) => {
    const body = objectBody(req.body);
    const now = ctx.clock.now();
    const ruleId = body.ruleId === undefined || body.ruleId === null ? null : idParam(body.ruleId, 'rule id');
    if (ruleId !== null && !getRule(ctx.db, ruleId)) throw new AppError('not_found', `no rule ${ruleId}`);
    const startsAt = timeParam(body.startsAt, 'startsAt') ?? now;
    const endsAt = body.minutes !== undefined ? startsAt + intParam(body.minutes, 'minutes', { min: 1, max: 525_600 }) * 60_000 : timeParam(body.endsAt, 'endsAt');
    if (endsAt === undefined || endsAt <= startsAt) throw bad('give minutes, or an endsAt after startsAt');
    const reason = strParam(body.reason, 'reason', { max: 500, optional: true }) ?? '';
    const who = principalOf(req).keyId;
    const id = insertSilence(ctx.db, { ruleId, startsAt, endsAt, reason, createdBy: who, now });
    audit(ctx.db, { keyId: who, action: 'silence.create', target: `silence:${id}`, detail: { ruleId, startsAt, endsAt, reason }, now });
    res.status(201).json({ id, ruleId, startsAt, endsAt, reason });
  });
  r.delete('/:id', requireRole('operator'), (req, res) => {
    const id = idParam(req.params.id, 'silence id');
    if (!deleteSilence(ctx.db, id)) throw new AppError('not_found', `no silence ${id}`);
    audit(ctx.db, { keyId: principalOf(req).keyId, action: 'silence.delete', target: `silence:${id}`, now: ctx.clock.now() });
    res.status(204).end();
  });
  return r;
}

export function alertsRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('viewer'), (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const state = q.state as AlertStateName | undefined;
    if (state !== undefined && !['pending', 'firing', 'resolved', 'normal'].includes(state)) throw bad('state must be pending, firing, resolved or normal');
    const limit = intParam(q.limit, 'limit', { min: 1, max: 500, fallback: 50 });
    const rows = listAlerts(ctx.db, {
      state, limit,
      ruleId: q.rule === undefined ? undefined : intParam(q.rule, 'rule', { min: 1 }),
      before: q.cursor === undefined ? undefined : intParam(q.cursor, 'cursor', { min: 1 }),
    });
    res.json({ alerts: rows.map(alertView), nextCursor: rows.length === limit ? rows[rows.length - 1].id : null });
  });
  r.get('/:id', requireRole('viewer'), (req, res) => {
    const a = getAlert(ctx.db, idParam(req.params.id, 'alert id'));
    if (!a) throw new AppError('not_found', `no alert ${req.params.id}`);
    res.json({ ...alertView(a), transitions: transitionsOf(ctx.db, a.id) });
  });
  r.post('/:id/ack', requireRole('operator'), (req, res) => {
    const id = idParam(req.params.id, 'alert id');
    const a = getAlert(ctx.db, id);
    if (!a) throw new AppError('not_found', `no alert ${id}`);
    const who = principalOf(req).keyId;
    const now = ctx.clock.now();
    if (ackAlert(ctx.db, id, who, now)) {
      audit(ctx.db, { keyId: who, action: 'alert.ack', target: `alert:${id}`, now });
      ctx.bus.publish('alert.changed', { alert: alertView(getAlert(ctx.db, id)!), acknowledged: true, message: `alert ${id} acknowledged` });
    }
    res.json(alertView(getAlert(ctx.db, id)!));
  });
  return r;
}

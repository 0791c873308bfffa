// Runs every matching alert rule over a freshly stored image, inside the same
// transaction, so that an image and the alerts it caused are committed
// together. Events are recorded there too; broadcasting and webhooks wait
// until after the commit.
//
// Each rule is evaluated per instance, the pair (rule, image source): a rule
// for every source keeps one state machine per source, so one camera's clean
// images never resolve another camera's alert. Alerts, silences and
// acknowledgements belong to an instance.
import { thresholdAt } from '../domain/calibration.js';
import { describeReset, describeTransition, observe, reset, step, type ResetReason } from '../domain/alert-machine.js';
import { INITIAL_RULE_STATE, type AlertRule, type RuleChannel } from '../domain/alert-types.js';
import type { Calibration } from '../domain/types.js';
import type { AlertChangedPayload, AlertView } from '../domain/wire.js';
import { deleteInstances, getInstanceState, saveInstanceState } from '../db/alert-instances.js';
import { closeAlert, getAlert, insertAlert, insertTransition, isSilenced, listRules, openAlert, openAlertsOfRule, updateAlertState, type AlertRow } from '../db/alerts.js';
import type { ImageRow } from '../db/images.js';
import type { Db } from '../db/open.js';
import type { BusEvent, EventBus } from './event-bus.js';

export interface AlertChange {
  event: BusEvent;
  webhook: { url: string; body: unknown } | null;
}

/** The raw value an image has on a rule's channel (the p-value for 'combined'). */
export function channelValue(image: Pick<ImageRow, 'kl' | 'recon' | 'elbo' | 'p_combined'>, channel: RuleChannel): number {
  return channel === 'combined' ? image.p_combined : image[channel];
}

/** A false-alarm rate on the calibration set, as a raw threshold ('combined' thresholds are p-values). */
export function calibrationThreshold(cal: Calibration) {
  return (channel: RuleChannel, rate: number) => (channel === 'combined' ? rate : thresholdAt(cal.channels[channel].scores, rate));
}

export function alertView(a: AlertRow): AlertView {
  return {
    id: a.id, ruleId: a.rule_id, source: a.source, state: a.state, startedAt: a.started_at, updatedAt: a.updated_at,
    firstImageId: a.first_image_id, lastImageId: a.last_image_id, value: a.value,
    acknowledged: a.acked_at !== null ? { by: a.acked_by, at: a.acked_at } : null,
  };
}

export function evaluateRules(db: Db, bus: EventBus, image: ImageRow, cal: Calibration, now: number): AlertChange[] {
  const changes: AlertChange[] = [];
  const resolve = calibrationThreshold(cal);
  const source = image.source;
  for (const rule of listRules(db)) {
    if (!rule.enabled || (rule.source !== null && rule.source !== source)) continue;
    const value = channelValue(image, rule.channel);
    const state = getInstanceState(db, rule.id, source) ?? INITIAL_RULE_STATE;
    const s = step(rule, state, observe(rule, value, resolve), now, isSilenced(db, rule.id, source, now));
    saveInstanceState(db, rule.id, source, s.next);
    if (!s.transition && !s.renotify) continue;

    let alert = openAlert(db, rule.id, source);
    if (s.transition) {
      const { from, to } = s.transition;
      if (!alert || from === 'normal' || from === 'resolved') {
        alert = getAlert(db, insertAlert(db, { ruleId: rule.id, source, state: to, imageId: image.id, value, now }))!;
      } else {
        updateAlertState(db, alert.id, { state: to, imageId: image.id, value, now });
        alert = getAlert(db, alert.id)!;
      }
      insertTransition(db, { alertId: alert.id, from, to, imageId: image.id, value, notified: s.notify, now });
    }
    if (!alert) continue;
    const message = `${source}: ${s.transition ? describeTransition(rule, s.transition.from, s.transition.to) : `${rule.name} still firing`}`;
    const payload: AlertChangedPayload = {
      alert: alertView(alert), rule: ruleRef(rule),
      transition: s.transition, renotify: s.renotify, notified: s.notify, imageId: image.id, value, message,
    };
    changes.push(recordChange(bus, rule, payload, s.notify));
  }
  return changes;
}

function ruleRef(rule: AlertRule): AlertChangedPayload['rule'] {
  return { id: rule.id, name: rule.name, channel: rule.channel, source: rule.source };
}

/** Records the event (call inside the transaction) and says what to send once it commits. */
function recordChange(bus: EventBus, rule: AlertRule, payload: AlertChangedPayload, notify: boolean): AlertChange {
  const event = bus.record('alert.changed', payload);
  return { event, webhook: notify && rule.webhookUrl ? { url: rule.webhookUrl, body: { eventId: event.id, ...payload } } : null };
}

/**
 * Resets every instance of the rule because the rule was reset or deleted,
 * closing each open alert: without this an episode would stay firing with no
 * image ever able to resolve it. Writes the alerts, their transitions and the
 * events; call inside the transaction that changes the rule, and deliver the
 * changes after commit. `rule` is the rule as it was, so the webhooks go to
 * the receiver that saw them fire.
 */
export function resetInstances(db: Db, bus: EventBus, rule: AlertRule, reason: ResetReason, now: number): AlertChange[] {
  const changes: AlertChange[] = [];
  for (const open of openAlertsOfRule(db, rule.id)) {
    const s = reset(open.state, isSilenced(db, rule.id, open.source, now));
    if (!s.transition) continue;
    closeAlert(db, open.id, s.transition.to, now);
    insertTransition(db, { alertId: open.id, from: s.transition.from, to: s.transition.to, imageId: null, value: null, notified: s.notify, now });
    const payload: AlertChangedPayload = {
      alert: alertView(getAlert(db, open.id)!), rule: ruleRef(rule),
      transition: s.transition, renotify: false, notified: s.notify,
      message: `${open.source ?? 'unknown source'}: ${describeReset(reason, s.transition.to)}`,
    };
    changes.push(recordChange(bus, rule, payload, s.notify));
  }
  deleteInstances(db, rule.id);
  return changes;
}

// Runs every matching alert rule over a freshly stored image, inside the same
// transaction, so that an image and the alerts it caused are committed
// together. Events are recorded there too; broadcasting and webhooks wait
// until after the commit.
import { thresholdAt } from '../domain/calibration.js';
import { observe, step, describeTransition } from '../domain/alert-machine.js';
import type { RuleChannel } from '../domain/alert-types.js';
import type { Calibration } from '../domain/types.js';
import type { AlertView } from '../domain/wire.js';
import { getAlert, insertAlert, insertTransition, isSilenced, listRules, openAlert, saveRuleState, updateAlertState, type AlertRow } from '../db/alerts.js';
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
    id: a.id, ruleId: a.rule_id, state: a.state, startedAt: a.started_at, updatedAt: a.updated_at,
    firstImageId: a.first_image_id, lastImageId: a.last_image_id, value: a.value,
    acknowledged: a.acked_at !== null ? { by: a.acked_by, at: a.acked_at } : null,
  };
}

export function evaluateRules(db: Db, bus: EventBus, image: ImageRow, cal: Calibration, now: number): AlertChange[] {
  const changes: AlertChange[] = [];
  const resolve = calibrationThreshold(cal);
  for (const rule of listRules(db)) {
    if (!rule.enabled || (rule.source !== null && rule.source !== image.source)) continue;
    const value = channelValue(image, rule.channel);
    const s = step(rule, rule.state, observe(rule, value, resolve), now, isSilenced(db, rule.id, now));
    saveRuleState(db, rule.id, s.next);
    if (!s.transition && !s.renotify) continue;

    let alert = openAlert(db, rule.id);
    if (s.transition) {
      const { from, to } = s.transition;
      if (!alert || from === 'normal' || from === 'resolved') {
        alert = getAlert(db, insertAlert(db, { ruleId: rule.id, state: to, imageId: image.id, value, now }))!;
      } else {
        updateAlertState(db, alert.id, { state: to, imageId: image.id, value, now });
        alert = getAlert(db, alert.id)!;
      }
      insertTransition(db, { alertId: alert.id, from, to, imageId: image.id, value, notified: s.notify, now });
    }
    if (!alert) continue;
    const message = s.transition
      ? describeTransition(rule, s.transition.from, s.transition.to)
      : `${rule.name}: still firing`;
    const payload = {
      alert: alertView(alert), rule: { id: rule.id, name: rule.name, channel: rule.channel, source: rule.source },
      transition: s.transition, renotify: s.renotify, notified: s.notify, imageId: image.id, value, message,
    };
    const event = bus.record('alert.changed', payload);
    changes.push({ event, webhook: s.notify && rule.webhookUrl ? { url: rule.webhookUrl, body: { eventId: event.id, ...payload } } : null });
  }
  return changes;
}

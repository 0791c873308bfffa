// The alert state machine (docs/architecture.md, Alerts): normal -> pending -> firing ->
// resolved, one rule advanced by one image at a time.
//
// Why a pure function: every alerting decision (k-of-n pending, hysteresis,
// m clean images to resolve, re-notify interval, silences) lives here with no
// I/O, no clock and no randomness. The caller passes the clock (`now`) and the
// silence verdict in, and persists the returned state, so the whole behaviour
// is pinned by a truth table in test/unit/alert-machine.test.ts.
//
// Choices the truth table pins:
// - Every state change notifies (into pending and back to normal included);
//   the consumer decides what to show. Re-notifications only while firing.
// - A silence suppresses notifications only: states still move.
// - lastNotifiedAt is the re-notify anchor. It is set to `now` whenever a
//   notification is sent, and also on entering firing while silenced, so a
//   silenced episode never re-notifies off the previous episode's time; once
//   the silence lifts, the first image at least renotifySeconds after the
//   anchor re-notifies (renotify=true). Due re-notifications suppressed by a
//   silence do not move the anchor.
import { INITIAL_RULE_STATE, type AlertRule, type AlertStateName, type Observation, type RuleChannel, type RuleState, type Step, type Threshold } from './alert-types.js';

export type CalibrationThreshold = (channel: RuleChannel, rate: number) => number;

/** A threshold as a raw value for the rule's channel (for 'combined', a p-value). */
export function resolveThreshold(rule: AlertRule, t: Threshold, calibrationThreshold: CalibrationThreshold): number {
  return t.kind === 'absolute' ? t.value : calibrationThreshold(rule.channel, t.rate);
}

/** Judge one image's value for the rule's channel. NaN is neither a breach nor clean. */
export function observe(rule: AlertRule, value: number, calibrationThreshold: CalibrationThreshold): Observation {
  const low = rule.channel === 'combined'; // a p-value: low is anomalous
  const threshold = resolveThreshold(rule, rule.threshold, calibrationThreshold);
  const breach = low ? value < threshold : value > threshold;
  // Without a recovery threshold, clean is "not a breach" (and NaN is neither).
  const clean =
    rule.recovery === null
      ? low ? value >= threshold : value <= threshold
      : low ? value > resolveThreshold(rule, rule.recovery, calibrationThreshold)
            : value < resolveThreshold(rule, rule.recovery, calibrationThreshold);
  return { breach, clean };
}

/** Advance one rule by one observed image; `now` in ms since epoch. */
export function step(rule: AlertRule, state: RuleState, obs: Observation, now: number, silenced: boolean): Step {
  if (!rule.enabled) return { next: state, transition: null, notify: false, renotify: false };

  let { window, cleanStreak } = state;
  let to: AlertStateName = state.state;

  if (state.state === 'firing') {
    cleanStreak = obs.clean ? cleanStreak + 1 : 0;
    if (obs.clean && cleanStreak >= rule.clearAfter) {
      to = 'resolved';
      window = [];
      cleanStreak = 0;
    }
  } else {
    const n = Math.max(1, rule.pendingN);
    window = [...window, obs.breach].slice(-n);
    const breaches = window.filter(Boolean).length;
    if (breaches >= Math.max(1, rule.pendingK)) {
      to = 'firing';
      window = [];
      cleanStreak = 0;
    } else if (obs.breach && state.state !== 'pending') to = 'pending';
    else if (breaches === 0 && state.state === 'pending') to = 'normal';
  }

  const transition = to === state.state ? null : { from: state.state, to };
  const renotifyDue =
    transition === null &&
    to === 'firing' &&
    rule.renotifySeconds !== null &&
    state.lastNotifiedAt !== null &&
    now - state.lastNotifiedAt >= rule.renotifySeconds * 1000;
  const notify = (transition !== null || renotifyDue) && !silenced;
  const lastNotifiedAt = notify || (transition !== null && to === 'firing') ? now : state.lastNotifiedAt;

  return {
    next: { state: to, window, cleanStreak, lastNotifiedAt },
    transition,
    notify,
    renotify: notify && renotifyDue,
  };
}

/**
 * Forget everything: the rule now watches something else, was disabled, or
 * was deleted. Its open episode (`open`, the open alert's state, or null) is
 * closed so that it cannot stay firing with nothing left to resolve it: firing
 * resolves, pending goes back to normal. Like any state change it notifies,
 * unless silenced.
 */
export function reset(open: AlertStateName | null, silenced: boolean): Step {
  const to: AlertStateName | null = open === 'firing' ? 'resolved' : open === 'pending' ? 'normal' : null;
  const transition = open !== null && to !== null ? { from: open, to } : null;
  return { next: INITIAL_RULE_STATE, transition, notify: transition !== null && !silenced, renotify: false };
}

function showThreshold(t: Threshold): string {
  return t.kind === 'absolute' ? String(Number(t.value.toPrecision(3))) : `its ${Number((t.rate * 100).toPrecision(3))}% false-alarm level`;
}

/** A short sentence for a state change, e.g. "recon above 0.0123 in 2 of the last 3 images: firing". */
export function describeTransition(rule: AlertRule, from: AlertStateName, to: AlertStateName): string {
  const low = rule.channel === 'combined';
  const channel = low ? 'combined p-value' : rule.channel;
  const bad = low ? 'below' : 'above';
  const good = low ? 'above' : 'below';
  const threshold = showThreshold(rule.threshold);
  switch (to) {
    case 'firing':
      return `${channel} ${bad} ${threshold} in ${rule.pendingK} of the last ${rule.pendingN} images: firing`;
    case 'pending':
      return `${channel} ${bad} ${threshold}, ${rule.pendingK} of ${rule.pendingN} images needed to fire: pending`;
    case 'resolved': {
      const images = rule.clearAfter === 1 ? 'image' : 'images';
      return `${channel} ${good} ${showThreshold(rule.recovery ?? rule.threshold)} for ${rule.clearAfter} ${images}: resolved`;
    }
    case 'normal':
      return from === 'pending'
        ? `no ${channel} ${bad} ${threshold} in the last ${rule.pendingN} images: normal`
        : `${channel}: normal`;
  }
}

export type ResetReason = 'deleted' | 'disabled' | 'retargeted';

/** A short sentence for an episode closed by reset(), e.g. "rule deleted: resolved". */
export function describeReset(reason: ResetReason, to: AlertStateName): string {
  const why = reason === 'retargeted' ? 'rule changed what it watches' : `rule ${reason}`;
  return `${why}: ${to}`;
}

import { describe, expect, it } from 'vitest';
import { describeReset, describeTransition, observe, reset, resolveThreshold, step } from '../../server/domain/alert-machine.js';
import type { AlertRule, AlertStateName, RuleChannel, RuleState } from '../../server/domain/alert-types.js';
import { INITIAL_RULE_STATE } from '../../server/domain/alert-types.js';

function rule(overrides: Partial<AlertRule> = {}): AlertRule {
  return {
    id: 1,
    name: 'r',
    channel: 'recon',
    source: null,
    threshold: { kind: 'absolute', value: 0.5 },
    pendingK: 1,
    pendingN: 1,
    recovery: null,
    clearAfter: 1,
    renotifySeconds: null,
    enabled: true,
    webhookUrl: null,
    ...overrides,
  };
}

/** A fake calibration set: a rate r maps to 1 - r for score channels, and to r itself for 'combined'. */
const calibrationThreshold = (channel: RuleChannel, rate: number): number => (channel === 'combined' ? rate : 1 - rate);

// ---------------------------------------------------------------------------
// The truth table. Each row starts from a state (INITIAL_RULE_STATE unless
// `start` says otherwise) and feeds a sequence of images. Per image: the raw
// value `v` for the rule's channel, the clock `at` in seconds (default: the
// image's 1-based position), whether a silence covers the rule, and what must
// come out: the state, the transition ('from>to', absent = none), notify, and
// optionally renotify, the clean streak, the window and lastNotifiedAt (in
// seconds). Threshold 0.5 unless the row says otherwise: 0.9 breaches, 0.1 is
// clean.
// ---------------------------------------------------------------------------

interface Expect {
  v: number;
  at?: number;
  silenced?: boolean;
  state: AlertStateName;
  t?: `${AlertStateName}>${AlertStateName}`;
  notify: boolean;
  renotify?: boolean;
  streak?: number;
  window?: boolean[];
  last?: number | null;
}

interface Row {
  name: string;
  rule?: Partial<AlertRule>;
  start?: Partial<RuleState>;
  steps: Expect[];
}

const TABLE: Row[] = [
  {
    name: '1 of 1: a clean image stays normal, quietly',
    steps: [{ v: 0.1, state: 'normal', notify: false, window: [false], last: null }],
  },
  {
    name: '1 of 1: the first breach fires at once and notifies',
    steps: [{ v: 0.9, state: 'firing', t: 'normal>firing', notify: true, window: [], streak: 0, last: 1 }],
  },
  {
    name: '2 of 3: a breach goes pending (and notifies), a second one within 3 images fires',
    rule: { pendingK: 2, pendingN: 3 },
    steps: [
      { v: 0.9, state: 'pending', t: 'normal>pending', notify: true, window: [true], last: 1 },
      { v: 0.1, state: 'pending', notify: false, window: [true, false], last: 1 },
      { v: 0.9, state: 'firing', t: 'pending>firing', notify: true, window: [], last: 3 },
    ],
  },
  {
    name: '2 of 3: pending falls back to normal (and notifies) once the breach leaves the window',
    rule: { pendingK: 2, pendingN: 3 },
    steps: [
      { v: 0.9, state: 'pending', t: 'normal>pending', notify: true, window: [true] },
      { v: 0.1, state: 'pending', notify: false, window: [true, false] },
      { v: 0.1, state: 'pending', notify: false, window: [true, false, false] },
      { v: 0.1, state: 'normal', t: 'pending>normal', notify: true, window: [false, false, false] },
      { v: 0.1, state: 'normal', notify: false, window: [false, false, false] },
    ],
  },
  {
    name: '2 of 3: breaches 3 images apart never count together',
    rule: { pendingK: 2, pendingN: 3 },
    steps: [
      { v: 0.9, state: 'pending', t: 'normal>pending', notify: true },
      { v: 0.1, state: 'pending', notify: false },
      { v: 0.1, state: 'pending', notify: false, window: [true, false, false] },
      { v: 0.9, state: 'pending', notify: false, window: [false, false, true] },
      { v: 0.9, state: 'firing', t: 'pending>firing', notify: true, window: [] },
    ],
  },
  {
    name: 'firing stays firing on a breach and on clean images short of clearAfter, then resolves',
    rule: { clearAfter: 3 },
    steps: [
      { v: 0.9, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.9, state: 'firing', notify: false, streak: 0 },
      { v: 0.1, state: 'firing', notify: false, streak: 1 },
      { v: 0.1, state: 'firing', notify: false, streak: 2 },
      { v: 0.1, state: 'resolved', t: 'firing>resolved', notify: true, streak: 0, window: [], last: 5 },
    ],
  },
  {
    name: 'a breach between clean images resets the clean streak',
    rule: { clearAfter: 2 },
    steps: [
      { v: 0.9, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.1, state: 'firing', notify: false, streak: 1 },
      { v: 0.9, state: 'firing', notify: false, streak: 0 },
      { v: 0.1, state: 'firing', notify: false, streak: 1 },
      { v: 0.1, state: 'resolved', t: 'firing>resolved', notify: true, streak: 0 },
    ],
  },
  {
    name: 'hysteresis: between recovery (0.3) and threshold (0.5) is neither breach nor clean',
    rule: { recovery: { kind: 'absolute', value: 0.3 }, clearAfter: 2 },
    steps: [
      { v: 0.4, state: 'normal', notify: false, window: [false] },
      { v: 0.9, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.4, state: 'firing', notify: false, streak: 0 },
      { v: 0.2, state: 'firing', notify: false, streak: 1 },
      { v: 0.4, state: 'firing', notify: false, streak: 0 },
      { v: 0.2, state: 'firing', notify: false, streak: 1 },
      { v: 0.2, state: 'resolved', t: 'firing>resolved', notify: true },
    ],
  },
  {
    name: 'without a recovery threshold, exactly at the threshold is clean (not a breach)',
    steps: [
      { v: 0.9, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.5, state: 'resolved', t: 'firing>resolved', notify: true },
    ],
  },
  {
    name: 'resolved is the quiet state after an episode until the next breach (no resolved>normal)',
    steps: [
      { v: 0.9, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.1, state: 'resolved', t: 'firing>resolved', notify: true, window: [] },
      { v: 0.1, state: 'resolved', notify: false, window: [false] },
      { v: 0.1, state: 'resolved', notify: false, window: [false] },
      { v: 0.9, state: 'firing', t: 'resolved>firing', notify: true },
    ],
  },
  {
    name: 'resolved goes pending on a breach when k > 1',
    rule: { pendingK: 2, pendingN: 2 },
    start: { state: 'resolved' },
    steps: [
      { v: 0.9, state: 'pending', t: 'resolved>pending', notify: true, window: [true] },
      { v: 0.9, state: 'firing', t: 'pending>firing', notify: true },
    ],
  },
  {
    name: 'combined: a p-value below the threshold breaches, above recovery is clean',
    rule: { channel: 'combined', threshold: { kind: 'absolute', value: 0.01 }, recovery: { kind: 'absolute', value: 0.05 } },
    steps: [
      { v: 0.5, state: 'normal', notify: false },
      { v: 0.02, state: 'normal', notify: false, window: [false] },
      { v: 0.001, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.02, state: 'firing', notify: false, streak: 0 },
      { v: 0.5, state: 'resolved', t: 'firing>resolved', notify: true },
    ],
  },
  {
    name: 'rate thresholds are resolved through the calibration (10% -> 0.9, recovery 30% -> 0.7)',
    rule: { threshold: { kind: 'rate', rate: 0.1 }, recovery: { kind: 'rate', rate: 0.3 } },
    steps: [
      { v: 0.8, state: 'normal', notify: false },
      { v: 0.95, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.8, state: 'firing', notify: false, streak: 0 },
      { v: 0.6, state: 'resolved', t: 'firing>resolved', notify: true },
    ],
  },
  {
    name: 'combined rate threshold: the rate itself is the p-value threshold',
    rule: { channel: 'combined', threshold: { kind: 'rate', rate: 0.01 } },
    steps: [
      { v: 0.02, state: 'normal', notify: false },
      { v: 0.005, state: 'firing', t: 'normal>firing', notify: true },
    ],
  },
  {
    name: 're-notify fires exactly when the interval has elapsed, not before, and re-arms',
    rule: { renotifySeconds: 10, clearAfter: 5 },
    steps: [
      { v: 0.9, at: 1, state: 'firing', t: 'normal>firing', notify: true, renotify: false, last: 1 },
      { v: 0.9, at: 5, state: 'firing', notify: false, last: 1 },
      { v: 0.9, at: 10.999, state: 'firing', notify: false, last: 1 },
      { v: 0.9, at: 11, state: 'firing', notify: true, renotify: true, last: 11 },
      { v: 0.1, at: 20, state: 'firing', notify: false, last: 11 },
      { v: 0.1, at: 21, state: 'firing', notify: true, renotify: true, last: 21 },
    ],
  },
  {
    name: 'no re-notify interval: a long firing episode notifies once',
    steps: [
      { v: 0.9, at: 1, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.9, at: 100_000, state: 'firing', notify: false, last: 1 },
    ],
  },
  {
    name: 'silenced: transitions still happen, none notify, lastNotifiedAt is anchored on entering firing',
    rule: { pendingK: 2, pendingN: 2 },
    steps: [
      { v: 0.9, silenced: true, state: 'pending', t: 'normal>pending', notify: false, last: null },
      { v: 0.9, silenced: true, state: 'firing', t: 'pending>firing', notify: false, last: 2 },
      { v: 0.1, silenced: true, state: 'resolved', t: 'firing>resolved', notify: false, last: 2 },
      { v: 0.1, state: 'resolved', notify: false },
    ],
  },
  {
    name: 'silenced entry: a due re-notify waits for the silence to lift, then fires',
    rule: { renotifySeconds: 10 },
    steps: [
      { v: 0.9, at: 1, silenced: true, state: 'firing', t: 'normal>firing', notify: false, last: 1 },
      { v: 0.9, at: 11, silenced: true, state: 'firing', notify: false, renotify: false, last: 1 },
      { v: 0.9, at: 12, state: 'firing', notify: true, renotify: true, last: 12 },
    ],
  },
  {
    name: 'silenced entry does not re-notify off the previous episode\'s time',
    rule: { renotifySeconds: 10 },
    start: { state: 'resolved', lastNotifiedAt: 1000 },
    steps: [
      { v: 0.9, at: 100, silenced: true, state: 'firing', t: 'resolved>firing', notify: false, last: 100 },
      { v: 0.9, at: 105, state: 'firing', notify: false, last: 100 },
      { v: 0.9, at: 110, state: 'firing', notify: true, renotify: true, last: 110 },
    ],
  },
  {
    name: 'a disabled rule does nothing',
    rule: { enabled: false, renotifySeconds: 1 },
    start: { state: 'firing', lastNotifiedAt: 1000, cleanStreak: 0 },
    steps: [
      { v: 0.1, at: 50, state: 'firing', notify: false, streak: 0, last: 1 },
      { v: 0.9, at: 60, state: 'firing', notify: false, last: 1 },
    ],
  },
  {
    name: 'NaN: no breach in normal and pending',
    rule: { pendingK: 2, pendingN: 2 },
    steps: [
      { v: NaN, state: 'normal', notify: false, window: [false] },
      { v: 0.9, state: 'pending', t: 'normal>pending', notify: true, window: [false, true] },
      { v: NaN, state: 'pending', notify: false, window: [true, false] },
      { v: NaN, state: 'normal', t: 'pending>normal', notify: true, window: [false, false] },
    ],
  },
  {
    name: 'NaN while firing: not clean, so it resets the clean streak and never resolves',
    rule: { clearAfter: 2 },
    steps: [
      { v: 0.9, state: 'firing', t: 'normal>firing', notify: true },
      { v: 0.1, state: 'firing', notify: false, streak: 1 },
      { v: NaN, state: 'firing', notify: false, streak: 0 },
      { v: NaN, state: 'firing', notify: false, streak: 0 },
      { v: 0.1, state: 'firing', notify: false, streak: 1 },
      { v: 0.1, state: 'resolved', t: 'firing>resolved', notify: true },
    ],
  },
];

describe('step: truth table', () => {
  for (const row of TABLE) {
    it(row.name, () => {
      const r = rule(row.rule);
      let state: RuleState = { ...INITIAL_RULE_STATE, ...row.start };
      row.steps.forEach((e, i) => {
        const now = (e.at ?? i + 1) * 1000;
        const from = state.state;
        const s = step(r, state, observe(r, e.v, calibrationThreshold), now, e.silenced ?? false);
        const where = `image ${i + 1} (v=${e.v})`;
        expect(s.next.state, where).toBe(e.state);
        expect(s.transition, where).toEqual(e.t ? { from: e.t.split('>')[0], to: e.t.split('>')[1] } : null);
        expect(s.transition === null ? from : s.transition.from, where).toBe(from);
        expect(s.notify, where).toBe(e.notify);
        expect(s.renotify, where).toBe(e.renotify ?? false);
        if (e.streak !== undefined) expect(s.next.cleanStreak, where).toBe(e.streak);
        if (e.window !== undefined) expect(s.next.window, where).toEqual(e.window);
        if (e.last !== undefined) expect(s.next.lastNotifiedAt, where).toBe(e.last === null ? null : e.last * 1000);
        expect(s.next.window.length, where).toBeLessThanOrEqual(Math.max(1, r.pendingN));
        state = s.next;
      });
    });
  }
});

describe('step', () => {
  it('returns the very same state for a disabled rule', () => {
    const start: RuleState = { state: 'pending', window: [true], cleanStreak: 0, lastNotifiedAt: null };
    const s = step(rule({ enabled: false }), start, { breach: true, clean: false }, 1, false);
    expect(s).toEqual({ next: start, transition: null, notify: false, renotify: false });
    expect(s.next).toBe(start);
  });
  it('does not mutate the state it is given', () => {
    const start: RuleState = { state: 'pending', window: [true, false], cleanStreak: 0, lastNotifiedAt: 5 };
    const copy = structuredClone(start);
    step(rule({ pendingK: 3, pendingN: 3 }), start, { breach: true, clean: false }, 10, false);
    expect(start).toEqual(copy);
  });
  it('never throws on degenerate counts (k, n, clearAfter of 0)', () => {
    const r = rule({ pendingK: 0, pendingN: 0, clearAfter: 0 });
    const quiet = step(r, INITIAL_RULE_STATE, { breach: false, clean: true }, 1, false);
    expect(quiet.next.state).toBe('normal');
    const fired = step(r, INITIAL_RULE_STATE, { breach: true, clean: false }, 1, false);
    expect(fired.next.state).toBe('firing');
    expect(step(r, fired.next, { breach: true, clean: false }, 2, false).next.state).toBe('firing');
    expect(step(r, fired.next, { breach: false, clean: true }, 2, false).next.state).toBe('resolved');
  });
});

describe('observe', () => {
  const cases: { name: string; rule: Partial<AlertRule>; v: number; breach: boolean; clean: boolean }[] = [
    { name: 'recon above threshold', rule: {}, v: 0.51, breach: true, clean: false },
    { name: 'recon at threshold, no recovery', rule: {}, v: 0.5, breach: false, clean: true },
    { name: 'recon below threshold', rule: {}, v: 0.49, breach: false, clean: true },
    { name: 'kl between recovery and threshold', rule: { channel: 'kl', recovery: { kind: 'absolute', value: 0.3 } }, v: 0.4, breach: false, clean: false },
    { name: 'elbo at recovery is not clean', rule: { channel: 'elbo', recovery: { kind: 'absolute', value: 0.3 } }, v: 0.3, breach: false, clean: false },
    { name: 'combined p below threshold', rule: { channel: 'combined', threshold: { kind: 'absolute', value: 0.01 } }, v: 0.009, breach: true, clean: false },
    { name: 'combined p above threshold', rule: { channel: 'combined', threshold: { kind: 'absolute', value: 0.01 } }, v: 0.2, breach: false, clean: true },
    { name: 'combined p between threshold and recovery', rule: { channel: 'combined', threshold: { kind: 'absolute', value: 0.01 }, recovery: { kind: 'absolute', value: 0.05 } }, v: 0.03, breach: false, clean: false },
    { name: 'NaN, no recovery', rule: {}, v: NaN, breach: false, clean: false },
    { name: 'NaN, combined with recovery', rule: { channel: 'combined', recovery: { kind: 'absolute', value: 0.05 } }, v: NaN, breach: false, clean: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(observe(rule(c.rule), c.v, calibrationThreshold)).toEqual({ breach: c.breach, clean: c.clean });
    });
  }
});

describe('resolveThreshold', () => {
  it('passes absolute values through and asks the calibration for rates, with the rule\'s channel', () => {
    const calls: [RuleChannel, number][] = [];
    const cal = (channel: RuleChannel, rate: number): number => {
      calls.push([channel, rate]);
      return 42;
    };
    expect(resolveThreshold(rule(), { kind: 'absolute', value: 0.7 }, cal)).toBe(0.7);
    expect(calls).toEqual([]);
    expect(resolveThreshold(rule({ channel: 'kl' }), { kind: 'rate', rate: 0.01 }, cal)).toBe(42);
    expect(calls).toEqual([['kl', 0.01]]);
  });
});

describe('describeTransition', () => {
  it('says what happened in a short sentence', () => {
    const r = rule({ threshold: { kind: 'absolute', value: 0.012345 }, pendingK: 2, pendingN: 3 });
    expect(describeTransition(r, 'pending', 'firing')).toBe('recon above 0.0123 in 2 of the last 3 images: firing');
    expect(describeTransition(r, 'pending', 'normal')).toBe('no recon above 0.0123 in the last 3 images: normal');
    const c = rule({ channel: 'combined', threshold: { kind: 'rate', rate: 0.01 }, clearAfter: 3 });
    expect(describeTransition(c, 'firing', 'resolved')).toBe('combined p-value above its 1% false-alarm level for 3 images: resolved');
    expect(describeTransition(c, 'normal', 'pending')).toContain('pending');
  });
});

describe('reset', () => {
  it('closes the open episode (firing resolves, pending goes back to normal) and forgets everything', () => {
    const cases: [AlertStateName | null, boolean, { from: AlertStateName; to: AlertStateName } | null, boolean][] = [
      ['firing', false, { from: 'firing', to: 'resolved' }, true],
      ['firing', true, { from: 'firing', to: 'resolved' }, false], // a silence suppresses the notification only
      ['pending', false, { from: 'pending', to: 'normal' }, true],
      ['resolved', false, null, false],
      ['normal', false, null, false],
      [null, false, null, false],
    ];
    for (const [open, silenced, transition, notify] of cases) {
      expect(reset(open, silenced), `${open} silenced=${silenced}`).toEqual({ next: INITIAL_RULE_STATE, transition, notify, renotify: false });
    }
  });

  it('says why the episode closed', () => {
    expect(describeReset('deleted', 'resolved')).toBe('rule deleted: resolved');
    expect(describeReset('disabled', 'normal')).toBe('rule disabled: normal');
    expect(describeReset('retargeted', 'resolved')).toBe('rule changed what it watches: resolved');
  });
});

// Alert rules and their state (docs/architecture.md, Alerts). Pure data: the state machine is
// in alert-machine.ts, persistence in db/, orchestration in services/.

/** The channel a rule watches. 'combined' watches the combined p-value (low = bad). */
export type RuleChannel = 'kl' | 'recon' | 'elbo' | 'combined';

export type Threshold =
  /** A raw score (kl/recon/elbo: breach when above; combined: breach when the p-value is below). */
  | { kind: 'absolute'; value: number }
  /** A false-alarm rate on the model's calibration set, resolved to a raw threshold when evaluated. */
  | { kind: 'rate'; rate: number };

export interface AlertRule {
  id: number;
  name: string;
  channel: RuleChannel;
  /** Only images from this source; null = every source. */
  source: string | null;
  threshold: Threshold;
  /** Fire after k breaches within the last n images (default 1 of 1). */
  pendingK: number;
  pendingN: number;
  /** Hysteresis: an image counts as clean only below this (above, for combined); null = the threshold itself. */
  recovery: Threshold | null;
  /** Consecutive clean images that resolve a firing alert. */
  clearAfter: number;
  /** Re-notify a still-firing alert after this many seconds; null = never. */
  renotifySeconds: number | null;
  enabled: boolean;
  webhookUrl: string | null;
}

export type AlertStateName = 'normal' | 'pending' | 'firing' | 'resolved';

/** What the machine remembers about one rule between images. */
export interface RuleState {
  state: AlertStateName;
  /** Breach flags of the last pendingN images, oldest first. */
  window: boolean[];
  /** Consecutive clean images while firing. */
  cleanStreak: number;
  /** Re-notifications count from here (ms since epoch): the last notification, or when a silenced episode began firing. */
  lastNotifiedAt: number | null;
}

export const INITIAL_RULE_STATE: RuleState = { state: 'normal', window: [], cleanStreak: 0, lastNotifiedAt: null };

/** One image, judged against one rule's thresholds (resolved to raw values). */
export interface Observation {
  /** Above the threshold (below, for combined). */
  breach: boolean;
  /** Below the recovery threshold (above, for combined). */
  clean: boolean;
}

export interface Step {
  next: RuleState;
  /** The state changed (from -> to). */
  transition: { from: AlertStateName; to: AlertStateName } | null;
  /** Send a notification now: a state change or a due re-notification, and not silenced. */
  notify: boolean;
  /** This notification is a re-notification of a still-firing alert. */
  renotify: boolean;
}

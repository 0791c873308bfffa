// JSON shapes the HTTP API and the WebSocket send: the dashboard imports only
// these (type-only), the server's view functions are checked against them.
import type { AlertRule, AlertStateName, RuleChannel } from './alert-types.js';
import type { Role } from './roles.js';
import type { Channel, EpochRecord, ModelMeta, TrainOptions, TrainProgress } from './types.js';

export interface ImageView {
  id: number;
  receivedAt: string;
  source: string;
  originalName: string;
  sha256: string;
  format: string;
  width: number;
  height: number;
  bytes: number;
  modelId: string;
  scores: { kl: number; recon: number; elbo: number };
  p: { kl: number; recon: number; elbo: number; combined: number };
  percentile: { kl: number; recon: number; elbo: number };
  anomaly: boolean;
  urls: { original: string; thumbnail: string; reconstruction: string; heatmap: string };
}

/** One alert episode of one instance: a rule and a source. */
export interface AlertView {
  id: number;
  ruleId: number;
  /** The instance's source (camera, line); null only for old alerts whose source could not be recovered. */
  source: string | null;
  state: AlertStateName;
  startedAt: number;
  updatedAt: number;
  firstImageId: number | null;
  lastImageId: number | null;
  value: number | null;
  acknowledged: { by: number | null; at: number } | null;
}

export interface AlertChangedPayload {
  alert: AlertView;
  rule?: { id: number; name: string; channel: RuleChannel; source: string | null };
  transition?: { from: AlertStateName; to: AlertStateName } | null;
  renotify?: boolean;
  notified?: boolean;
  acknowledged?: boolean;
  imageId?: number;
  value?: number;
  message: string;
}

export interface RuleView extends AlertRule {
  createdAt: number;
  updatedAt: number;
  /** The most urgent state among its instances (firing, pending, resolved, normal); normal with none. */
  state: AlertStateName;
  /** One state machine per source the rule has seen (one at most for a rule with a source). */
  instances: { source: string; state: AlertStateName }[];
}

/** A source (camera, line) as its stored images describe it, with its open alert instances. */
export interface SourceView {
  source: string;
  /** Oldest and newest stored image (ISO); retention moves firstSeen forward. Null when none is stored (only open alerts remain). */
  firstSeen: string | null;
  lastSeen: string | null;
  images: number;
  anomalies: number;
  /** anomalies / images */
  anomalyRate: number;
  openAlerts: { id: number; ruleId: number; ruleName: string; state: AlertStateName; startedAt: number; acknowledged: boolean }[];
}

export interface JobView {
  id: number;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  source: string;
  options: TrainOptions;
  /** 'recalibrate': same weights as `parentModel`, a new calibration. */
  kind: 'train' | 'recalibrate';
  parentModel: string | null;
  modelId: string | null;
  progress: TrainProgress | null;
  curves: EpochRecord[];
  error: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

/** meta.json without its big arrays: the calibration scores become thresholds. */
export type ModelView = Pick<ModelMeta, 'id' | 'createdAt' | 'input' | 'options' | 'likelihood' | 'dataset' | 'training' | 'parameters' | 'backend'> & {
  /** The model this one was recalibrated from, when it was. */
  lineage: ModelMeta['lineage'] | null;
  calibration: { n: number; falseAlarmRate: number; heatmapScale: number; thresholds: Record<Channel, number> };
  active: boolean;
};

export interface HistogramView {
  lo: number;
  hi: number;
  bins: number;
  threshold: number;
  calibration: number[];
  recent: number[];
}

export interface StatsView {
  activeModel: string | null;
  hours: number;
  images: number;
  anomalies: number;
  channels: Partial<Record<'kl' | 'recon' | 'elbo', HistogramView>>;
  perHour: { hour: string; images: number; anomalies: number }[];
}

export interface HealthView {
  status: 'ok' | 'degraded';
  backend: string;
  activeModel: string | null;
  database: string;
  queues: { scoring: number; training: number; webhooks: number };
}

export interface SessionView {
  name: string;
  role: Role;
}

/** An API key as listed (the key itself is never stored, only shown once on creation). */
export interface ApiKeyView {
  id: number;
  name: string;
  role: Role;
  prefix: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface SilenceView {
  id: number;
  rule_id: number | null;
  /** null: every source */
  source: string | null;
  starts_at: number;
  ends_at: number;
  reason: string;
  created_by: number | null;
  created_at: number;
}

export interface AuditEntryView {
  id: number;
  at: number;
  key_id: number | null;
  action: string;
  target: string;
  detail: unknown;
}

export type SessionState = ({ signedIn: true; via: 'key' | 'session' } & SessionView) | { signedIn: false };

export type WireEvent =
  | { id: number; at: number; type: 'image.scored'; payload: ImageView }
  | { id: number; at: number; type: 'alert.changed'; payload: AlertChangedPayload }
  | { id: number; at: number; type: 'training.progress'; payload: TrainProgress & { jobId: number } }
  | { id: number; at: number; type: 'training.finished'; payload: JobView }
  | { id: number; at: number; type: 'model.activated'; payload: { id: string; by: number | null } };

export type WireMessage = WireEvent | { type: 'hello'; role: Role; lastEventId: number; replayFrom: number | null };

export interface ApiError {
  error: { code: string; message: string };
}

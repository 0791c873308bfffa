// What the dashboard knows, fed by REST on start and by live events after.
// Views subscribe to the topics they draw.
import type { AlertChangedPayload, AlertView, ImageView, ModelView, RuleView, SessionView } from '../../server/domain/wire.js';
import type { Role } from '../../server/domain/roles.js';

export type Topic = 'images' | 'alerts' | 'rules' | 'models';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const MAX_IMAGES = 300;

export interface FeedItem {
  alert: AlertView;
  message: string;
  /** What the feed and the banner call the alert: its rule's name and, for an instance, its source. */
  ruleName: string;
  at: number;
}

/** "recon high · line2-cam": alerts are per rule and source. */
function label(rule: string, alert: AlertView): string {
  return alert.source === null ? rule : `${rule} · ${alert.source}`;
}

export class Store {
  session: SessionView | null = null;
  /** Newest first. */
  images: ImageView[] = [];
  alerts = new Map<number, FeedItem>();
  rules: RuleView[] = [];
  models: ModelView[] = [];
  private readonly listeners = new Map<Topic, Set<() => void>>();

  can(role: Role): boolean {
    return this.session !== null && RANK[this.session.role] >= RANK[role];
  }

  get activeModel(): ModelView | undefined {
    return this.models.find((m) => m.active);
  }

  on(topic: Topic, fn: () => void): void {
    if (!this.listeners.has(topic)) this.listeners.set(topic, new Set());
    this.listeners.get(topic)!.add(fn);
  }

  emit(topic: Topic): void {
    for (const fn of this.listeners.get(topic) ?? []) fn();
  }

  setImages(list: ImageView[]): void {
    this.images = list.slice(0, MAX_IMAGES);
    this.emit('images');
  }

  addImage(img: ImageView): void {
    if (this.images.some((i) => i.id === img.id)) return;
    this.images.unshift(img);
    this.images.sort((a, b) => b.id - a.id);
    this.images.length = Math.min(this.images.length, MAX_IMAGES);
    this.emit('images');
  }

  ruleName(id: number): string {
    return this.rules.find((r) => r.id === id)?.name ?? `rule ${id}`;
  }

  setAlerts(list: AlertView[]): void {
    this.alerts = new Map(list.map((a) => [a.id, { alert: a, message: '', ruleName: label(this.ruleName(a.ruleId), a), at: a.updatedAt }]));
    this.emit('alerts');
  }

  applyAlert(p: AlertChangedPayload, at: number): void {
    const prev = this.alerts.get(p.alert.id);
    this.alerts.set(p.alert.id, { alert: p.alert, message: (p.acknowledged ? prev?.message : p.message) || prev?.message || '', ruleName: p.rule ? label(p.rule.name, p.alert) : prev?.ruleName ?? label(this.ruleName(p.alert.ruleId), p.alert), at });
    this.emit('alerts');
  }

  /** Alerts firing and not yet acknowledged. */
  get unacknowledgedFiring(): FeedItem[] {
    return [...this.alerts.values()].filter((f) => f.alert.state === 'firing' && !f.alert.acknowledged);
  }
}

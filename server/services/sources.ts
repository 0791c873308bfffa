// Sources (cameras, lines): what their stored images say about them, and
// which alert instances are open for them. Behind GET /api/sources.
import { openAlerts } from '../db/alerts.js';
import { listSourceStats } from '../db/images.js';
import type { Db } from '../db/open.js';
import type { SourceView } from '../domain/wire.js';

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Every source with stored images, and any other with an open alert (its
 * images may have aged out), by name. Reads a few rows per source whatever
 * the history holds: the totals are kept by triggers as images come and go.
 */
export function listSources(db: Db): SourceView[] {
  const views = new Map<string, SourceView>();
  for (const s of listSourceStats(db)) {
    views.set(s.source, {
      source: s.source, firstSeen: iso(s.first_seen), lastSeen: iso(s.last_seen),
      images: s.images, anomalies: s.anomalies, anomalyRate: s.images > 0 ? s.anomalies / s.images : 0, openAlerts: [],
    });
  }
  for (const a of openAlerts(db)) {
    if (a.source === null) continue;
    let view = views.get(a.source);
    if (!view) {
      view = { source: a.source, firstSeen: null, lastSeen: null, images: 0, anomalies: 0, anomalyRate: 0, openAlerts: [] };
      views.set(a.source, view);
    }
    view.openAlerts.push({ id: a.id, ruleId: a.rule_id, ruleName: a.rule_name, state: a.state, startedAt: a.started_at, acknowledged: a.acked_at !== null });
  }
  return [...views.values()].sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
}

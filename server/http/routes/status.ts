// /api/health (no key needed, no secrets) and /api/stats.
import { Router } from 'express';
import type { Context } from '../../context.js';
import { countsPerHour, scoreHistogram, scoreSummary } from '../../db/images.js';
import { CHANNELS, type Channel } from '../../domain/types.js';
import { requireRole } from '../auth.js';
import { intParam } from '../params.js';

/** Health must answer even when what it reports on is broken: a part that throws reads as null. */
function safely<T>(read: () => T): T | null {
  try {
    return read();
  } catch {
    return null;
  }
}

export function healthRouter(ctx: Context, extra: () => Record<string, unknown> = () => ({})): Router {
  const r = Router();
  r.get('/', async (_req, res) => {
    const report = await ctx.health.check();
    res.status(report.status === 'ok' ? 200 : 503).json({
      status: report.status,
      backend: ctx.backend.name,
      activeModel: safely(() => ctx.registry.activeRow()?.id ?? null),
      database: report.checks.database.ok ? 'ok' : 'error',
      checks: report.checks,
      queues: { scoring: safely(() => ctx.scoring.queueDepth), training: safely(() => ctx.jobs.queueDepth), webhooks: safely(() => ctx.webhooks.depth) },
      ...safely(extra),
    });
  });
  return r;
}

/** Counts of values per bin over [lo, hi], values outside clamped to the end bins: the rule scoreHistogram applies in SQL, so both share bins. */
function histogram(values: number[], lo: number, hi: number, bins: number): number[] {
  const counts = new Array(bins).fill(0);
  const width = (hi - lo) / bins || 1;
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]++;
  return counts;
}

export function statsRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('viewer'), async (req, res) => {
    const q = req.query as Record<string, string | undefined>;
    const hours = intParam(q.hours, 'hours', { min: 1, max: 24 * 365, fallback: 24 });
    const bins = intParam(q.bins, 'bins', { min: 5, max: 200, fallback: 30 });
    const since = ctx.clock.now() - hours * 3600_000;
    const active = await ctx.registry.active();
    // Counted and binned in SQL over every image in the range, however many.
    const summary = scoreSummary(ctx.db, since, active?.row.id ?? null);
    const channels: Record<string, unknown> = {};
    if (active) {
      const cal = active.detector.meta.calibration;
      for (const ch of CHANNELS as readonly Channel[]) {
        const calScores = cal.channels[ch].scores;
        const seen = summary.range[ch];
        // Bins cover the calibration range plus whatever recent images reached.
        const lo = Math.min(calScores[0], seen.lo ?? Infinity);
        const hi = Math.max(calScores[calScores.length - 1], seen.hi ?? -Infinity);
        channels[ch] = {
          lo, hi, bins,
          threshold: cal.channels[ch].threshold,
          calibration: histogram(calScores, lo, hi, bins),
          recent: scoreHistogram(ctx.db, since, active.row.id, ch, lo, hi, bins),
        };
      }
    }
    res.json({
      activeModel: active?.row.id ?? null,
      hours,
      images: summary.images,
      anomalies: summary.anomalies,
      channels,
      perHour: countsPerHour(ctx.db, since).map((h) => ({ ...h, hour: new Date(h.hour).toISOString() })),
    });
  });
  return r;
}

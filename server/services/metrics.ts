// Prometheus metrics (GET /metrics), with prom-client. Everything is gathered
// here: counters other code bumps with one call, and gauges read at scrape
// time from the parts that already know the answer (queues, the database,
// the model registry), so that nothing is kept twice.
//
// Counters of events (images scored, webhook deliveries) live in the process
// and start at zero on restart, as Prometheus expects; training runs are read
// from the jobs table, which keeps them across restarts. Process metrics
// (CPU, memory, event loop, GC) are prom-client's defaults, collected once
// per process however many contexts it builds.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { countInstances } from '../db/alert-instances.js';
import { countFinishedJobs } from '../db/jobs.js';
import type { ModelRow } from '../db/models.js';
import type { Db } from '../db/open.js';
import type { Logger } from '../logger.js';

export interface MetricsDeps {
  db: Db;
  log: Logger;
  backend: string;
  activeModel: () => ModelRow | undefined;
  queues: () => { scoring: number; training: number; webhooks: number };
  webhookStats: () => { delivered: number; failed: number; dropped: number };
}

/** What one upload request produced, per file: a scored image or a bad-input error. */
export type UploadOutcome = { image: { anomaly: boolean } } | { error: { code: string } };

/**
 * Distinct source label values kept before the rest are counted as OTHER: a
 * client inventing a source per image must not grow the scrape without bound.
 */
const MAX_SOURCES = 1000;
export const OTHER_SOURCE = '_other';

let processRegistry: Registry | null = null;

/** prom-client's process metrics, started once per process (they install observers). */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class Metrics {
  private readonly register = new Registry();
  private readonly sources = new Set<string>();
  private websocketClients: () => number = () => 0;
  private readonly imagesScored: Counter<'source' | 'verdict'>;
  private readonly imagesRejected: Counter<'source' | 'code'>;
  private readonly scoringSeconds: Histogram;

  constructor(private readonly d: MetricsDeps) {
    const register = this.register;
    const self = this;
    this.imagesScored = new Counter({
      name: 'latentwatch_images_scored_total', help: 'Images scored and stored, by source and verdict (normal or anomaly).',
      labelNames: ['source', 'verdict'], registers: [register],
    });
    this.imagesRejected = new Counter({
      name: 'latentwatch_images_rejected_total', help: 'Uploaded files refused as bad input (not an image, corrupt, too large), by source and error code.',
      labelNames: ['source', 'code'], registers: [register],
    });
    this.scoringSeconds = new Histogram({
      name: 'latentwatch_scoring_duration_seconds',
      help: 'Time to score one upload request: decode, score, render and store its files, then commit their rows and alerts.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [register],
    });
    new Gauge({
      name: 'latentwatch_queue_depth', help: 'Work waiting or in progress: images being scored (scoring), training jobs queued or running (training), webhook deliveries not finished (webhooks).',
      labelNames: ['queue'], registers: [register],
      collect() {
        const q = self.fromDb(() => self.d.queues(), null);
        if (q) for (const queue of ['scoring', 'training', 'webhooks'] as const) this.set({ queue }, q[queue]);
      },
    });
    new Gauge({
      name: 'latentwatch_alert_instances', help: 'Alert instances (one per rule and source) of enabled rules, by source and state.',
      labelNames: ['source', 'state'], registers: [register],
      collect() {
        this.reset();
        for (const r of self.fromDb(countInstances, [])) this.set({ source: r.source, state: r.state }, r.n);
      },
    });
    new Counter({
      name: 'latentwatch_webhook_deliveries_total', help: 'Webhook deliveries by outcome: delivered, failed (after retries, or refused), dropped (queue full).',
      labelNames: ['outcome'], registers: [register],
      collect() {
        // The sender's own counts only grow: mirror them rather than count twice.
        const s = self.d.webhookStats();
        this.reset();
        for (const outcome of ['delivered', 'failed', 'dropped'] as const) this.inc({ outcome }, s[outcome]);
      },
    });
    new Gauge({
      name: 'latentwatch_websocket_clients', help: 'Dashboards and other clients connected to /ws.', registers: [register],
      collect() {
        this.set(self.websocketClients());
      },
    });
    new Counter({
      name: 'latentwatch_training_runs_total', help: 'Finished training jobs by kind (train, recalibrate) and outcome (succeeded, failed, cancelled), since the database was created.',
      labelNames: ['kind', 'outcome'], registers: [register],
      collect() {
        this.reset();
        for (const r of self.fromDb(countFinishedJobs, [])) this.inc({ kind: r.kind, outcome: r.status }, r.n);
      },
    });
    new Gauge({
      name: 'latentwatch_active_model_info', help: 'The model scoring new images (value 1), with its input size, channels and the backend.',
      labelNames: ['model', 'backend', 'size', 'channels'], registers: [register],
      collect() {
        this.reset();
        const m = self.fromDb(() => self.d.activeModel(), undefined);
        if (m) this.set({ model: m.id, backend: self.d.backend, size: String(m.input_size), channels: String(m.channels) }, 1);
      },
    });
    processMetrics();
  }

  /** Counts an upload request's outcomes and how long it took (call after its commit). */
  uploadScored(source: string, outcomes: readonly UploadOutcome[], seconds: number): void {
    const label = this.sourceLabel(source);
    for (const o of outcomes) {
      if ('image' in o) this.imagesScored.inc({ source: label, verdict: o.image.anomaly ? 'anomaly' : 'normal' });
      else this.imagesRejected.inc({ source: label, code: o.error.code });
    }
    if (outcomes.some((o) => 'image' in o)) this.scoringSeconds.observe(seconds);
  }

  /** Where the WebSocket client count comes from (the /ws server, once attached). */
  trackWebSocketClients(count: () => number): void {
    this.websocketClients = count;
  }

  get contentType(): string {
    return this.register.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  async text(): Promise<string> {
    return (await this.register.metrics()) + (await processMetrics().metrics());
  }

  private sourceLabel(source: string): string {
    if (this.sources.has(source)) return source;
    if (this.sources.size >= MAX_SOURCES) return OTHER_SOURCE;
    this.sources.add(source);
    return source;
  }

  /** A scrape still answers when the database cannot: that part is left out, and health says why. */
  private fromDb<T>(read: (db: Db) => T, fallback: T): T {
    try {
      return read(this.d.db);
    } catch (err) {
      this.d.log.warn('metrics: could not read the database', { error: (err as Error).message });
      return fallback;
    }
  }
}

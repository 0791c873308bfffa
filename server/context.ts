// The composition root: builds every long-lived part once, in dependency
// order. Tests pass overrides (a clock, loggers, a database file) instead of
// mocking modules.
import path from 'node:path';
import type { Config } from './config.js';
import { fileIdentity, openDb, type Db, type FileIdentity } from './db/open.js';
import { AppError } from './domain/errors.js';
import { initBackend, type BackendInfo } from './ml/backend.js';
import { createLoggers, type Loggers } from './logger.js';
import { DIST_DIR } from './paths.js';
import { AuthService, bootstrapAdmin } from './services/auth.js';
import { EventBus } from './services/event-bus.js';
import { FileStore } from './services/file-store.js';
import { HealthService, leftoversWithoutDatabase, type HealthOptions } from './services/health.js';
import { Metrics } from './services/metrics.js';
import { ModelRegistry } from './services/model-registry.js';
import { Retention } from './services/retention.js';
import { ScoringService } from './services/scoring.js';
import { TrainingJobs } from './services/training-jobs.js';
import { WebhookSender, type WebhookOptions } from './services/webhooks.js';

export interface Clock {
  now(): number;
}

export interface Context {
  config: Config;
  db: Db;
  log: Loggers;
  clock: Clock;
  backend: BackendInfo;
  bus: EventBus;
  files: FileStore;
  registry: ModelRegistry;
  scoring: ScoringService;
  webhooks: WebhookSender;
  jobs: TrainingJobs;
  retention: Retention;
  health: HealthService;
  /** Prometheus metrics for GET /metrics. */
  metrics: Metrics;
  /** Who is calling: keys, sessions, the failed-key limit and the CSRF rule, shared by HTTP and /ws. */
  auth: AuthService;
  /** Set on first start when no admin key existed and none was configured: print it once. */
  generatedAdminKey?: string;
  close(): Promise<void>;
}

export interface ContextOverrides {
  log?: Loggers;
  clock?: Clock;
  webhookOptions?: Required<WebhookOptions>;
  workerFile?: string;
  health?: Partial<HealthOptions>;
  /** Start even when the data directory holds images but no database (a new, empty one is created). */
  allowNewDatabase?: boolean;
  files?: FileStore;
}

export async function createContext(config: Config, o: ContextOverrides = {}): Promise<Context> {
  const log = o.log ?? createLoggers();
  const clock = o.clock ?? { now: () => Date.now() };
  const now = () => clock.now();
  const backend = await initBackend(config.backend);
  log.ml.info('backend ready', { backend: backend.name, provider: backend.provider });

  const dbFile = path.join(config.dataDir, 'latentwatch.db');
  refuseToLoseDatabase(config.dataDir, dbFile, log, o.allowNewDatabase ?? config.allowNewDatabase);
  const db = openDb(dbFile);
  let dbIdentity: FileIdentity | null = null;
  try {
    dbIdentity = fileIdentity(dbFile);
  } catch {
    // health reports the database file as missing
  }
  const health = new HealthService({ db, dbFile, dbIdentity, dataDir: config.dataDir, log: log.db, now, options: o.health });
  const { generated } = bootstrapAdmin(db, config.adminKey, now());
  const bus = new EventBus(db, now);
  const auth = new AuthService({ db, bus, now, log: log.db });
  const files = o.files ?? new FileStore(config.dataDir);
  const registry = new ModelRegistry(db, config.modelsDir, bus, log.ml, now);
  await registry.syncFromDisk();
  const webhooks = new WebhookSender(log.webhooks, { ...o.webhookOptions, allowPrivate: config.webhookAllowPrivate });
  // Read at scrape time, once everything below exists.
  const metrics = new Metrics({
    db, log: log.http, backend: backend.name, activeModel: () => registry.activeRow(), webhookStats: () => webhooks.stats,
    queues: (): { scoring: number; training: number; webhooks: number } => ({ scoring: scoring.queueDepth, training: jobs.queueDepth, webhooks: webhooks.depth }),
  });
  const scoring = new ScoringService({ db, registry, files, bus, webhooks, log: log.ml, now, metrics });
  const jobs = new TrainingJobs({
    db, bus, registry, modelsDir: config.modelsDir, uploadsDir: path.join(config.dataDir, 'uploads'), backend: config.backend, log: log.jobs, now,
    workerFile: o.workerFile ?? path.join(DIST_DIR, 'server', 'services', 'training-worker.js'),
  });
  const retention = new Retention(db, files, config.retentionDays, log.retention, now);

  return {
    config, db, log, clock, backend, bus, files, registry, scoring, webhooks, jobs, retention, health, auth, metrics,
    generatedAdminKey: generated,
    async close() {
      health.stop();
      retention.stop();
      webhooks.close();
      await jobs.close();
      registry.close();
      db.close();
    },
  };
}

/**
 * A missing database beside stored images usually means it was deleted, lost
 * with a volume, or the data directory points somewhere unexpected. Creating a
 * fresh one would look healthy (new admin key, no images, rules or alerts)
 * while the old data sits orphaned, so it is refused unless asked for.
 */
function refuseToLoseDatabase(dataDir: string, dbFile: string, log: Loggers, allow: boolean): void {
  const found = leftoversWithoutDatabase(dataDir, dbFile);
  if (found.length === 0) return;
  const message =
    `${path.basename(dbFile)} is missing from the data directory ${path.resolve(dataDir)}, but it holds ${found.join(', ')} from an earlier database: ` +
    'starting would create a new, empty database (a new admin key, no images, rules or alerts) beside the old files. ' +
    `Check that LATENTWATCH_DATA_DIR points at the right directory and its volume is mounted, or restore ${path.basename(dbFile)} (with its -wal file, if any) from a backup. ` +
    'To start afresh on purpose, move images/ and derived/ out of the data directory.';
  log.db.error('no database file, but the data directory holds data from an earlier one', { found, allowed: allow, detail: message });
  if (!allow) throw new AppError('conflict', message);
}

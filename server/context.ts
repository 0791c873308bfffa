// The composition root: builds every long-lived part once, in dependency
// order. Tests pass overrides (a clock, loggers, a database file) instead of
// mocking modules.
import path from 'node:path';
import type { Config } from './config.js';
import { openDb, type Db } from './db/open.js';
import { initBackend, type BackendInfo } from './ml/backend.js';
import { createLoggers, type Loggers } from './logger.js';
import { DIST_DIR } from './paths.js';
import { bootstrapAdmin } from './services/auth.js';
import { EventBus } from './services/event-bus.js';
import { FileStore } from './services/file-store.js';
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
  /** Set on first start when no admin key existed and none was configured: print it once. */
  generatedAdminKey?: string;
  close(): Promise<void>;
}

export interface ContextOverrides {
  log?: Loggers;
  clock?: Clock;
  webhookOptions?: Required<WebhookOptions>;
  workerFile?: string;
  files?: FileStore;
}

export async function createContext(config: Config, o: ContextOverrides = {}): Promise<Context> {
  const log = o.log ?? createLoggers();
  const clock = o.clock ?? { now: () => Date.now() };
  const now = () => clock.now();
  const backend = await initBackend(config.backend);
  log.ml.info('backend ready', { backend: backend.name, provider: backend.provider });

  const db = openDb(path.join(config.dataDir, 'latentwatch.db'));
  const { generated } = bootstrapAdmin(db, config.adminKey, now());
  const bus = new EventBus(db, now);
  const files = o.files ?? new FileStore(config.dataDir);
  const registry = new ModelRegistry(db, config.modelsDir, bus, log.ml, now);
  await registry.syncFromDisk();
  const webhooks = new WebhookSender(log.webhooks, o.webhookOptions);
  const scoring = new ScoringService({ db, registry, files, bus, webhooks, log: log.ml, now });
  const jobs = new TrainingJobs({
    db, bus, registry, modelsDir: config.modelsDir, backend: config.backend, log: log.jobs, now,
    workerFile: o.workerFile ?? path.join(DIST_DIR, 'server', 'services', 'training-worker.js'),
  });
  const retention = new Retention(db, files, config.retentionDays, log.retention, now);

  return {
    config, db, log, clock, backend, bus, files, registry, scoring, webhooks, jobs, retention,
    generatedAdminKey: generated,
    async close() {
      retention.stop();
      webhooks.close();
      await jobs.close();
      registry.close();
      db.close();
    },
  };
}

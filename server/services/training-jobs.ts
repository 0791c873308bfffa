// Training jobs: one at a time in a worker thread, the rest queued. Progress
// is stored on the job and broadcast; a worker that crashes fails its job and
// leaves the server up.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { finishJob, getJob, insertJob, jobsWithStatus, markJobRunning, setJobProgress, type JobRow } from '../db/jobs.js';
import type { Db } from '../db/open.js';
import { AppError } from '../domain/errors.js';
import type { EpochRecord, TrainOptions, TrainProgress } from '../domain/types.js';
import type { JobView } from '../domain/wire.js';
import type { BackendName } from '../ml/backend.js';
import type { Logger } from '../logger.js';
import type { EventBus } from './event-bus.js';
import type { ModelRegistry } from './model-registry.js';
import type { WorkerInput, WorkerMessage } from './training-worker.js';

export interface TrainingJobsDeps {
  db: Db;
  bus: EventBus;
  registry: ModelRegistry;
  modelsDir: string;
  /** Where uploaded training sets are streamed; each is deleted when its job ends. */
  uploadsDir: string;
  workerFile: string;
  backend?: BackendName;
  log: Logger;
  now: () => number;
}

export function jobView(j: JobRow): JobView {
  return {
    id: j.id, status: j.status, source: j.source, options: JSON.parse(j.options) as TrainOptions,
    kind: j.parent_model ? 'recalibrate' : 'train', parentModel: j.parent_model,
    modelId: j.model_id, progress: j.progress ? JSON.parse(j.progress) : null,
    curves: JSON.parse(j.curves) as EpochRecord[], error: j.error,
    createdAt: j.created_at, startedAt: j.started_at, finishedAt: j.finished_at,
  };
}

export class TrainingJobs {
  private running: { id: number; worker: Worker; cancelled: boolean } | null = null;
  private closed = false;
  private lastStepBroadcast = 0;
  /** Wall-clock start, compared with folder times on disk (not the injectable clock). */
  private readonly startedAt = Date.now();

  constructor(private readonly d: TrainingJobsDeps) {
    // A job still 'running' belongs to a process that died: it cannot resume.
    for (const j of jobsWithStatus(d.db, ['running'])) {
      finishJob(d.db, j.id, { status: 'failed', error: 'the server stopped while this job was running', now: d.now() });
    }
  }

  get uploadsDir(): string {
    return this.d.uploadsDir;
  }

  /** Starts queued jobs left from a previous run, after removing uploads no queued job needs. */
  start(): void {
    void this.removeStaleUploads().finally(() => this.next());
  }

  private isUpload(dir: string): boolean {
    return path.dirname(path.resolve(dir)) === path.resolve(this.d.uploadsDir) && path.basename(dir).startsWith('train-');
  }

  private async removeUpload(dir: string): Promise<void> {
    if (!this.isUpload(dir)) return; // a server-side dataset is never ours to delete
    await rm(dir, { recursive: true, force: true }).catch((err) => this.d.log.warn('could not remove a training upload', { dir: path.basename(dir), error: (err as Error).message }));
  }

  private async removeStaleUploads(): Promise<void> {
    const needed = new Set(jobsWithStatus(this.d.db, ['queued', 'running']).map((j) => path.resolve(j.data_dir)));
    const entries = await readdir(this.d.uploadsDir).catch(() => [] as string[]);
    for (const name of entries) {
      const dir = path.join(this.d.uploadsDir, name);
      if (!name.startsWith('train-') || needed.has(path.resolve(dir))) continue;
      // A folder made since this process started may be an upload still arriving.
      const made = await stat(dir).then((st) => st.mtimeMs, () => Infinity);
      if (made < this.startedAt) await this.removeUpload(dir);
    }
  }

  submit(o: { options: TrainOptions; dataDir: string; source: string; createdBy: number | null; parentModel?: string }): JobRow {
    const id = insertJob(this.d.db, { options: JSON.stringify(o.options), dataDir: o.dataDir, source: o.source, createdBy: o.createdBy, now: this.d.now(), parentModel: o.parentModel });
    this.d.log.info('training job queued', { id, source: o.source });
    this.next();
    return getJob(this.d.db, id)!;
  }

  get(id: number): JobRow {
    const job = getJob(this.d.db, id);
    if (!job) throw new AppError('not_found', `no training job ${id}`);
    return job;
  }

  cancel(id: number): JobRow {
    const job = this.get(id);
    if (job.status === 'queued') {
      finishJob(this.d.db, id, { status: 'cancelled', now: this.d.now() });
      void this.removeUpload(job.data_dir);
      this.d.bus.publish('training.finished', jobView(this.get(id)));
    } else if (job.status === 'running' && this.running?.id === id) {
      this.running.cancelled = true;
      this.running.worker.postMessage('cancel');
    } else {
      throw new AppError('conflict', `training job ${id} has already ${job.status}`);
    }
    return this.get(id);
  }

  get queueDepth(): number {
    return jobsWithStatus(this.d.db, ['queued']).length + (this.running ? 1 : 0);
  }

  private next(): void {
    if (this.running || this.closed) return;
    const [job] = jobsWithStatus(this.d.db, ['queued']);
    if (job) this.run(job);
  }

  private run(job: JobRow): void {
    const { db, log } = this.d;
    const modelId = `m${job.id}-${new Date(this.d.now()).toISOString().slice(0, 19).replace(/[-:T]/g, '')}`;
    const input: WorkerInput = {
      dataDir: job.data_dir, source: job.source, outDir: path.join(this.d.modelsDir, modelId),
      options: JSON.parse(job.options) as TrainOptions, backend: this.d.backend,
      ...(job.parent_model ? { parentDir: this.d.registry.get(job.parent_model).dir } : {}),
    };
    markJobRunning(db, job.id, this.d.now());
    const worker = new Worker(this.d.workerFile, { workerData: input });
    this.running = { id: job.id, worker, cancelled: false };
    const curves: EpochRecord[] = [];
    let outcome: WorkerMessage | null = null;
    log.info('training job started', { id: job.id, modelId });

    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') this.onProgress(job.id, m.event as TrainProgress, curves);
      else outcome = m;
    });
    worker.on('error', (err) => {
      outcome = { type: 'error', error: { code: 'internal', message: `training worker crashed: ${err.message}` } };
    });
    worker.on('exit', (code) => {
      this.finish(job.id, outcome ?? { type: 'error', error: { code: 'internal', message: `training worker exited with code ${code}` } })
        .catch((err) => log.error('training job bookkeeping failed', { id: job.id, error: err instanceof Error ? err.stack : String(err) }));
    });
  }

  private onProgress(id: number, e: TrainProgress, curves: EpochRecord[]): void {
    const now = this.d.now();
    if (e.type === 'epoch') {
      const { type: _t, epochs: _e, best: _b, etaSeconds: _eta, ...record } = e;
      curves.push(record);
      setJobProgress(this.d.db, id, JSON.stringify(e), JSON.stringify(curves));
    } else {
      // Steps and loading come often: keep the job row current, broadcast at most twice a second.
      setJobProgress(this.d.db, id, JSON.stringify(e));
      if (now - this.lastStepBroadcast < 500) return;
    }
    this.lastStepBroadcast = now;
    this.d.bus.publish('training.progress', { jobId: id, ...e });
  }

  private async finish(id: number, m: WorkerMessage): Promise<void> {
    // Shutting down: the database may already be closed. The job stays
    // 'running', and the next start marks it failed (see the constructor).
    if (this.closed) return;
    const { db, log } = this.d;
    const cancelled = this.running?.cancelled ?? false;
    this.running = null;
    const job = this.get(id);
    try {
      if (m.type === 'done' && cancelled) {
        // Cancelled after its work was done (a recalibration does not stop midway): discard the result.
        await rm(m.dir, { recursive: true, force: true });
        finishJob(db, id, { status: 'cancelled', now: this.d.now() });
        log.info('training job cancelled after it finished; its model was discarded', { id });
      } else if (m.type === 'done') {
        await this.d.registry.register(m.dir);
        finishJob(db, id, { status: 'succeeded', modelId: m.modelId, now: this.d.now() });
        if (!this.d.registry.activeRow()) await this.d.registry.activate(m.modelId, null);
        log.info('training job succeeded', { id, modelId: m.modelId });
      } else if (m.type === 'error') {
        const status = cancelled || m.error.code === 'cancelled' ? 'cancelled' : 'failed';
        finishJob(db, id, { status, error: status === 'failed' ? m.error.message : undefined, now: this.d.now() });
        if (m.stack) log.error('training job failed with an internal error', { id, error: m.stack });
        else log.warn(`training job ${status}`, { id, error: m.error.message });
      }
    } catch (err) {
      if (this.closed) return;
      log.error('training job could not be finished', { id, error: err instanceof Error ? err.stack : String(err) });
      finishJob(db, id, { status: 'failed', error: 'finishing the job failed with an internal error (see the server log)', now: this.d.now() });
    }
    // Only once the outcome is recorded: the uploaded images are not needed any more.
    await this.removeUpload(job.data_dir);
    if (!this.closed) {
      this.d.bus.publish('training.finished', jobView(this.get(id)));
      this.next();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.running) {
      const { worker } = this.running;
      await worker.terminate();
    }
  }
}

// Training jobs: queued -> running -> succeeded | failed | cancelled.
import type { Db } from './open.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobRow {
  id: number;
  status: JobStatus;
  options: string;
  data_dir: string;
  source: string;
  model_id: string | null;
  progress: string | null;
  curves: string;
  error: string | null;
  created_by: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  /** Set for a recalibration job: the model whose weights are recalibrated. */
  parent_model: string | null;
}

export function insertJob(db: Db, j: { options: string; dataDir: string; source: string; createdBy: number | null; now: number; parentModel?: string | null }): number {
  return Number(
    db.prepare("INSERT INTO training_jobs (status, options, data_dir, source, created_by, created_at, parent_model) VALUES ('queued', ?, ?, ?, ?, ?, ?)")
      .run(j.options, j.dataDir, j.source, j.createdBy, j.now, j.parentModel ?? null).lastInsertRowid,
  );
}

export function getJob(db: Db, id: number): JobRow | undefined {
  return db.prepare('SELECT * FROM training_jobs WHERE id = ?').get(id) as JobRow | undefined;
}

export function listJobs(db: Db, limit = 50): JobRow[] {
  return db.prepare('SELECT * FROM training_jobs ORDER BY id DESC LIMIT ?').all(limit) as JobRow[];
}

export function jobsWithStatus(db: Db, statuses: JobStatus[]): JobRow[] {
  return db.prepare(`SELECT * FROM training_jobs WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY id`).all(...statuses) as JobRow[];
}

export function markJobRunning(db: Db, id: number, now: number): void {
  db.prepare("UPDATE training_jobs SET status = 'running', started_at = ? WHERE id = ?").run(now, id);
}

export function setJobProgress(db: Db, id: number, progress: string, curves?: string): void {
  if (curves === undefined) db.prepare('UPDATE training_jobs SET progress = ? WHERE id = ?').run(progress, id);
  else db.prepare('UPDATE training_jobs SET progress = ?, curves = ? WHERE id = ?').run(progress, curves, id);
}

export function finishJob(db: Db, id: number, f: { status: Exclude<JobStatus, 'queued' | 'running'>; modelId?: string; error?: string; now: number }): void {
  db.prepare('UPDATE training_jobs SET status = ?, model_id = ?, error = ?, finished_at = ? WHERE id = ?')
    .run(f.status, f.modelId ?? null, f.error ?? null, f.now, id);
}

/** Finished jobs by kind (train, recalibrate) and outcome, over the whole history. */
export function countFinishedJobs(db: Db): { kind: 'train' | 'recalibrate'; status: Exclude<JobStatus, 'queued' | 'running'>; n: number }[] {
  return db.prepare(
    `SELECT CASE WHEN parent_model IS NULL THEN 'train' ELSE 'recalibrate' END AS kind, status, COUNT(*) AS n
     FROM training_jobs WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY kind, status`,
  ).all() as never;
}

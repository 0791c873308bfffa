// Scored images: one row per image received, with every score and the paths
// of its stored files (relative to the data directory).
import type { Db } from './open.js';

export interface ImageRow {
  id: number;
  received_at: number;
  source: string;
  original_name: string;
  sha256: string;
  format: string;
  width: number;
  height: number;
  bytes: number;
  model_id: string;
  kl: number;
  recon: number;
  elbo: number;
  p_kl: number;
  p_recon: number;
  p_elbo: number;
  p_combined: number;
  pct_kl: number;
  pct_recon: number;
  pct_elbo: number;
  anomaly: 0 | 1;
  original_path: string;
  thumbnail_path: string;
  reconstruction_path: string;
  heatmap_path: string;
}

export type NewImage = Omit<ImageRow, 'id'>;

const COLUMNS = [
  'received_at', 'source', 'original_name', 'sha256', 'format', 'width', 'height', 'bytes', 'model_id',
  'kl', 'recon', 'elbo', 'p_kl', 'p_recon', 'p_elbo', 'p_combined', 'pct_kl', 'pct_recon', 'pct_elbo', 'anomaly',
  'original_path', 'thumbnail_path', 'reconstruction_path', 'heatmap_path',
] as const;

export function insertImage(db: Db, img: NewImage): number {
  const sql = `INSERT INTO images (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`;
  return Number(db.prepare(sql).run(img).lastInsertRowid);
}

export function getImage(db: Db, id: number): ImageRow | undefined {
  return db.prepare('SELECT * FROM images WHERE id = ?').get(id) as ImageRow | undefined;
}

export interface ImageFilter {
  since?: number;
  until?: number;
  source?: string;
  anomalous?: boolean;
  /** Only images whose original file name contains this text (case-sensitive, no wildcards). */
  name?: string;
  /** Only images with an id below this (the previous page's last id). */
  before?: number;
  limit: number;
}

/** Newest first. Every value is a bound parameter, whatever characters it holds. */
export function listImages(db: Db, f: ImageFilter): ImageRow[] {
  const where: string[] = [];
  const params: Record<string, unknown> = { limit: f.limit };
  if (f.since !== undefined) { where.push('received_at >= @since'); params.since = f.since; }
  if (f.until !== undefined) { where.push('received_at < @until'); params.until = f.until; }
  if (f.source !== undefined) { where.push('source = @source'); params.source = f.source; }
  if (f.anomalous) where.push('anomaly = 1');
  if (f.name !== undefined) { where.push('instr(original_name, @name) > 0'); params.name = f.name; }
  if (f.before !== undefined) { where.push('id < @before'); params.before = f.before; }
  const sql = `SELECT * FROM images ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`;
  return db.prepare(sql).all(params) as ImageRow[];
}

export function countImages(db: Db): number {
  return (db.prepare('SELECT COUNT(*) AS n FROM images').get() as { n: number }).n;
}

/** Images older than cutoff, with the files they use, oldest first. */
export function imagesBefore(db: Db, cutoff: number, limit: number): Pick<ImageRow, 'id' | 'original_path' | 'thumbnail_path' | 'reconstruction_path' | 'heatmap_path'>[] {
  return db.prepare('SELECT id, original_path, thumbnail_path, reconstruction_path, heatmap_path FROM images WHERE received_at < ? ORDER BY id LIMIT ?').all(cutoff, limit) as never;
}

export function deleteImages(db: Db, ids: number[]): void {
  const del = db.prepare('DELETE FROM images WHERE id = ?');
  for (const id of ids) del.run(id);
}

/** Whether any remaining row still points at this stored file (content-addressed files are shared). */
export function fileInUse(db: Db, rel: string): boolean {
  return db.prepare(
    'SELECT 1 FROM images WHERE original_path = @p OR thumbnail_path = @p OR reconstruction_path = @p OR heatmap_path = @p LIMIT 1',
  ).get({ p: rel }) !== undefined;
}

export type ScoreColumn = 'kl' | 'recon' | 'elbo';
const SCORE_COLUMNS: readonly ScoreColumn[] = ['kl', 'recon', 'elbo'];

/** Count, anomalies and each score's range over every image since `since` scored by `modelId` (null: by any model). */
export function scoreSummary(db: Db, since: number, modelId: string | null): { images: number; anomalies: number; range: Record<ScoreColumn, { lo: number | null; hi: number | null }> } {
  const cols = SCORE_COLUMNS.map((c) => `MIN(${c}) AS ${c}_lo, MAX(${c}) AS ${c}_hi`).join(', ');
  const r = db.prepare(`SELECT COUNT(*) AS n, COALESCE(SUM(anomaly), 0) AS a, ${cols} FROM images WHERE received_at >= ? AND (? IS NULL OR model_id = ?)`).get(since, modelId, modelId) as Record<string, number | null>;
  const range = {} as Record<ScoreColumn, { lo: number | null; hi: number | null }>;
  for (const c of SCORE_COLUMNS) range[c] = { lo: r[`${c}_lo`], hi: r[`${c}_hi`] };
  return { images: Number(r.n), anomalies: Number(r.a), range };
}

/** Counts per bin of one score over [lo, hi] (values outside go to the end bins), counted in SQL over every matching row. */
export function scoreHistogram(db: Db, since: number, modelId: string, column: ScoreColumn, lo: number, hi: number, bins: number): number[] {
  if (!SCORE_COLUMNS.includes(column)) throw new Error(`not a score column: ${column}`);
  const width = (hi - lo) / bins || 1;
  const rows = db.prepare(
    `SELECT MIN(@last, MAX(0, CAST((${column} - @lo) / @width AS INTEGER))) AS bin, COUNT(*) AS n
     FROM images WHERE received_at >= @since AND model_id = @model GROUP BY bin`,
  ).all({ last: bins - 1, lo, width, since, model: modelId }) as { bin: number; n: number }[];
  const counts = new Array<number>(bins).fill(0);
  for (const r of rows) counts[r.bin] += r.n;
  return counts;
}

export function countsPerHour(db: Db, since: number): { hour: number; images: number; anomalies: number }[] {
  return db.prepare(
    `SELECT (received_at / 3600000) * 3600000 AS hour, COUNT(*) AS images, SUM(anomaly) AS anomalies
     FROM images WHERE received_at >= ? GROUP BY hour ORDER BY hour`,
  ).all(since) as never;
}

export interface SourceStatsRow {
  source: string;
  first_seen: number;
  last_seen: number;
  images: number;
  anomalies: number;
}

/** Per-source totals of the stored images (kept by triggers on images, migration 0004), by name. */
export function listSourceStats(db: Db): SourceStatsRow[] {
  return db.prepare('SELECT source, first_seen, last_seen, images, anomalies FROM source_stats ORDER BY source').all() as SourceStatsRow[];
}

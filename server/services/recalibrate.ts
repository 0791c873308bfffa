// Recalibration without retraining: when a camera drifts (new lighting, a
// cleaned lens), normal images start to score differently and false alarms
// rise. Scoring a set of recent normal images with the same weights and
// rebuilding the p-value tables and thresholds from them takes a minute,
// where retraining takes an hour. The result is a new model version with the
// same weights, a new calibration and a lineage pointing at its parent.
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { listImages } from '../db/images.js';
import type { Db } from '../db/open.js';
import { assess } from '../domain/calibration.js';
import { AppError } from '../domain/errors.js';
import type { ModelMeta } from '../domain/types.js';
import { inputCount, scoreInput, type Detector, type ModelInput } from './detector.js';
import type { FileStore } from './file-store.js';
import { calibrationFromScores } from './fit.js';

/** Fewer images cannot say where the top 1 % of normal scores lies. */
export const MIN_RECALIBRATION_IMAGES = 50;

export interface RecalibrationRequest {
  /** The parent model's directory (weights are copied from it). */
  parentDir: string;
  outDir: string;
  /** What the images are, recorded in the lineage (a folder, a source and time range). */
  source: string;
  now?: () => Date;
}

/**
 * The new version's meta.json, and the share of these normal images the
 * current calibration flags (the drift being corrected). Scores them once.
 */
export function recalibratedMeta(d: Detector, input: ModelInput, req: Pick<RecalibrationRequest, 'outDir' | 'source' | 'now'>): { meta: ModelMeta; flaggedBefore: number } {
  const { meta } = d;
  const count = inputCount(input);
  if (!Array.isArray(input) && (input.size !== meta.input.size || input.channels !== meta.input.channels)) {
    throw new AppError('bad_request', `images must be decoded at the model's ${meta.input.size}x${meta.input.size}x${meta.input.channels}`);
  }
  if (count < MIN_RECALIBRATION_IMAGES) {
    throw new AppError('not_enough_images', `need at least ${MIN_RECALIBRATION_IMAGES} readable normal images to recalibrate, got ${count}`);
  }
  const scores = scoreInput(d, input).scores;
  const old = meta.calibration;
  const flaggedBefore = scores.filter((s) => assess(old, s).anomaly).length / scores.length;
  const calibration = calibrationFromScores(scores, old.falseAlarmRate, { twoSided: old.twoSided, local: old.local, heatmapScale: old.heatmapScale });
  const at = (req.now ?? (() => new Date()))();
  return {
    meta: {
      ...meta,
      id: path.basename(path.resolve(req.outDir)),
      createdAt: at.toISOString(),
      calibration,
      lineage: { parent: meta.id, kind: 'recalibration', source: req.source, images: count, at: at.toISOString() },
    },
    flaggedBefore,
  };
}

/** Writes the new version: the parent's weights and topology, the new meta.json last. */
export async function writeRecalibrated(req: RecalibrationRequest, meta: ModelMeta): Promise<void> {
  const tmp = `${path.resolve(req.outDir)}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    for (const f of ['model.json', 'weights.bin']) await copyFile(path.join(req.parentDir, f), path.join(tmp, f));
    await writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 1));
    await rename(tmp, req.outDir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new AppError('conflict', `${path.basename(req.outDir)} already exists: choose another name`);
    }
    throw err;
  }
}

export interface StoredSelection {
  source?: string;
  since?: number;
  until?: number;
  limit: number;
}

/**
 * Stored originals chosen for a recalibration job, linked (not copied) into a
 * fresh job folder under `uploadsDir`, which the job removes when it ends.
 * Distinct contents only: the same bytes uploaded twice count once.
 */
export async function linkStoredImages(db: Db, files: FileStore, uploadsDir: string, sel: StoredSelection): Promise<{ dir: string; count: number }> {
  const rows = listImages(db, { source: sel.source, since: sel.since, until: sel.until, limit: sel.limit });
  const originals = [...new Map(rows.map((r) => [r.sha256, r.original_path])).values()];
  if (originals.length < MIN_RECALIBRATION_IMAGES) {
    throw new AppError('not_enough_images', `need at least ${MIN_RECALIBRATION_IMAGES} distinct stored images to recalibrate; that selection has ${originals.length}`);
  }
  const dir = path.join(uploadsDir, `train-recal-${Date.now()}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  try {
    let i = 0;
    for (const rel of originals) {
      await symlink(files.absolute(rel), path.join(dir, `${String(i++).padStart(5, '0')}${path.extname(rel)}`));
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { dir, count: originals.length };
}

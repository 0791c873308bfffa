// A trained model with its calibration: scores images into calibrated
// results, one file at a time or in batches, and evaluates AUROC.
import { auroc, assess } from '../domain/calibration.js';
import { AppError, errorBody } from '../domain/errors.js';
import type { Assessment, Calibration, Channel, ModelMeta, RawScores } from '../domain/types.js';
import { CHANNELS } from '../domain/types.js';
import { loadImages, type ImageSet, type LoadFailure } from '../ml/dataset.js';
import { loadModel } from '../ml/model-store.js';
import { scoreImages, type ScoringModel } from '../ml/score.js';
import type { Vae } from '../ml/vae.js';

export interface Detector {
  vae: Vae;
  meta: ModelMeta;
}

export type ScoredImage = RawScores & Assessment;

export type FileResult =
  | ({ file: string } & ScoredImage)
  | { file: string; error: { code: string; message: string } };

export async function loadDetector(dir: string): Promise<Detector> {
  return loadModel(dir);
}

/** Frees the model's weights; the detector must not be used afterwards. */
export function disposeDetector(d: Detector): void {
  d.vae.model.dispose();
}

export function scoringModel(d: Detector): ScoringModel {
  return { vae: d.vae, likelihood: d.meta.likelihood.kind, sigma2: d.meta.likelihood.sigma2, local: d.meta.calibration.local };
}

export function scoreSet(d: Detector, set: ImageSet, batchSize = 64): ScoredImage[] {
  return scoreImages(scoringModel(d), set, { batchSize }).scores.map((s) => ({ ...s, ...assess(d.meta.calibration, s) }));
}

/**
 * Scores files in batches, reporting each result in input order as soon as
 * its batch is done. An unreadable file yields an error result; the rest go on.
 */
export async function scoreFiles(
  d: Detector,
  files: readonly string[],
  onResult: (r: FileResult, index: number) => void,
  batchSize = 64,
): Promise<void> {
  const opts = { size: d.meta.input.size, channels: d.meta.input.channels };
  for (let start = 0; start < files.length; start += batchSize) {
    const chunk = files.slice(start, start + batchSize);
    const loaded = await loadImages(chunk, opts);
    const scored = scoreSet(d, loaded.set, batchSize);
    const results = new Map<string, FileResult>();
    loaded.files.forEach((file, k) => results.set(file, { file, ...scored[k] }));
    for (const f of loaded.failures) results.set(f.file, { file: f.file, error: errorBody(f.error) });
    chunk.forEach((file, i) => onResult(results.get(file)!, start + i));
  }
}

/** How an image ranks on a channel for AUROC: a two-sided channel by its p-value, as the verdict reads it. */
export function channelRank(cal: Calibration, ch: Channel): (s: ScoredImage) => number {
  return cal.twoSided?.includes(ch) ? (s) => -Math.log(s.p[ch]) : (s) => s[ch];
}

export interface Evaluation {
  auroc: Record<Channel | 'combined', number>;
  normal: number;
  anomalous: number;
  /** Share of normal images flagged anomalous, and of anomalous images caught, by the verdict. */
  falseAlarmRate: number;
  detectionRate: number;
  failures: { file: string; error: { code: string; message: string } }[];
}

/** -log p grows with evidence; used to rank by the combined p-value. */
function combinedScore(s: ScoredImage): number {
  return -Math.log(s.p.combined);
}

export function evaluateSets(d: Detector, normal: ImageSet, anomalous: ImageSet): Omit<Evaluation, 'failures'> {
  const neg = scoreSet(d, normal);
  const pos = scoreSet(d, anomalous);
  const result = {} as Evaluation['auroc'];
  for (const ch of CHANNELS) {
    const rank = channelRank(d.meta.calibration, ch);
    result[ch] = auroc(neg.map(rank), pos.map(rank));
  }
  result.combined = auroc(neg.map(combinedScore), pos.map(combinedScore));
  return {
    auroc: result,
    normal: neg.length,
    anomalous: pos.length,
    falseAlarmRate: neg.filter((s) => s.anomaly).length / Math.max(1, neg.length),
    detectionRate: pos.filter((s) => s.anomaly).length / Math.max(1, pos.length),
  };
}

export async function evaluateFiles(d: Detector, normalFiles: string[], anomalousFiles: string[]): Promise<Evaluation> {
  const opts = { size: d.meta.input.size, channels: d.meta.input.channels };
  const [normal, anomalous] = [await loadImages(normalFiles, opts), await loadImages(anomalousFiles, opts)];
  for (const [name, loaded] of [['normal', normal], ['anomalous', anomalous]] as const) {
    if (loaded.set.count === 0) throw new AppError('not_enough_images', `no readable ${name} images to evaluate`);
  }
  const failures = [...normal.failures, ...anomalous.failures].map((f: LoadFailure) => ({ file: f.file, error: f.error.toJSON() }));
  return { ...evaluateSets(d, normal.set, anomalous.set), failures };
}

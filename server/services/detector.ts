// A trained model with its calibration: scores images into calibrated
// results, one file at a time or in batches, and evaluates AUROC.
import { auroc, assess } from '../domain/calibration.js';
import { AppError, errorBody } from '../domain/errors.js';
import type { Assessment, Calibration, Channel, ModelMeta, RawScores } from '../domain/types.js';
import { CHANNELS } from '../domain/types.js';
import { loadImages, loadPictures, type ImageSet, type LoadFailure } from '../ml/dataset.js';
import { loadModel } from '../ml/model-store.js';
import { scoreImages, scoreTiled, type ScoredImages, type ScoreOptions, type ScoringModel } from '../ml/score.js';
import type { Picture } from '../ml/tiles.js';
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

/**
 * Decoded images as the model reads them: one contiguous set at its square
 * input, or pictures at the working resolution of a tiled model.
 */
export type ModelInput = ImageSet | Picture[];

export function inputCount(input: ModelInput): number {
  return Array.isArray(input) ? input.length : input.count;
}

/** Decodes files for this model; unreadable ones are failures, in file order. */
export async function loadInput(
  shape: ModelMeta['input'],
  files: readonly string[],
  onProgress?: (loaded: number, total: number) => void,
): Promise<{ input: ModelInput; files: string[]; failures: LoadFailure[] }> {
  const { size, channels, tiling } = shape;
  if (tiling) {
    const loaded = await loadPictures(files, { size, channels, resolution: tiling.resolution }, onProgress);
    return { input: loaded.pictures, files: loaded.files, failures: loaded.failures };
  }
  const loaded = await loadImages(files, { size, channels }, onProgress);
  return { input: loaded.set, files: loaded.files, failures: loaded.failures };
}

/** Raw scores (and maps) of decoded images, whole or tiled as the model wants. */
export function scoreInput(d: Detector, input: ModelInput, o: ScoreOptions = {}): ScoredImages {
  const m = scoringModel(d);
  const { tiling, size } = d.meta.input;
  if (!Array.isArray(input)) return scoreImages(m, input, o);
  if (!tiling || !m.local) throw new Error('pictures can only be scored by a tiled model');
  return scoreTiled({ ...m, local: m.local }, input, size, tiling.stride, o);
}

export function scoreSet(d: Detector, input: ModelInput, batchSize = 64): ScoredImage[] {
  return scoreInput(d, input, { batchSize }).scores.map((s) => ({ ...s, ...assess(d.meta.calibration, s) }));
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
  // Tiled models: fewer files per chunk, each brings dozens of tiles.
  const perChunk = d.meta.input.tiling ? Math.max(1, Math.floor(batchSize / 8)) : batchSize;
  for (let start = 0; start < files.length; start += perChunk) {
    const chunk = files.slice(start, start + perChunk);
    const loaded = await loadInput(d.meta.input, chunk);
    const scored = scoreSet(d, loaded.input, batchSize);
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

export function evaluateSets(d: Detector, normal: ModelInput, anomalous: ModelInput): Omit<Evaluation, 'failures'> {
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
  const [normal, anomalous] = [await loadInput(d.meta.input, normalFiles), await loadInput(d.meta.input, anomalousFiles)];
  for (const [name, loaded] of [['normal', normal], ['anomalous', anomalous]] as const) {
    if (inputCount(loaded.input) === 0) throw new AppError('not_enough_images', `no readable ${name} images to evaluate`);
  }
  const failures = [...normal.failures, ...anomalous.failures].map((f: LoadFailure) => ({ file: f.file, error: f.error.toJSON() }));
  return { ...evaluateSets(d, normal.input, anomalous.input), failures };
}

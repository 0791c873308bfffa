// Fitting a detector: split off held-out normal images, train the VAE on the
// rest, then calibrate every channel on the held-out split (docs/architecture.md,
// Scores and calibration).
import { AppError } from '../domain/errors.js';
import { buildCalibration } from '../domain/calibration.js';
import type { Calibration, Channel, LocalMapStats, ModelMeta, RawScores, TrainOptions, TrainProgress } from '../domain/types.js';
import { subset, type ImageSet } from '../ml/dataset.js';
import { mulberry32, shuffledIndices } from '../ml/random.js';
import { fitLocalStats } from '../ml/local-maps.js';
import { scoreImages, type ScoringModel } from '../ml/score.js';
import { trainVae, type TrainResult } from '../ml/train.js';
import { datasetBytes, gib, MAX_DATASET_BYTES, MAX_STEP_BYTES, trainingStepBytes } from '../ml/memory.js';
import { createVae, validateVaeOptions, type Vae } from '../ml/vae.js';

export const MIN_TRAINING_IMAGES = 20;

/** batchSize 0 means: pick one from the number of training images (see autoBatchSize). */
export const AUTO_BATCH = 0;

/**
 * The largest of 64, 32, 16 that still gives an epoch at least 20 steps: small
 * data sets need more optimizer steps more than they need big batches
 * (measured on the fixtures: batch 16 took recon AUROC from 0.86 to 0.90 at
 * the same 30 epochs).
 */
export function autoBatchSize(trainImages: number): number {
  for (const b of [64, 32]) if (trainImages / b >= 20) return b;
  return 16;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  size: 64,
  channels: 1,
  latent: 32,
  baseFilters: 32,
  beta: 1,
  likelihood: 'gaussian',
  decoderSigma: null,
  epochs: 30,
  batchSize: AUTO_BATCH,
  learningRate: 1e-3,
  validationFraction: 0.1,
  minValidation: 50,
  patience: 5,
  seed: 42,
  falseAlarmRate: 0.01,
};

export function validateTrainOptions(o: TrainOptions): void {
  validateVaeOptions({ ...o, seed: o.seed });
  const bad = (msg: string) => new AppError('invalid_option', msg);
  const posInt = (v: number, name: string, max: number) => {
    if (!Number.isInteger(v) || v < 1 || v > max) throw bad(`${name} must be an integer from 1 to ${max}, got ${v}`);
  };
  posInt(o.epochs, '--epochs', 10_000);
  if (o.batchSize !== AUTO_BATCH) posInt(o.batchSize, '--batch', 4096);
  posInt(o.patience, '--patience', 10_000);
  if (!(o.beta > 0 && o.beta <= 1000)) throw bad(`--beta must be a number above 0 and at most 1000, got ${o.beta}`);
  if (!(o.learningRate > 0 && o.learningRate < 1)) throw bad(`learning rate must be in (0, 1), got ${o.learningRate}`);
  if (!(o.validationFraction > 0 && o.validationFraction < 1)) throw bad(`validation fraction must be in (0, 1), got ${o.validationFraction}`);
  if (!(o.falseAlarmRate > 0 && o.falseAlarmRate < 1)) throw bad(`false-alarm rate must be in (0, 1), got ${o.falseAlarmRate}`);
  if (o.likelihood !== 'gaussian' && o.likelihood !== 'bernoulli') throw bad(`likelihood must be gaussian or bernoulli, got ${o.likelihood}`);
  if (o.decoderSigma !== null && !(o.decoderSigma > 0 && o.decoderSigma <= 10)) throw bad(`--sigma must be a number in (0, 10], got ${o.decoderSigma}`);
  if (!Number.isInteger(o.seed) || o.seed < 0) throw bad(`--seed must be a non-negative integer, got ${o.seed}`);
  // The automatic batch is at most 64; check the largest it can pick.
  const step = trainingStepBytes({ ...o, batchSize: o.batchSize === AUTO_BATCH ? 64 : o.batchSize });
  if (step > MAX_STEP_BYTES) {
    throw bad(`these options need about ${gib(step)} per training step, more than the ${gib(MAX_STEP_BYTES)} a backend can hold: lower --batch, --filters, --latent or --size`);
  }
}

/** Refuses a training set whose decoded pixels would not fit in memory. */
export function checkTrainingMemory(o: TrainOptions, images: number): void {
  const bytes = datasetBytes(o, images);
  if (bytes > MAX_DATASET_BYTES) {
    throw new AppError('invalid_option', `${images} images at ${o.size}x${o.size}x${o.channels} need about ${gib(bytes)} of memory once decoded, more than the ${gib(MAX_DATASET_BYTES)} allowed: train on fewer images or a smaller --size`);
  }
}

/** 10 % by default, but at least `minValidation` (capped at a quarter of the data). */
export function validationCount(n: number, fraction: number, minValidation: number): number {
  return Math.max(Math.ceil(fraction * n), Math.min(minValidation, Math.floor(n / 4)));
}

export interface FitHooks {
  onProgress?: (event: TrainProgress) => void;
  signal?: AbortSignal;
}

export interface FittedDetector {
  vae: Vae;
  likelihood: ModelMeta['likelihood'];
  calibration: Calibration;
  training: TrainResult;
  /** The options as used, with the batch size resolved. */
  options: TrainOptions;
  split: { train: number; validation: number };
}

/**
 * Scores held-out normal images and calibrates every channel on them. With
 * local maps the heatmap's colour scale is the recon threshold (a region as
 * bad as what raises an alert sits near the top); older models keep
 * `heatmapScale`.
 */
export function calibrateOn(model: ScoringModel, set: ImageSet, falseAlarmRate: number, o: { twoSided?: Channel[]; heatmapScale?: number } = {}): Calibration {
  return calibrationFromScores(scoreImages(model, set).scores, falseAlarmRate, { ...o, local: model.local });
}

/** calibrateOn for scores already computed. */
export function calibrationFromScores(
  scores: readonly RawScores[],
  falseAlarmRate: number,
  o: { twoSided?: Channel[]; local?: LocalMapStats; heatmapScale?: number },
): Calibration {
  const cal = buildCalibration(
    { kl: scores.map((s) => s.kl), recon: scores.map((s) => s.recon), elbo: scores.map((s) => s.elbo) },
    falseAlarmRate,
    o.heatmapScale ?? 1,
    { twoSided: o.twoSided, local: o.local },
  );
  if (o.local) cal.heatmapScale = cal.channels.recon.threshold;
  return cal;
}

/** The seeded split fitDetector makes: held-out images for calibration first, the rest for training. */
export function calibrationSplit(set: ImageSet, o: Pick<TrainOptions, 'seed' | 'validationFraction' | 'minValidation'>): { train: ImageSet; val: ImageSet } {
  const order = shuffledIndices(set.count, mulberry32(o.seed));
  const nVal = validationCount(set.count, o.validationFraction, o.minValidation);
  return { val: subset(set, order.subarray(0, nVal)), train: subset(set, order.subarray(nVal)) };
}

export async function fitDetector(set: ImageSet, o: TrainOptions, hooks: FitHooks = {}): Promise<FittedDetector> {
  validateTrainOptions(o);
  if (set.count < MIN_TRAINING_IMAGES) {
    throw new AppError('not_enough_images', `need at least ${MIN_TRAINING_IMAGES} readable normal images to train, got ${set.count}`);
  }
  const { train, val } = calibrationSplit(set, o);

  if (o.batchSize === AUTO_BATCH) o = { ...o, batchSize: autoBatchSize(train.count) };
  const vae = createVae({ size: o.size, channels: o.channels, latent: o.latent, baseFilters: o.baseFilters, seed: o.seed });
  try {
    const training = await trainVae(vae, train, val, { ...o, ...hooks });
    hooks.onProgress?.({ type: 'calibrating', images: val.count });
    const likelihood = { kind: o.likelihood, sigma2: training.sigma2 };
    // Per-pixel normalisation from the training split; calibration from the held-out one.
    const local = fitLocalStats(vae, train);
    const calibration = calibrateOn({ vae, likelihood: o.likelihood, sigma2: training.sigma2, local }, val, o.falseAlarmRate, { twoSided: ['kl'] });
    return { vae, likelihood, calibration, training, options: o, split: { train: train.count, validation: val.count } };
  } catch (err) {
    vae.model.dispose();
    throw err;
  }
}

// Fitting a detector: split off held-out normal images, train the VAE on the
// rest, then calibrate every channel on the held-out split (docs/architecture.md,
// Scores and calibration).
import { AppError } from '../domain/errors.js';
import { buildCalibration } from '../domain/calibration.js';
import type { Calibration, Channel, LocalMapStats, ModelMeta, RawScores, TrainOptions, TrainProgress } from '../domain/types.js';
import { subset, type ImageSet } from '../ml/dataset.js';
import { mulberry32, shuffledIndices } from '../ml/random.js';
import { fitLocalStats } from '../ml/local-maps.js';
import { scoreImages, scoreTiled, type ScoringModel } from '../ml/score.js';
import { allTiles, defaultStride, tileSet, type Picture } from '../ml/tiles.js';
import { trainVae, type TrainResult } from '../ml/train.js';
import { datasetBytes, gib, MAX_DATASET_BYTES, MAX_STEP_BYTES, trainingStepBytes } from '../ml/memory.js';
import { createVae, validateVaeOptions, type Vae } from '../ml/vae.js';

export const MIN_TRAINING_IMAGES = 20;

/** Working resolutions above this make thousands of tiles per image (2048 px: about 4000 tiles of 64 px, a minute of scoring on one core). */
export const MAX_RESOLUTION = 2048;

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
  validationFraction: 0.2,
  minValidation: 100,
  resolution: null,
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
  if (!(o.validationFraction >= 0.05 && o.validationFraction <= 0.5)) throw bad(`--calibration-fraction must be from 0.05 to 0.5, got ${o.validationFraction}`);
  if (o.resolution != null && !(Number.isInteger(o.resolution) && o.resolution >= o.size && o.resolution <= MAX_RESOLUTION)) {
    throw bad(`--resolution must be an integer from the tile size (${o.size}) to ${MAX_RESOLUTION}, got ${o.resolution}`);
  }
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
    throw new AppError('invalid_option', `${images} images at ${o.resolution != null ? `up to ${o.resolution}x${o.resolution}` : `${o.size}x${o.size}`}x${o.channels} need about ${gib(bytes)} of memory once decoded, more than the ${gib(MAX_DATASET_BYTES)} allowed: train on fewer images or a smaller ${o.resolution != null ? '--resolution' : '--size'}`);
  }
}

/** 20 % by default, but at least `minValidation` (capped at a quarter of the data). */
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
  /** Tiled models only. */
  tiling?: { resolution: number; stride: number };
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

type SplitOptions = Pick<TrainOptions, 'seed' | 'validationFraction' | 'minValidation'>;

/** Seeded indices of n images: held-out ones for calibration, the rest for training. */
function splitIndices(n: number, o: SplitOptions): { train: Uint32Array; val: Uint32Array } {
  const order = shuffledIndices(n, mulberry32(o.seed));
  const nVal = validationCount(n, o.validationFraction, o.minValidation);
  return { val: order.subarray(0, nVal), train: order.subarray(nVal) };
}

/** The seeded split fitDetector makes: held-out images for calibration first, the rest for training. */
export function calibrationSplit(set: ImageSet, o: SplitOptions): { train: ImageSet; val: ImageSet } {
  const { train, val } = splitIndices(set.count, o);
  return { val: subset(set, val), train: subset(set, train) };
}

/** calibrationSplit for the pictures of a tiled model. */
export function pictureSplit(pictures: readonly Picture[], o: SplitOptions): { train: Picture[]; val: Picture[] } {
  const { train, val } = splitIndices(pictures.length, o);
  return { val: Array.from(val, (i) => pictures[i]), train: Array.from(train, (i) => pictures[i]) };
}

/**
 * Random crops per training epoch of a tiled model: one per training image,
 * but at least 1024 (a few large images still give an epoch of real work)
 * and at most 4096 (an epoch of a big folder stays minutes, not hours).
 */
export function cropsPerEpoch(images: number): number {
  return Math.min(4096, Math.max(1024, images));
}

function randomCrops(pictures: readonly Picture[], count: number, size: number, rand: () => number): ImageSet {
  const tiles = Array.from({ length: count }, () => {
    const picture = Math.floor(rand() * pictures.length);
    const p = pictures[picture];
    return { picture, x: Math.floor(rand() * (p.cols - size + 1)), y: Math.floor(rand() * (p.rows - size + 1)) };
  });
  return tileSet(pictures, tiles, size, pictures[0].channels);
}

/** At most `max` grid tiles of the pictures, a seeded sample. */
function sampleGridTiles(pictures: readonly Picture[], size: number, stride: number, max: number, rand: () => number): ImageSet {
  const tiles = allTiles(pictures, size, stride);
  const order = shuffledIndices(tiles.length, rand).subarray(0, Math.min(max, tiles.length));
  return tileSet(pictures, Array.from(order, (i) => tiles[i]), size, pictures[0].channels);
}

/**
 * fitDetector for a tiled model: trains on fresh random crops every epoch,
 * stops early on grid tiles of the held-out pictures, learns the local
 * statistics from grid tiles of the training pictures, and calibrates on
 * the held-out pictures scored whole (tiled and stitched), as they will be.
 */
export async function fitTiledDetector(pictures: readonly Picture[], o: TrainOptions, hooks: FitHooks = {}): Promise<FittedDetector> {
  validateTrainOptions(o);
  const resolution = o.resolution;
  if (resolution == null) throw new Error('fitTiledDetector needs options.resolution');
  if (pictures.length < MIN_TRAINING_IMAGES) {
    throw new AppError('not_enough_images', `need at least ${MIN_TRAINING_IMAGES} readable normal images to train, got ${pictures.length}`);
  }
  const { train, val } = pictureSplit(pictures, o);
  const stride = defaultStride(o.size);
  const crops = cropsPerEpoch(train.length);
  if (o.batchSize === AUTO_BATCH) o = { ...o, batchSize: autoBatchSize(crops) };
  const rand = mulberry32(o.seed ^ 0x711e5);
  const vae = createVae({ size: o.size, channels: o.channels, latent: o.latent, baseFilters: o.baseFilters, seed: o.seed });
  try {
    const valTiles = sampleGridTiles(val, o.size, stride, 1024, rand);
    const training = await trainVae(vae, randomCrops(train, crops, o.size, rand), valTiles, {
      ...o, ...hooks, epochSet: () => randomCrops(train, crops, o.size, rand),
    });
    hooks.onProgress?.({ type: 'calibrating', images: val.length });
    const local = fitLocalStats(vae, sampleGridTiles(train, o.size, stride, 1000, rand));
    const scored = scoreTiled({ vae, likelihood: o.likelihood, sigma2: training.sigma2, local }, val, o.size, stride);
    const calibration = calibrationFromScores(scored.scores, o.falseAlarmRate, { twoSided: ['kl'], local });
    const likelihood = { kind: o.likelihood, sigma2: training.sigma2 };
    return { vae, likelihood, calibration, training, options: o, split: { train: train.length, validation: val.length }, tiling: { resolution, stride } };
  } catch (err) {
    vae.model.dispose();
    throw err;
  }
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

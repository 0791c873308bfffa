// Wire types shared by the CLI, the server and (later) the dashboard.

export const CHANNELS = ['kl', 'recon', 'elbo'] as const;
export type Channel = (typeof CHANNELS)[number];

/** Raw anomaly scores of one image. */
export interface RawScores {
  /** KL(q(z|x) || N(0, I)) in nats, summed over latent dimensions. */
  kl: number;
  /**
   * Reconstruction error of the decoder mean at z = mu. Models with local
   * statistics (calibration.local): the mean of the worst 1 % of the
   * standardised local error map, in standard deviations of normal images;
   * older models: the mean squared error over all pixels.
   */
  recon: number;
  /** Negative ELBO in nats per image: reconstruction NLL + KL. */
  elbo: number;
}

export interface Assessment {
  /** Calibrated p-values, and the combined one (see calibration.ts). */
  p: Record<Channel | 'combined', number>;
  /** Percentile of each score among the calibration scores (0–100). */
  percentile: Record<Channel, number>;
  /** combined p-value below the model's false-alarm rate. */
  anomaly: boolean;
}

export type Likelihood = 'gaussian' | 'bernoulli';

export interface TrainOptions {
  size: number;
  channels: 1 | 3;
  latent: number;
  baseFilters: number;
  beta: number;
  likelihood: Likelihood;
  /** Gaussian decoder standard deviation; null = learned (calibrated decoder). */
  decoderSigma: number | null;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /**
   * Share of the normal images held out for calibration (never trained on),
   * and its floor in images (capped at a quarter of the data).
   */
  validationFraction: number;
  minValidation: number;
  /**
   * Tiled models: the longer side, in pixels, of the working resolution
   * images are cut into tiles of \`size\` at (see ml/tiles.ts). null: the
   * whole image is resized to one size x size square.
   */
  resolution: number | null;
  patience: number;
  seed: number;
  falseAlarmRate: number;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  recon: number;
  kl: number;
  valLoss: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface ChannelCalibration {
  /** Calibration (validation) scores, ascending. */
  scores: number[];
  /** Suggested alert threshold at the model's false-alarm rate. */
  threshold: number;
  /** Mean excess of the top decile: scale of the exponential tail beyond the maximum. */
  tailScale: number;
  /** The same for the bottom decile, below the minimum (two-sided channels). */
  lowTailScale?: number;
}

/**
 * How a reconstruction becomes the local error map (see ml/local-maps.ts),
 * learned from normal training images.
 */
export interface LocalMapStats {
  /** Mean squared error and mean 1 − SSIM per pixel: each error is divided by its own. */
  sqScale: number;
  dssimScale: number;
  /** Per pixel (row-major, size x size): mean and standard deviation of the weighted error. */
  pixelMean: number[];
  pixelStd: number[];
  /** Added to every pixel's deviation so that a pixel that never varies cannot explode. */
  floor: number;
  /** Side of the square smoothing window. */
  window: number;
  /** Share of the worst pixels whose mean is the image's recon score. */
  topFraction: number;
}

/**
 * weighted-min: the largest of -log(p_c / w_c), a weighted Bonferroni
 * minimum; channels of weight 0 are left out. fisher: -2·Σ log p_c.
 */
export type Combination = { rule: 'weighted-min'; weights: Partial<Record<Channel, number>> } | { rule: 'fisher' };

export interface Calibration {
  n: number;
  falseAlarmRate: number;
  channels: Record<Channel, ChannelCalibration>;
  /**
   * Channels whose low values are as abnormal as high ones (a blank frame
   * carries less information than a normal one and gets a low KL): their
   * p-value is two-sided. Absent in older models (every channel one-sided).
   */
  twoSided?: Channel[];
  /** Local error maps (absent in older models: recon is the mean squared error). */
  local?: LocalMapStats;
  /**
   * The combined statistic of each calibration image (leave-one-out
   * p-values): the null distribution the combined p-value is read from.
   * Absent in models calibrated before it existed (Bonferroni is used then).
   */
  combined?: ChannelCalibration;
  /**
   * How the channels' p-values become the combined statistic (see
   * calibration.ts). Absent in models calibrated before it existed: Fisher.
   */
  combination?: Combination;
  /**
   * Map value at the top of the heatmap's colour scale, fixed at calibration
   * so that a clean image looks clean: the squared error (older models) or
   * the local map's value at the recon threshold.
   */
  heatmapScale: number;
}

export interface ModelMeta {
  format: 'latentwatch-vae/1';
  id: string;
  createdAt: string;
  /**
   * fill: the whole image stretched to size x size. tiles: resized to the
   * tiling's resolution, aspect ratio kept, and scored in size x size tiles.
   */
  input: { size: number; channels: 1 | 3; resize: 'fill' | 'tiles'; tiling?: { resolution: number; stride: number } };
  options: TrainOptions;
  likelihood: { kind: Likelihood; sigma2: number };
  dataset: { source: string; images: number; train: number; validation: number; skipped: number };
  training: {
    epochs: EpochRecord[];
    bestEpoch: number;
    stoppedEarly: boolean;
    seconds: number;
    imagesPerSecond: number;
  };
  calibration: Calibration;
  parameters: number;
  backend: string;
  /** Set on a version made from another without retraining (same weights, new calibration). */
  lineage?: { parent: string; kind: 'recalibration'; source: string; images: number; at: string };
}

/** Progress events from a training run (CLI --json prints them as they come). */
export type TrainProgress =
  | { type: 'loading'; loaded: number; total: number }
  | {
      type: 'step';
      epoch: number;
      epochs: number;
      step: number;
      steps: number;
      loss: number;
      recon: number;
      kl: number;
      imagesPerSecond: number;
      etaSeconds: number;
    }
  | ({ type: 'epoch'; epochs: number; best: boolean; etaSeconds: number } & EpochRecord)
  | { type: 'calibrating'; images: number };

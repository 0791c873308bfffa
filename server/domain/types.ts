// Wire types shared by the CLI, the server and (later) the dashboard.

export const CHANNELS = ['kl', 'recon', 'elbo'] as const;
export type Channel = (typeof CHANNELS)[number];

/** Raw anomaly scores of one image. */
export interface RawScores {
  /** KL(q(z|x) || N(0, I)) in nats, summed over latent dimensions. */
  kl: number;
  /** Mean squared error per pixel of the decoder mean at z = mu. */
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
  validationFraction: number;
  minValidation: number;
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
}

export interface Calibration {
  n: number;
  falseAlarmRate: number;
  channels: Record<Channel, ChannelCalibration>;
  /**
   * Fisher statistics -2·Σ log p of the calibration images (leave-one-out
   * p-values): the null distribution the combined p-value is read from.
   * Absent in models calibrated before it existed (Bonferroni is used then).
   */
  combined?: ChannelCalibration;
  /** Per-pixel squared error that maps to the top of the heatmap colour scale. */
  heatmapScale: number;
}

export interface ModelMeta {
  format: 'latentwatch-vae/1';
  id: string;
  createdAt: string;
  input: { size: number; channels: 1 | 3; resize: 'fill' };
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

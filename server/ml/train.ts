// The training loop: Adam on mini-batches of reconNLL + beta·KL with the
// reparameterisation trick, validation loss each epoch, early stopping that
// restores the best weights, progress events and cancellation.
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../domain/errors.js';
import type { EpochRecord, Likelihood, TrainProgress } from '../domain/types.js';
import { pixelsPerImage, type ImageSet } from './dataset.js';
import { vaeLoss, klPerImage, reconNll } from './loss.js';
import { mulberry32, shuffledIndices } from './random.js';
import { forward, type Vae } from './vae.js';

export interface TrainLoopOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  beta: number;
  likelihood: Likelihood;
  /** Fixed gaussian decoder standard deviation; null learns it from the data. */
  decoderSigma: number | null;
  /** Epochs without a better validation loss before stopping. */
  patience: number;
  seed: number;
  /** Emit a 'step' event every this many batches. */
  progressEvery?: number;
  signal?: AbortSignal;
  onProgress?: (event: TrainProgress) => void;
  /**
   * Fresh training images for each epoch after the first (tiled models:
   * new random crops), as many as \`train\` holds. Absent: \`train\` every epoch.
   */
  epochSet?: (epoch: number) => ImageSet;
}

export interface TrainResult {
  epochs: EpochRecord[];
  bestEpoch: number;
  stoppedEarly: boolean;
  seconds: number;
  imagesPerSecond: number;
  /** Gaussian decoder variance (mean per-pixel MSE) at the best epoch. */
  sigma2: number;
}

function fillBatch(set: ImageSet, order: Uint32Array, start: number, count: number, out: Float32Array): void {
  const p = pixelsPerImage(set);
  for (let k = 0; k < count; k++) {
    const i = order[start + k];
    out.set(set.data.subarray(i * p, (i + 1) * p), k * p);
  }
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new AppError('cancelled', 'training was cancelled');
}

/** Mean validation objective at z = mu (deterministic), with the given sigma². */
export function validationLoss(vae: Vae, val: ImageSet, likelihood: Likelihood, sigma2: number, beta: number, batchSize = 128): number {
  const p = pixelsPerImage(val);
  let total = 0;
  for (let start = 0; start < val.count; start += batchSize) {
    const n = Math.min(batchSize, val.count - start);
    total += tf.tidy(() => {
      const x = tf.tensor4d(val.data.subarray(start * p, (start + n) * p), [n, val.size, val.size, val.channels]);
      const [mu, logVar, xHat] = forward(vae, x);
      const loss = reconNll(x, xHat, likelihood, sigma2).add(klPerImage(mu, logVar).mul(beta));
      return loss.sum().dataSync()[0];
    });
  }
  return total / val.count;
}

export async function trainVae(vae: Vae, train: ImageSet, val: ImageSet, o: TrainLoopOptions): Promise<TrainResult> {
  const started = performance.now();
  const optimizer = tf.train.adam(o.learningRate);
  const vars = vae.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const rand = mulberry32(o.seed ^ 0x5eed);
  const p = pixelsPerImage(train);
  const steps = Math.ceil(train.count / o.batchSize);
  const progressEvery = o.progressEvery ?? 10;
  const batchBuf = new Float32Array(o.batchSize * p);
  const epochs: EpochRecord[] = [];
  let best = { loss: Infinity, epoch: 0, sigma2: 1, weights: [] as tf.Tensor[] };
  let stoppedEarly = false;
  let globalStep = 0;
  let imagesSeen = 0;

  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const epochStart = performance.now();
      const set = epoch > 1 && o.epochSet ? o.epochSet(epoch) : train;
      if (set.count !== train.count) throw new Error(`epoch ${epoch} brought ${set.count} images instead of ${train.count}`);
      const order = shuffledIndices(train.count, rand);
      let sums = [0, 0, 0, 0]; // loss, recon, kl, sigma2, weighted by batch size
      for (let step = 0; step < steps; step++) {
        throwIfAborted(o.signal);
        const start = step * o.batchSize;
        const n = Math.min(o.batchSize, train.count - start);
        fillBatch(set, order, start, n, batchBuf);
        const noiseSeed = (o.seed * 1_000_003 + globalStep++) >>> 0;
        const parts = tf.tidy(() => {
          const x = tf.tensor4d(batchBuf.subarray(0, n * p), [n, train.size, train.size, train.channels]);
          let kept: tf.Tensor | null = null;
          optimizer.minimize(
            () => {
              const [mu, logVar] = vae.encoder.apply(x, { training: true }) as [tf.Tensor2D, tf.Tensor2D];
              const eps = tf.randomNormal(mu.shape, 0, 1, 'float32', noiseSeed);
              const z = mu.add(eps.mul(logVar.mul(0.5).exp()));
              const xHat = vae.decoder.apply(z, { training: true }) as tf.Tensor4D;
              const l = vaeLoss(x, xHat, mu, logVar, o.likelihood, o.beta, o.decoderSigma === null ? null : o.decoderSigma ** 2);
              kept = tf.keep(tf.stack([l.total, l.recon, l.kl, l.sigma2]));
              return l.total;
            },
            false,
            vars,
          );
          return kept as unknown as tf.Tensor1D;
        });
        const v = parts.dataSync();
        parts.dispose();
        if (!Number.isFinite(v[0])) {
          throw new AppError('bad_request', `training diverged at epoch ${epoch} (loss ${v[0]}); try a lower learning rate`);
        }
        for (let i = 0; i < 4; i++) sums[i] += v[i] * n;
        imagesSeen += n;
        if (o.onProgress && ((step + 1) % progressEvery === 0 || step === steps - 1)) {
          const rate = imagesSeen / ((performance.now() - started) / 1000);
          const remaining = (o.epochs - epoch) * train.count + (train.count - start - n);
          o.onProgress({
            type: 'step', epoch, epochs: o.epochs, step: step + 1, steps,
            loss: v[0], recon: v[1], kl: v[2], imagesPerSecond: rate, etaSeconds: remaining / rate,
          });
        }
        // Let timers, signals and I/O run between batches.
        if (step % 4 === 3) await new Promise((r) => setImmediate(r));
      }
      const [loss, recon, kl, sigma2] = sums.map((s) => s / train.count);
      const valLoss = validationLoss(vae, val, o.likelihood, sigma2, o.beta);
      const seconds = (performance.now() - epochStart) / 1000;
      const record: EpochRecord = { epoch, loss, recon, kl, valLoss, seconds, imagesPerSecond: train.count / seconds };
      epochs.push(record);
      const improved = valLoss < best.loss;
      if (improved) {
        for (const w of best.weights) w.dispose();
        best = { loss: valLoss, epoch, sigma2, weights: vae.model.getWeights().map((w) => w.clone()) };
      }
      const rate = imagesSeen / ((performance.now() - started) / 1000);
      o.onProgress?.({ type: 'epoch', ...record, epochs: o.epochs, best: improved, etaSeconds: ((o.epochs - epoch) * train.count) / rate });
      if (epoch - best.epoch >= o.patience && epoch < o.epochs) {
        stoppedEarly = true;
        break;
      }
    }
    if (best.weights.length > 0) vae.model.setWeights(best.weights);
  } finally {
    for (const w of best.weights) w.dispose();
    optimizer.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  return { epochs, bestEpoch: best.epoch, stoppedEarly, seconds, imagesPerSecond: imagesSeen / seconds, sigma2: best.sigma2 };
}

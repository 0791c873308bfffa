// Local anomaly maps: where in an image the reconstruction fails, and how
// badly compared with normal images at that very pixel.
//
// Per pixel, two errors between the image x and its reconstruction x̂:
//   - squared error (intensity),
//   - 1 − SSIM over a small window (structure: an edge that moved, a texture
//     that went flat), which squared error barely sees on thin defects;
// each divided by its mean over normal images so they weigh alike, summed,
// then standardised by that pixel's mean and spread over normal training
// images (edges that are always hard to reconstruct stop dominating), and
// smoothed over a small window. The image's score is the mean of the worst
// `topFraction` of that map: a small defect is scored from where it is, not
// diluted by thousands of clean pixels.
//
// Every function returning tensors runs its own tf.tidy.
import * as tf from '@tensorflow/tfjs';
import type { LocalMapStats } from '../domain/types.js';
import type { ImageSet } from './dataset.js';
import { pixelsPerImage } from './dataset.js';
import { forward, type Vae } from './vae.js';

const SSIM_C1 = 0.01 ** 2;
const SSIM_C2 = 0.03 ** 2;

/** SSIM window: 7x7 as usual, 5x5 on small inputs. */
export function ssimWindow(size: number): number {
  return size >= 48 ? 7 : 5;
}

/** Smoothing window of the map: odd, about a twelfth of the side (3 at 28 px, 5 at 64, 11 at 128). */
export function smoothingWindow(size: number): number {
  return 2 * Math.max(1, Math.floor(size / 24)) + 1;
}

/** Per-pixel squared error and 1 − SSIM, each averaged over channels: two [n, S, S, 1] tensors. */
export function pixelErrors(x: tf.Tensor4D, xHat: tf.Tensor4D): { sq: tf.Tensor4D; dssim: tf.Tensor4D } {
  return tf.tidy(() => {
    const w = ssimWindow(x.shape[1]!);
    const pool = (t: tf.Tensor4D) => tf.avgPool(t, w, 1, 'same');
    const mx = pool(x);
    const my = pool(xHat);
    const vx = pool(x.square()).sub(mx.square());
    const vy = pool(xHat.square()).sub(my.square());
    const cxy = pool(x.mul(xHat)).sub(mx.mul(my));
    const ssim = mx.mul(my).mul(2).add(SSIM_C1).mul(cxy.mul(2).add(SSIM_C2))
      .div(mx.square().add(my.square()).add(SSIM_C1).mul(vx.add(vy).add(SSIM_C2)));
    return {
      sq: x.sub(xHat).square().mean(3, true) as tf.Tensor4D,
      dssim: tf.scalar(1).sub(ssim).mean(3, true) as tf.Tensor4D,
    };
  });
}

/** The standardised, smoothed map [n, S, S, 1] the score and the heatmap both come from. */
export function localMap(sq: tf.Tensor4D, dssim: tf.Tensor4D, s: LocalMapStats): tf.Tensor4D {
  return tf.tidy(() => {
    const size = sq.shape[1]!;
    const e = sq.div(s.sqScale).add(dssim.div(s.dssimScale));
    const mean = tf.tensor4d(s.pixelMean, [1, size, size, 1]);
    const spread = tf.tensor4d(s.pixelStd, [1, size, size, 1]).add(s.floor);
    return tf.avgPool(e.sub(mean).div(spread) as tf.Tensor4D, s.window, 1, 'same');
  });
}

/** Mean of the worst `fraction` of each map's pixels: [n]. */
export function localScore(map: tf.Tensor4D, fraction: number): tf.Tensor1D {
  return tf.tidy(() => {
    const [n, h, w] = map.shape;
    const k = Math.max(1, Math.round(fraction * h * w));
    return tf.topk(map.reshape([n, h * w]), k).values.mean(1) as tf.Tensor1D;
  });
}

/**
 * Learns the normalisation from normal images (the training split: many
 * images, and never the ones calibration is measured on): the mean of each
 * error, and each pixel's mean and spread of their weighted sum.
 */
export function fitLocalStats(vae: Vae, set: ImageSet, o: { batchSize?: number; maxImages?: number } = {}): LocalMapStats {
  const { size, channels } = set;
  const count = Math.min(set.count, o.maxImages ?? 1000);
  const batch = o.batchSize ?? 64;
  const p = pixelsPerImage(set);
  const px = size * size;
  // Per-pixel sums of sq, dssim, their squares and product: Var(a·sq + b·ds) follows from them.
  const sums = { sq: new Float64Array(px), ds: new Float64Array(px), sq2: new Float64Array(px), ds2: new Float64Array(px), sqds: new Float64Array(px) };
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    const out = tf.tidy(() => {
      const x = tf.tensor4d(set.data.subarray(start * p, (start + n) * p), [n, size, size, channels]);
      const [, , xHat] = forward(vae, x);
      return pixelErrors(x, xHat);
    });
    const sq = out.sq.dataSync();
    const ds = out.dssim.dataSync();
    tf.dispose(out);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < px; j++) {
        const a = sq[i * px + j];
        const b = ds[i * px + j];
        sums.sq[j] += a;
        sums.ds[j] += b;
        sums.sq2[j] += a * a;
        sums.ds2[j] += b * b;
        sums.sqds[j] += a * b;
      }
    }
  }
  let totalSq = 0;
  let totalDs = 0;
  for (let j = 0; j < px; j++) {
    totalSq += sums.sq[j];
    totalDs += sums.ds[j];
  }
  // A model that reconstructs perfectly would divide by zero: keep scales positive.
  const sqScale = Math.max(totalSq / (count * px), 1e-8);
  const dssimScale = Math.max(totalDs / (count * px), 1e-8);
  const a = 1 / sqScale;
  const b = 1 / dssimScale;
  const pixelMean = new Array<number>(px);
  const pixelStd = new Array<number>(px);
  let meanStd = 0;
  for (let j = 0; j < px; j++) {
    const msq = sums.sq[j] / count;
    const mds = sums.ds[j] / count;
    const vsq = Math.max(0, sums.sq2[j] / count - msq * msq);
    const vds = Math.max(0, sums.ds2[j] / count - mds * mds);
    const cov = sums.sqds[j] / count - msq * mds;
    pixelMean[j] = a * msq + b * mds;
    pixelStd[j] = Math.sqrt(Math.max(0, a * a * vsq + b * b * vds + 2 * a * b * cov));
    meanStd += pixelStd[j] / px;
  }
  return {
    sqScale, dssimScale, pixelMean, pixelStd,
    // A pixel that never varies on normal images must not turn any change into a huge z.
    floor: Math.max(meanStd, 1e-6),
    window: smoothingWindow(size),
    topFraction: 0.01,
  };
}

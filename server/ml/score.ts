// Scoring: one forward pass per batch gives all three channels, the per-pixel
// error map and the reconstruction. Everything runs in tf.tidy; only plain
// typed arrays leave this module.
import * as tf from '@tensorflow/tfjs';
import type { Likelihood, RawScores } from '../domain/types.js';
import { pixelsPerImage, type ImageSet } from './dataset.js';
import { klPerImage, reconNll } from './loss.js';
import type { Vae } from './vae.js';

export interface ScoringModel {
  vae: Vae;
  likelihood: Likelihood;
  sigma2: number;
}

export interface ScoreOptions {
  /** Keep each image's per-pixel squared error (size x size, mean over channels). */
  errorMaps?: boolean;
  /** Keep each image's reconstruction (size x size x channels). */
  reconstructions?: boolean;
  batchSize?: number;
}

export interface ScoredImages {
  scores: RawScores[];
  errorMaps: Float32Array[];
  reconstructions: Float32Array[];
}

function scoreBatch(m: ScoringModel, x: Float32Array, n: number, set: ImageSet, o: ScoreOptions, out: ScoredImages): void {
  const { size, channels } = set;
  const tensors = tf.tidy(() => {
    const xt = tf.tensor4d(x, [n, size, size, channels]);
    const [mu, logVar, xHat] = m.vae.model.predict(xt) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor4D];
    const sq = xt.sub(xHat).square();
    const klT = klPerImage(mu, logVar);
    return {
      kl: klT,
      recon: sq.mean([1, 2, 3]),
      elbo: reconNll(xt, xHat, m.likelihood, m.sigma2).add(klT),
      ...(o.errorMaps ? { maps: sq.mean(3) } : {}),
      ...(o.reconstructions ? { rec: xHat } : {}),
    };
  });
  const kl = tensors.kl.dataSync();
  const recon = tensors.recon.dataSync();
  const elbo = tensors.elbo.dataSync();
  const maps = tensors.maps?.dataSync();
  const rec = tensors.rec?.dataSync();
  tf.dispose(tensors);
  const mapSize = size * size;
  const p = pixelsPerImage(set);
  for (let i = 0; i < n; i++) {
    out.scores.push({ kl: kl[i], recon: recon[i], elbo: elbo[i] });
    if (maps) out.errorMaps.push(Float32Array.from(maps.subarray(i * mapSize, (i + 1) * mapSize)));
    if (rec) out.reconstructions.push(Float32Array.from(rec.subarray(i * p, (i + 1) * p)));
  }
}

export function scoreImages(m: ScoringModel, set: ImageSet, o: ScoreOptions = {}): ScoredImages {
  const batchSize = o.batchSize ?? 64;
  const p = pixelsPerImage(set);
  const out: ScoredImages = { scores: [], errorMaps: [], reconstructions: [] };
  for (let start = 0; start < set.count; start += batchSize) {
    const n = Math.min(batchSize, set.count - start);
    scoreBatch(m, set.data.subarray(start * p, (start + n) * p), n, set, o, out);
  }
  return out;
}

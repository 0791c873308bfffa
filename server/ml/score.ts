// Scoring: one forward pass per batch gives all three channels, the per-pixel
// error map and the reconstruction. Everything runs in tf.tidy; only plain
// typed arrays leave this module.
import * as tf from '@tensorflow/tfjs';
import type { Likelihood, LocalMapStats, RawScores } from '../domain/types.js';
import { pixelsPerImage, type ImageSet } from './dataset.js';
import { localMap, localScore, pixelErrors } from './local-maps.js';
import { stitch, tileGrid, tileSet, type Picture, type TileResult } from './tiles.js';
import { klPerImage, reconNll } from './loss.js';
import { forward, type Vae } from './vae.js';

export interface ScoringModel {
  vae: Vae;
  likelihood: Likelihood;
  sigma2: number;
  /** Local error maps: recon and the error maps come from them when present. */
  local?: LocalMapStats;
}

export interface ScoreOptions {
  /** Keep each image's error map (size x size): the local map, or the squared error for older models. */
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
    const [mu, logVar, xHat] = forward(m.vae, xt);
    const klT = klPerImage(mu, logVar);
    let recon: tf.Tensor1D;
    let maps: tf.Tensor;
    if (m.local) {
      const { sq, dssim } = pixelErrors(xt, xHat);
      maps = localMap(sq, dssim, m.local);
      recon = localScore(maps as tf.Tensor4D, m.local.topFraction);
    } else {
      const sq = xt.sub(xHat).square();
      recon = sq.mean([1, 2, 3]) as tf.Tensor1D;
      maps = sq.mean(3);
    }
    return {
      kl: klT,
      recon,
      elbo: reconNll(xt, xHat, m.likelihood, m.sigma2).add(klT),
      ...(o.errorMaps ? { maps } : {}),
      ...(o.reconstructions ? { rec: xHat } : {}),
    };
  });
  let kl, recon, elbo, maps, rec;
  try {
    kl = tensors.kl.dataSync();
    recon = tensors.recon.dataSync();
    elbo = tensors.elbo.dataSync();
    maps = tensors.maps?.dataSync();
    rec = tensors.rec?.dataSync();
  } finally {
    tf.dispose(tensors);
  }
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

/**
 * Scores pictures through a tiled model: tiles of consecutive pictures share
 * forward passes, each picture is stitched as soon as its last tile is scored.
 */
export function scoreTiled(m: ScoringModel & { local: LocalMapStats }, pictures: readonly Picture[], size: number, stride: number, o: ScoreOptions = {}): ScoredImages {
  const out: ScoredImages = { scores: [], errorMaps: [], reconstructions: [] };
  const batchSize = o.batchSize ?? 64;
  const channels = pictures[0]?.channels ?? 1;
  const grids = pictures.map((p) => tileGrid(p.cols, p.rows, size, stride));
  let pending: TileResult[] = [];
  let picture = 0;
  const queue = grids.flatMap((g, i) => g.map((t) => ({ picture: i, ...t })));
  for (let start = 0; start < queue.length; start += batchSize) {
    const chunk = queue.slice(start, start + batchSize);
    const scored = scoreImages(m, tileSet(pictures, chunk, size, channels), { errorMaps: true, reconstructions: o.reconstructions, batchSize });
    chunk.forEach((_, k) => {
      pending.push({ raw: scored.scores[k], errorMap: scored.errorMaps[k], reconstruction: scored.reconstructions[k] });
      while (picture < pictures.length && pending.length === grids[picture].length) {
        const p = pictures[picture];
        const s = stitch(p.cols, p.rows, channels, size, grids[picture], pending, m.local);
        out.scores.push(s.raw);
        if (o.errorMaps) out.errorMaps.push(s.errorMap);
        if (o.reconstructions && s.reconstruction) out.reconstructions.push(s.reconstruction);
        pending = [];
        picture++;
      }
    });
  }
  return out;
}

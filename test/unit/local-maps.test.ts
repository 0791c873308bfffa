// Local error maps: shapes, no tensor leaks, and a real small model whose
// verdict catches a thin defect that the whole-image mean error misses.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assess } from '../../server/domain/calibration.js';
import { initBackend } from '../../server/ml/backend.js';
import { loadImages } from '../../server/ml/dataset.js';
import { fitLocalStats, localMap, localScore, pixelErrors, smoothingWindow } from '../../server/ml/local-maps.js';
import { scoreImages } from '../../server/ml/score.js';
import { loadDetector, scoringModel } from '../../server/services/detector.js';
import { TINY_MODEL_CACHE } from '../server-helpers.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('pixelErrors, localMap and localScore', () => {
  it('give [n, S, S, 1] maps and one score per image, leaving no tensors behind', () => {
    const before = tf.memory().numTensors;
    const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
    const xHat = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    const { sq, dssim } = pixelErrors(x, xHat);
    expect(sq.shape).toEqual([3, 28, 28, 1]);
    expect(dssim.shape).toEqual([3, 28, 28, 1]);
    const stats = { sqScale: 0.1, dssimScale: 0.5, pixelMean: new Array(784).fill(1), pixelStd: new Array(784).fill(0.5), floor: 0.5, window: smoothingWindow(28), topFraction: 0.01 };
    const map = localMap(sq, dssim, stats);
    expect(map.shape).toEqual([3, 28, 28, 1]);
    const score = localScore(map, 0.01);
    expect(score.shape).toEqual([3]);
    tf.dispose([x, xHat, sq, dssim, map, score]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('see no error where the reconstruction is perfect', () => {
    const x = tf.randomUniform([1, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    const { sq, dssim } = pixelErrors(x, x);
    expect(sq.max().dataSync()[0]).toBe(0);
    expect(dssim.abs().max().dataSync()[0]).toBeLessThan(1e-4);
    tf.dispose([x, sq, dssim]);
  });
});

describe('a small trained model', () => {
  it('scores through local maps, and fits their statistics, without leaving tensors behind', async () => {
    const detector = await loadDetector(TINY_MODEL_CACHE);
    try {
      const files = (await readdir('fixtures/normal')).sort().slice(300, 310).map((f) => path.join('fixtures/normal', f));
      const { set } = await loadImages(files, { size: 28, channels: 1 });
      const before = tf.memory().numTensors;
      scoreImages(scoringModel(detector), set, { errorMaps: true, reconstructions: true });
      fitLocalStats(detector.vae, set);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      detector.vae.model.dispose();
    }
  });

  it('flags a thin scratch that the mean squared error over the whole image misses', async () => {
    const detector = await loadDetector(TINY_MODEL_CACHE);
    try {
      expect(detector.meta.calibration.local).toBeDefined();
      // Normal fixtures the tiny model never saw (it trains on the first 200).
      const files = (await readdir('fixtures/normal')).sort().slice(300, 340).map((f) => path.join('fixtures/normal', f));
      const { set } = await loadImages(files, { size: 28, channels: 1 });
      const legacy = { ...scoringModel(detector), local: undefined };
      const normalMeans = scoreImages(legacy, set).scores.map((s) => s.recon);
      const normalVerdicts = scoreImages(scoringModel(detector), set).scores.map((s) => assess(detector.meta.calibration, s));

      // The same images with a faint one-pixel scratch, 8 pixels long.
      const scratched = { ...set, data: Float32Array.from(set.data) };
      for (let i = 0; i < set.count; i++) for (let k = 0; k < 8; k++) {
        const at = i * 784 + (10 + k) * 28 + (9 + k);
        scratched.data[at] = Math.min(1, scratched.data[at] + 0.6);
      }
      const scratchedMeans = scoreImages(legacy, scratched).scores.map((s) => s.recon);
      const verdicts = scoreImages(scoringModel(detector), scratched).scores.map((s) => assess(detector.meta.calibration, s));

      // The mean barely moves: most scratched images stay inside the normal range of the mean error.
      const maxNormalMean = Math.max(...normalMeans);
      expect(scratchedMeans.filter((m) => m <= maxNormalMean).length).toBeGreaterThan(set.count / 2);
      // The local verdict catches nearly all of them, and few clean ones.
      expect(verdicts.filter((v) => v.anomaly).length).toBeGreaterThanOrEqual(0.9 * set.count);
      expect(normalVerdicts.filter((v) => v.anomaly).length).toBeLessThanOrEqual(2);
    } finally {
      detector.vae.model.dispose();
    }
  });
});

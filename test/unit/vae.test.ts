import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../server/ml/backend.js';
import { createVae, levelSizes } from '../../server/ml/vae.js';
import { klPerImage, reconNll, vaeLoss } from '../../server/ml/loss.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('createVae', () => {
  it.each([
    [28, 1, 8],
    [32, 3, 4],
    [64, 1, 16],
    [128, 3, 2],
  ] as const)('maps a %ix%ix%i batch to latent and back to the same shape', (size, channels, latent) => {
    const vae = createVae({ size, channels, latent, baseFilters: 8, seed: 1 });
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = tf.randomUniform([2, size, size, channels]);
      const [mu, logVar] = vae.encoder.predict(x) as tf.Tensor[];
      expect(mu.shape).toEqual([2, latent]);
      expect(logVar.shape).toEqual([2, latent]);
      const xHat = vae.decoder.predict(mu) as tf.Tensor;
      expect(xHat.shape).toEqual([2, size, size, channels]);
      const range = tf.stack([xHat.min(), xHat.max()]).dataSync();
      expect(range[0]).toBeGreaterThanOrEqual(0);
      expect(range[1]).toBeLessThanOrEqual(1);
      const [, , full] = vae.model.predict(x) as tf.Tensor[];
      expect(full.shape).toEqual([2, size, size, channels]);
    });
    expect(tf.memory().numTensors).toBe(before);
    vae.model.dispose();
  });

  it('downsamples while the side is even and above 8', () => {
    expect(levelSizes(28)).toEqual([28, 14, 7]);
    expect(levelSizes(64)).toEqual([64, 32, 16, 8]);
    expect(levelSizes(100)).toEqual([100, 50, 25]);
  });

  it.each([
    [{ size: 30 }, /--size/],
    [{ size: 256 }, /--size/],
    [{ channels: 2 }, /--channels/],
    [{ latent: 0 }, /--latent/],
    [{ baseFilters: 1.5 }, /--filters/],
  ])('refuses bad options %o with a clear message', (bad, message) => {
    expect(() => createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 1, ...bad } as never)).toThrow(message);
  });

  it('is reproducible from its seed', () => {
    const a = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 7 });
    const b = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 7 });
    const wa = a.model.getWeights().map((w) => Array.from(w.dataSync()));
    const wb = b.model.getWeights().map((w) => Array.from(w.dataSync()));
    expect(wa).toEqual(wb);
    a.model.dispose();
    b.model.dispose();
  });
});

describe('loss terms', () => {
  it('KL is zero at the prior and positive elsewhere', () => {
    tf.tidy(() => {
      const zero = klPerImage(tf.zeros([2, 3]), tf.zeros([2, 3])).dataSync();
      expect(Array.from(zero)).toEqual([0, 0]);
      // mu = 1, sigma² = 1: 0.5 * 1 per dim
      const one = klPerImage(tf.ones([1, 4]), tf.zeros([1, 4])).dataSync();
      expect(one[0]).toBeCloseTo(2);
    });
  });

  it('gaussian NLL matches the closed form', () => {
    tf.tidy(() => {
      const x = tf.fill([1, 2, 2, 1], 0.5) as tf.Tensor4D;
      const xHat = tf.fill([1, 2, 2, 1], 0.4) as tf.Tensor4D;
      const s2 = 0.01;
      const expected = (4 * 0.01) / (2 * s2) + 0.5 * 4 * Math.log(2 * Math.PI * s2);
      expect(reconNll(x, xHat, 'gaussian', s2).dataSync()[0]).toBeCloseTo(expected, 4);
    });
  });

  it('bernoulli NLL is the summed binary cross-entropy', () => {
    tf.tidy(() => {
      const x = tf.tensor4d([1, 0], [1, 1, 2, 1]);
      const xHat = tf.tensor4d([0.8, 0.3], [1, 1, 2, 1]);
      expect(reconNll(x, xHat, 'bernoulli', 1).dataSync()[0]).toBeCloseTo(-Math.log(0.8) - Math.log(0.7), 4);
    });
  });

  it('the training objective is finite and recon + beta·kl', () => {
    tf.tidy(() => {
      const x = tf.randomUniform([3, 4, 4, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
      const xHat = tf.randomUniform([3, 4, 4, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
      const mu = tf.randomNormal([3, 2], 0, 1, 'float32', 3) as tf.Tensor2D;
      const logVar = tf.randomNormal([3, 2], 0, 1, 'float32', 4) as tf.Tensor2D;
      const l = vaeLoss(x, xHat, mu, logVar, 'gaussian', 2);
      const [total, recon, kl] = [l.total, l.recon, l.kl].map((t) => t.dataSync()[0]);
      expect(Number.isFinite(total)).toBe(true);
      expect(total).toBeCloseTo(recon + 2 * kl, 3);
    });
  });
});

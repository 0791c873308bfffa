import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../server/ml/backend.js';
import { scoreImages } from '../../server/ml/score.js';
import { trainVae } from '../../server/ml/train.js';
import { createVae } from '../../server/ml/vae.js';
import { blobImages } from '../helpers.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('tensor memory', () => {
  it('does not grow over 100 scoring calls', () => {
    const vae = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 1 });
    const set = blobImages(3, 28);
    const m = { vae, likelihood: 'gaussian' as const, sigma2: 0.01 };
    scoreImages(m, set, { errorMaps: true, reconstructions: true }); // warm-up
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) scoreImages(m, set, { errorMaps: true, reconstructions: true });
    expect(tf.memory().numTensors).toBe(before);
    vae.model.dispose();
  });

  it('leaves no tensors behind after training, beyond the model weights', async () => {
    const before = tf.memory().numTensors;
    const vae = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 1 });
    const withModel = tf.memory().numTensors;
    await trainVae(vae, blobImages(40, 28), blobImages(10, 28, 1, 2), {
      epochs: 2, batchSize: 16, learningRate: 1e-3, beta: 1, likelihood: 'gaussian', decoderSigma: null, patience: 5, seed: 1,
    });
    expect(tf.memory().numTensors).toBe(withModel);
    vae.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

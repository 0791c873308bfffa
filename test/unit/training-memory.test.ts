// The memory estimate that refuses impossible training options: it must count
// the same parameters as the real model, and pass every sensible setting.
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../server/ml/backend.js';
import { MAX_STEP_BYTES, trainingStepBytes, vaeParameters } from '../../server/ml/memory.js';
import { createVae } from '../../server/ml/vae.js';
import { DEFAULT_TRAIN_OPTIONS, validateTrainOptions } from '../../server/services/fit.js';

describe('vaeParameters', () => {
  it.each([
    { size: 28, channels: 1 as const, latent: 8, baseFilters: 8 },
    { size: 64, channels: 1 as const, latent: 32, baseFilters: 32 },
    { size: 96, channels: 3 as const, latent: 16, baseFilters: 16 },
  ])('counts what the built model has at $size px, $channels channel(s)', async (o) => {
    await initBackend('cpu');
    const vae = createVae({ ...o, seed: 1 });
    try {
      expect(vaeParameters({ ...o, batchSize: 1 })).toBe(vae.model.countParams());
    } finally {
      vae.model.dispose();
    }
  });
});

describe('validateTrainOptions memory bound', () => {
  it('accepts the defaults and the largest model at the automatic batch', () => {
    expect(() => validateTrainOptions(DEFAULT_TRAIN_OPTIONS)).not.toThrow();
    expect(trainingStepBytes({ size: 128, channels: 3, latent: 128, baseFilters: 32, batchSize: 64 })).toBeLessThan(MAX_STEP_BYTES);
  });

  it('refuses options whose training step cannot fit, naming what to lower', () => {
    const huge = { ...DEFAULT_TRAIN_OPTIONS, size: 128, channels: 3 as const, baseFilters: 128, latent: 512, batchSize: 4096 };
    expect(() => validateTrainOptions(huge)).toThrow(/lower --batch, --filters, --latent or --size/);
  });
});

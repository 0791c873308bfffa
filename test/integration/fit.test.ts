import { beforeAll, describe, expect, it } from 'vitest';
import type { TrainOptions, TrainProgress } from '../../server/domain/types.js';
import { initBackend } from '../../server/ml/backend.js';
import { autoBatchSize, DEFAULT_TRAIN_OPTIONS, fitDetector, validationCount } from '../../server/services/fit.js';
import { blobImages } from '../helpers.js';

const tiny: TrainOptions = { ...DEFAULT_TRAIN_OPTIONS, size: 28, latent: 4, baseFilters: 8, epochs: 3, batchSize: 16 };

beforeAll(async () => {
  await initBackend('wasm');
});

describe('fitDetector', () => {
  it('is reproducible: the same seed gives the same weights and calibration', async () => {
    const set = blobImages(60, 28);
    const a = await fitDetector(set, tiny);
    const b = await fitDetector(set, tiny);
    expect(b.calibration).toEqual(a.calibration);
    expect(b.vae.model.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(a.vae.model.getWeights().map((w) => Array.from(w.dataSync())));
    const c = await fitDetector(set, { ...tiny, seed: 43 });
    expect(c.calibration.channels.recon.scores).not.toEqual(a.calibration.channels.recon.scores);
    for (const f of [a, b, c]) f.vae.model.dispose();
  });

  it('holds out a validation split it never trains on and calibrates every channel on it', async () => {
    const events: TrainProgress[] = [];
    const f = await fitDetector(blobImages(80, 28), { ...tiny, epochs: 2 }, { onProgress: (e) => events.push(e) });
    expect(f.split).toEqual({ train: 60, validation: 20 });
    expect(f.calibration.n).toBe(20);
    for (const ch of ['kl', 'recon', 'elbo'] as const) {
      const s = f.calibration.channels[ch].scores;
      expect(s).toHaveLength(20);
      expect([...s].sort((x, y) => x - y)).toEqual(s);
      expect(f.calibration.channels[ch].threshold).toBe(s[s.length - 1]);
    }
    expect(f.calibration.heatmapScale).toBeGreaterThan(0);
    const epochs = events.filter((e) => e.type === 'epoch');
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2]);
    for (const e of epochs) {
      expect(e).toMatchObject({ loss: expect.any(Number), recon: expect.any(Number), kl: expect.any(Number), valLoss: expect.any(Number) });
      expect(e.imagesPerSecond).toBeGreaterThan(0);
    }
    const steps = events.filter((e) => e.type === 'step');
    expect(steps.length).toBeGreaterThan(0);
    expect(steps[steps.length - 1]).toMatchObject({ step: 4, steps: 4, etaSeconds: expect.any(Number) });
    expect(events[events.length - 1]).toEqual({ type: 'calibrating', images: 20 });
    f.vae.model.dispose();
  });

  it('stops early when validation loss stops improving and keeps the best epoch', async () => {
    // A learning rate this high makes validation loss bounce, so patience 1 triggers.
    const f = await fitDetector(blobImages(60, 28), { ...tiny, epochs: 40, patience: 1, learningRate: 0.05 });
    expect(f.training.stoppedEarly).toBe(true);
    expect(f.training.epochs.length).toBeLessThan(40);
    const best = Math.min(...f.training.epochs.map((e) => e.valLoss));
    expect(f.training.epochs[f.training.bestEpoch - 1].valLoss).toBe(best);
    f.vae.model.dispose();
  });

  it('can be cancelled and says so', async () => {
    const controller = new AbortController();
    const run = fitDetector(blobImages(200, 28), { ...tiny, epochs: 50 }, {
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'epoch') controller.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'cancelled', message: 'training was cancelled' });
  });

  it('refuses too few images and bad options with clear messages', async () => {
    await expect(fitDetector(blobImages(5, 28), tiny)).rejects.toMatchObject({ code: 'not_enough_images', message: expect.stringMatching(/at least 20/) });
    await expect(fitDetector(blobImages(30, 28), { ...tiny, epochs: 0 })).rejects.toThrow(/--epochs must be an integer/);
    await expect(fitDetector(blobImages(30, 28), { ...tiny, beta: -1 })).rejects.toThrow(/--beta/);
    await expect(fitDetector(blobImages(30, 32), { ...tiny, size: 32, likelihood: 'poisson' as never })).rejects.toThrow(/likelihood/);
  });
});

describe('validationCount', () => {
  it('takes 10 % but at least 50 when there are enough images', () => {
    expect(validationCount(60000, 0.1, 50)).toBe(6000);
    expect(validationCount(400, 0.1, 50)).toBe(50);
    expect(validationCount(100, 0.1, 50)).toBe(25);
    expect(validationCount(20, 0.1, 50)).toBe(5);
  });
});

describe('autoBatchSize', () => {
  it('uses the largest of 64, 32, 16 that gives at least 20 steps an epoch', () => {
    expect(autoBatchSize(54000)).toBe(64);
    expect(autoBatchSize(1280)).toBe(64);
    expect(autoBatchSize(1000)).toBe(32);
    expect(autoBatchSize(350)).toBe(16);
    expect(autoBatchSize(10)).toBe(16);
  });
});

describe('fitDetector options', () => {
  it('records the batch size it chose', async () => {
    const f = await fitDetector(blobImages(60, 28), { ...tiny, epochs: 1, batchSize: 0 });
    expect(f.options.batchSize).toBe(16);
    expect(f.training.epochs[0].epoch).toBe(1);
    f.vae.model.dispose();
  });
});

import * as tf from '@tensorflow/tfjs';
import { readFile, writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelMeta } from '../../server/domain/types.js';
import { initBackend } from '../../server/ml/backend.js';
import { loadModel, saveModel } from '../../server/ml/model-store.js';
import { scoreImages } from '../../server/ml/score.js';
import { createVae } from '../../server/ml/vae.js';
import { DEFAULT_TRAIN_OPTIONS } from '../../server/services/fit.js';
import { blobImages, tempDir } from '../helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  await initBackend('wasm');
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());

function metaFor(id: string): ModelMeta {
  return {
    format: 'latentwatch-vae/1', id, createdAt: new Date(0).toISOString(),
    input: { size: 28, channels: 1, resize: 'fill' },
    options: { ...DEFAULT_TRAIN_OPTIONS, size: 28 },
    likelihood: { kind: 'gaussian', sigma2: 0.01 },
    dataset: { source: 'test', images: 0, train: 0, validation: 0, skipped: 0 },
    training: { epochs: [], bestEpoch: 0, stoppedEarly: false, seconds: 0, imagesPerSecond: 0 },
    calibration: { n: 0, falseAlarmRate: 0.01, heatmapScale: 1, channels: {} as ModelMeta['calibration']['channels'] },
    parameters: 0, backend: 'wasm',
  };
}

describe('model store', () => {
  it('writes model.json, weights.bin and meta.json, and a reloaded model scores identically', async () => {
    const vae = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 3 });
    const out = path.join(dir, 'm1');
    await saveModel(out, vae, metaFor('m1'));
    const modelJson = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8'));
    expect(modelJson.weightsManifest[0].paths).toEqual(['weights.bin']);

    const loaded = await loadModel(out);
    expect(loaded.meta.id).toBe('m1');
    const set = blobImages(5, 28);
    const m = { likelihood: 'gaussian' as const, sigma2: 0.01 };
    const a = scoreImages({ vae, ...m }, set, { errorMaps: true });
    const b = scoreImages({ vae: loaded.vae, ...m }, set, { errorMaps: true });
    expect(b.scores).toEqual(a.scores);
    expect(b.errorMaps).toEqual(a.errorMaps);
    vae.model.dispose();
    loaded.vae.model.dispose();
  });

  it('names the directory and the missing part when a model is incomplete', async () => {
    const vae = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 3 });
    const out = path.join(dir, 'm2');
    await saveModel(out, vae, metaFor('m2'));
    vae.model.dispose();
    await rm(path.join(out, 'weights.bin'));
    await expect(loadModel(out)).rejects.toThrow(/m2: not a latentwatch model directory \(weights\.bin is missing\)/);
    await expect(loadModel(path.join(dir, 'nowhere'))).rejects.toMatchObject({ code: 'not_found' });
  });

  it('refuses corrupt or foreign model files with model_invalid', async () => {
    const vae = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 3 });
    const out = path.join(dir, 'm3');
    await saveModel(out, vae, metaFor('m3'));
    vae.model.dispose();
    await writeFile(path.join(out, 'meta.json'), '{"format": "something-else"}');
    await expect(loadModel(out)).rejects.toMatchObject({ code: 'model_invalid', message: expect.stringMatching(/unknown model format/) });
    await writeFile(path.join(out, 'meta.json'), '{not json');
    await expect(loadModel(out)).rejects.toMatchObject({ code: 'model_invalid' });
    const other = createVae({ size: 28, channels: 1, latent: 4, baseFilters: 8, seed: 3 });
    await saveModel(out, other, metaFor('m3'));
    other.model.dispose();
    await writeFile(path.join(out, 'weights.bin'), Buffer.alloc(10));
    const before = tf.memory().numTensors;
    await expect(loadModel(out)).rejects.toMatchObject({ code: 'model_invalid' });
    expect(tf.memory().numTensors).toBe(before);
  });
});

// Training and scoring speed per backend at 28x28x1 and 64x64x1, and peak RSS.
// Writes bench/results/speed-<backend...>.json.
//
//   npm run bench:speed                       # every backend that loads here
//   npm run bench:speed -- --backends wasm --seconds 20
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../server/ml/backend.js';
import type { ImageSet } from '../server/ml/dataset.js';
import { mulberry32 } from '../server/ml/random.js';
import { fitLocalStats } from '../server/ml/local-maps.js';
import { scoreImages } from '../server/ml/score.js';
import { trainVae } from '../server/ml/train.js';
import { createVae } from '../server/ml/vae.js';
import { useStockBackpropInput } from '../server/ml/wasm-kernels.js';
import { DEFAULT_TRAIN_OPTIONS } from '../server/services/fit.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({ options: { backends: { type: 'string' }, seconds: { type: 'string' }, sizes: { type: 'string' } } });
const budget = Number(v.seconds ?? 15); // seconds per measurement, at most
const sizes = (v.sizes ?? '28,64').split(',').map(Number);
const requested = (v.backends ?? 'tensorflow,wasm,cpu').split(',') as BackendName[];

function noise(count: number, size: number): ImageSet {
  const rand = mulberry32(size);
  const data = new Float32Array(count * size * size);
  for (let i = 0; i < data.length; i++) data[i] = rand();
  return { data, count, size, channels: 1 };
}

/** Runs fn (which processes `perCall` images) repeatedly for up to `budget` s, after one warm-up call unless told not to. */
async function rate(perCall: number, fn: () => void | Promise<void>, maxCalls = Infinity, warmUp = true): Promise<{ imagesPerSecond: number; calls: number }> {
  if (warmUp) await fn();
  let calls = 0;
  const start = performance.now();
  while (calls < maxCalls && performance.now() - start < budget * 1000) {
    await fn();
    calls++;
  }
  return { imagesPerSecond: (calls * perCall) / ((performance.now() - start) / 1000), calls };
}

async function measure(size: number, backend: BackendName) {
  const o = { ...DEFAULT_TRAIN_OPTIONS, size };
  const vae = createVae({ size, channels: 1, latent: o.latent, baseFilters: o.baseFilters, seed: 1 });
  const batch = noise(64, size);
  const one = noise(1, size);
  const m = { vae, likelihood: o.likelihood, sigma2: 0.01 };
  // One epoch of one batch per call: the real training loop, optimizer included.
  // The pure-JS cpu backend trains convolutions at ~1 img/s: one timed call at 28x28 only.
  const slow = backend === 'cpu';
  const train = slow && size > 28
    ? { imagesPerSecond: NaN, calls: 0 }
    : await rate(64, async () => {
      await trainVae(vae, batch, one, { ...o, epochs: 1, batchSize: 64 });
    }, slow ? 1 : Infinity, !slow);
  const score1 = await rate(1, () => void scoreImages(m, one), slow ? 20 : Infinity);
  const score64 = await rate(64, () => void scoreImages(m, batch, { batchSize: 64 }), slow ? 2 : Infinity);
  // Models trained now score through local error maps (SSIM, standardisation, smoothing, top-k).
  const local = fitLocalStats(vae, batch);
  const scoreLocal64 = await rate(64, () => void scoreImages({ ...m, local }, batch, { batchSize: 64 }), slow ? 2 : Infinity);
  const result: Record<string, unknown> = {
    size, parameters: vae.model.countParams(),
    trainImagesPerSecond: Number.isNaN(train.imagesPerSecond) ? null : train.imagesPerSecond,
    scoreImagesPerSecondBatch1: score1.imagesPerSecond,
    scoreImagesPerSecondBatch64: score64.imagesPerSecond,
    scoreLocalMapsImagesPerSecondBatch64: scoreLocal64.imagesPerSecond,
  };
  if (backend === 'wasm') {
    // Before/after for the custom Conv2DBackpropInput (the decoder's transposed convolutions).
    useStockBackpropInput(true);
    result.stockKernelScoreImagesPerSecondBatch64 = (await rate(64, () => void scoreImages(m, batch, { batchSize: 64 }))).imagesPerSecond;
    result.stockKernelTrainImagesPerSecond = (await rate(64, async () => {
      await trainVae(vae, batch, one, { ...o, epochs: 1, batchSize: 64 });
    })).imagesPerSecond;
    useStockBackpropInput(false);
  }
  vae.model.dispose();
  return result;
}

const results = [];
for (const name of requested) {
  let info;
  try {
    info = await initBackend(name);
  } catch (err) {
    console.error(`${name}: not available (${(err as Error).message.split('\n')[0]})`);
    continue;
  }
  for (const size of sizes) {
    const r = await measure(size, name);
    results.push({ backend: info.name, provider: info.provider, ...r });
    const f = (x: unknown) => (typeof x === 'number' ? x.toFixed(1).padStart(8) : '     n/a');
    console.log(`${info.name.padEnd(10)} ${size}x${size}  train ${f(r.trainImagesPerSecond)} img/s  score b1 ${f(r.scoreImagesPerSecondBatch1)}  b64 ${f(r.scoreImagesPerSecondBatch64)} img/s  local-map b64 ${f(r.scoreLocalMapsImagesPerSecondBatch64)} img/s` +
      (r.stockKernelScoreImagesPerSecondBatch64 ? `  (stock kernel: train ${f(r.stockKernelTrainImagesPerSecond)}, score b64 ${f(r.stockKernelScoreImagesPerSecondBatch64)})` : ''));
  }
}
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
console.log(`peak RSS ${peakRssMiB.toFixed(0)} MiB; tensors alive ${tf.memory().numTensors}`);
const file = await writeResult(`speed-${[...new Set(results.map((r) => r.backend))].join('-')}`, {
  benchmark: 'speed', date: new Date().toISOString(), machine: machine(), secondsPerMeasurement: budget,
  options: { latent: DEFAULT_TRAIN_OPTIONS.latent, baseFilters: DEFAULT_TRAIN_OPTIONS.baseFilters, batch: 64 },
  results, peakRssMiB,
});
console.error(`wrote ${file}`);

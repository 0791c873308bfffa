// Where the time goes: per-kernel time of one training step and one scoring
// batch of the default VAE on the wasm backend. Writes
// bench/results/profile-<label>.json.
//
//   npm run build && node dist/bench/profile.js                      # 64x64, batch 64
//   node dist/bench/profile.js --size 28 --repeats 5 --label after
//   node dist/bench/profile.js --kernels before                     # the kernels before the sub-pixel change
//   node dist/bench/profile.js --kernels stock                      # wasm's own Conv2DBackpropInput and BatchMatMul
//
// Kernel times come from tf.profile (the wasm backend times each kernel
// synchronously). Kernels this project registers call wasm's Conv2D
// directly, so their time includes that convolution and nothing is counted
// twice. "other" is wall time outside kernels (JS, tape, optimizer glue).
import * as tf from '@tensorflow/tfjs';
import { execSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { initBackend } from '../server/ml/backend.js';
import { vaeLoss } from '../server/ml/loss.js';
import { mulberry32 } from '../server/ml/random.js';
import { scoreImages } from '../server/ml/score.js';
import { createVae, type Vae } from '../server/ml/vae.js';
import { useBackpropFilter, useBackpropInput, useStockBatchMatMul } from '../server/ml/wasm-kernels.js';
import { DEFAULT_TRAIN_OPTIONS } from '../server/services/fit.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({
  options: {
    size: { type: 'string' },
    batch: { type: 'string' },
    repeats: { type: 'string' },
    top: { type: 'string' },
    label: { type: 'string' },
    kernels: { type: 'string' },
    verbose: { type: 'boolean' },
  },
});
const size = Number(v.size ?? 64);
const batchSize = Number(v.batch ?? 64);
const repeats = Number(v.repeats ?? 3);
const topN = Number(v.top ?? 12);
const verbose = v.verbose ?? false;

interface KernelRow { kernel: string; calls: number; ms: number; share: number; byShape: { shapes: string; calls: number; ms: number }[] }

function load(): string {
  try {
    return execSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** Profiles fn `repeats` times (after one warm-up call): mean ms per call, per kernel name and per input shapes. */
async function profileOf(fn: () => tf.TensorContainer): Promise<{ wallMs: number; kernelMs: number; otherMs: number; kernels: KernelRow[]; skippedWrappers: string[] }> {
  tf.dispose(fn());
  const byName = new Map<string, { calls: number; ms: number; shapes: Map<string, { calls: number; ms: number }> }>();
  const wrappers = new Set<string>();
  let wall = 0;
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    const info = await tf.profile(() => fn() as tf.Tensor);
    wall += performance.now() - start;
    for (const k of info.kernels) {
      // Ops with a custom gradient (fused conv/matmul) also appear under their op's
      // scope name, wrapping the real kernel: count registered kernels only.
      if (tf.getKernel(k.name, tf.getBackend()) == null) {
        wrappers.add(k.name);
        continue;
      }
      const ms = (await k.kernelTimeMs) as number;
      const e = byName.get(k.name) ?? { calls: 0, ms: 0, shapes: new Map() };
      e.calls++;
      e.ms += ms;
      const key = k.inputShapes.map((s) => `[${s}]`).join(' ');
      const s = e.shapes.get(key) ?? { calls: 0, ms: 0 };
      s.calls++;
      s.ms += ms;
      e.shapes.set(key, s);
      byName.set(k.name, e);
    }
    tf.dispose(info.result);
  }
  const kernelMs = [...byName.values()].reduce((a, e) => a + e.ms, 0) / repeats;
  const wallMs = wall / repeats;
  const kernels = [...byName.entries()]
    .map(([kernel, e]) => ({
      kernel,
      calls: e.calls / repeats,
      ms: e.ms / repeats,
      share: e.ms / repeats / wallMs,
      byShape: [...e.shapes.entries()]
        .map(([shapes, s]) => ({ shapes, calls: s.calls / repeats, ms: s.ms / repeats }))
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 6),
    }))
    .sort((a, b) => b.ms - a.ms);
  return { wallMs, kernelMs, otherMs: wallMs - kernelMs, kernels, skippedWrappers: [...wrappers] };
}

function trainStep(vae: Vae, optimizer: tf.Optimizer, x: tf.Tensor4D, vars: tf.Variable[], seed: number): tf.Tensor {
  // The step of server/ml/train.ts: reparameterised sample, calibrated gaussian decoder, Adam.
  const o = DEFAULT_TRAIN_OPTIONS;
  return tf.tidy(() => {
    const cost = optimizer.minimize(() => {
      const [mu, logVar] = vae.encoder.apply(x, { training: true }) as [tf.Tensor2D, tf.Tensor2D];
      const eps = tf.randomNormal(mu.shape, 0, 1, 'float32', seed);
      const z = mu.add(eps.mul(logVar.mul(0.5).exp()));
      const xHat = vae.decoder.apply(z, { training: true }) as tf.Tensor4D;
      return vaeLoss(x, xHat, mu, logVar, o.likelihood, o.beta, null).total;
    }, true, vars);
    return cost as tf.Scalar;
  });
}

function print(title: string, p: Awaited<ReturnType<typeof profileOf>>): void {
  console.log(`\n${title}: ${p.wallMs.toFixed(1)} ms wall, ${p.kernelMs.toFixed(1)} ms in kernels, ${p.otherMs.toFixed(1)} ms other`);
  for (const k of p.kernels.slice(0, topN)) {
    console.log(`  ${k.kernel.padEnd(24)} ${String(k.calls).padStart(4)} calls ${k.ms.toFixed(1).padStart(9)} ms ${(k.share * 100).toFixed(1).padStart(5)} %`);
    for (const s of k.byShape.slice(0, verbose ? 6 : 0)) {
      console.log(`      ${s.shapes.padEnd(40)} ${String(s.calls).padStart(4)} calls ${s.ms.toFixed(1).padStart(9)} ms`);
    }
  }
}

const info = await initBackend('wasm');
// after: the kernels in use; before: zero-insertion Conv2DBackpropInput, dilated-convolution
// Conv2DBackpropFilter everywhere, stock BatchMatMul; stock: wasm's own Conv2DBackpropInput too.
const kernels = v.kernels ?? 'after';
if (kernels !== 'after') {
  useBackpropInput(kernels === 'stock' ? 'stock' : 'zero-insertion');
  useBackpropFilter('dilated-conv');
  useStockBatchMatMul(true);
}
const loadBefore = load();
const o = DEFAULT_TRAIN_OPTIONS;
const vae = createVae({ size, channels: 1, latent: o.latent, baseFilters: o.baseFilters, seed: 1 });
const rand = mulberry32(size);
const data = new Float32Array(batchSize * size * size);
for (let i = 0; i < data.length; i++) data[i] = rand();
const x = tf.tensor4d(data, [batchSize, size, size, 1]);
const optimizer = tf.train.adam(o.learningRate);
const vars = vae.model.trainableWeights.map((w) => w.read() as tf.Variable);
let step = 0;
const train = await profileOf(() => trainStep(vae, optimizer, x, vars, step++));
const score = await profileOf(() => {
  // The scoring forward pass alone, as scoreImages runs it per batch (predict's default batch of 32).
  return tf.tidy(() => vae.model.predict(x) as tf.Tensor[]);
});
// And scoreImages end to end (KL, ELBO, read-back) for reference, without per-kernel detail.
const set = { data, count: batchSize, size, channels: 1 as const };
scoreImages({ vae, likelihood: o.likelihood, sigma2: 0.01 }, set);
let t = performance.now();
for (let r = 0; r < repeats; r++) scoreImages({ vae, likelihood: o.likelihood, sigma2: 0.01 }, set);
const scoreImagesMs = (performance.now() - t) / repeats;
const loadAfter = load();

print(`train step (${size}x${size}, batch ${batchSize})`, train);
print(`scoring forward pass (${size}x${size}, batch ${batchSize})`, score);
console.log(`\nscoreImages end to end: ${scoreImagesMs.toFixed(1)} ms per batch`);
console.log(`load: ${loadBefore} -> ${loadAfter}`);

x.dispose();
optimizer.dispose();
vae.model.dispose();
const label = v.label ?? `${kernels}-wasm-${size}`;
const file = await writeResult(`profile-${label}`, {
  benchmark: 'profile', date: new Date().toISOString(), machine: machine(), backend: info.name,
  load: { before: loadBefore, after: loadAfter },
  options: { size, batch: batchSize, latent: o.latent, baseFilters: o.baseFilters, repeats, kernels },
  trainStep: train, scoringForward: score, scoreImagesMs,
});
console.error(`wrote ${file}`);

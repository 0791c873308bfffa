// Training and scoring speed per backend at 28x28x1, 64x64x1 and 128x128x1,
// against a PyTorch peer running the same VAE in the same run, and peak RSS.
// Writes bench/results/speed-<backend...>.json.
//
//   npm run bench:speed                       # every backend that loads here
//   npm run bench:speed -- --backends wasm --seconds 20 --sizes 28,64
//   npm run bench:speed -- --backends wasm --variants after,before,stock
//   npm run bench:speed -- --backends wasm --label wasm-vs-pytorch   # bench/results/speed-wasm-vs-pytorch.json
//
// On wasm, kernel variants are measured A/B in the same process, interleaved
// in rounds (A B, then B A) so that machine noise hits both alike:
//   after   the kernels in use (sub-pixel Conv2DBackpropInput, matrix-product
//           Conv2DBackpropFilter for the first layer, BatchMatMul wrapper)
//   before  zero-insertion Conv2DBackpropInput, dilated-convolution
//           Conv2DBackpropFilter everywhere, wasm's stock BatchMatMul
//   stock   as before, with wasm's own Conv2DBackpropInput
// The PyTorch peer (bench/peer_vae.py: same layers, step and scoring pass) runs
// between the rounds at each size with 1 and 2 threads, when
// `/usr/bin/python3 -c 'import torch'` works (Debian's python3-torch).
// LATENTWATCH_PEER_PYTHON picks other interpreters, comma-separated (e.g. a
// venv with PyTorch from pip: `/usr/bin/python3,/opt/venv/bin/python`), each
// measured and compared on its own; --no-peer skips them.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../server/ml/backend.js';
import type { ImageSet } from '../server/ml/dataset.js';
import { mulberry32 } from '../server/ml/random.js';
import { fitLocalStats } from '../server/ml/local-maps.js';
import { scoreImages } from '../server/ml/score.js';
import { trainVae } from '../server/ml/train.js';
import { createVae } from '../server/ml/vae.js';
import { useBackpropFilter, useBackpropInput, useStockBatchMatMul } from '../server/ml/wasm-kernels.js';
import { DEFAULT_TRAIN_OPTIONS } from '../server/services/fit.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({
  options: {
    backends: { type: 'string' },
    seconds: { type: 'string' },
    sizes: { type: 'string' },
    variants: { type: 'string' },
    rounds: { type: 'string' },
    'peer-seconds': { type: 'string' },
    'no-peer': { type: 'boolean' },
    label: { type: 'string' },
  },
});
const budget = Number(v.seconds ?? 10); // seconds per measurement and variant, over all rounds
const sizes = (v.sizes ?? '28,64,128').split(',').map(Number);
const requested = (v.backends ?? 'tensorflow,wasm,cpu').split(',') as BackendName[];
const variants = (v.variants ?? 'after,before').split(',') as Variant[];
const rounds = Math.max(1, Number(v.rounds ?? 2));
const peerSeconds = Number(v['peer-seconds'] ?? budget);
const peerPythons = (process.env.LATENTWATCH_PEER_PYTHON ?? '/usr/bin/python3').split(',').filter(Boolean);
const peerScript = fileURLToPath(new URL('../../bench/peer_vae.py', import.meta.url));

type Variant = 'after' | 'before' | 'stock';

function setVariant(variant: Variant): void {
  useBackpropInput(variant === 'after' ? 'sub-pixel' : variant === 'before' ? 'zero-insertion' : 'stock');
  useStockBatchMatMul(variant !== 'after');
  useBackpropFilter(variant === 'after' ? 'auto' : 'dilated-conv');
}

function load(): string {
  return os.loadavg().map((x) => x.toFixed(2)).join(' ');
}

function noise(count: number, size: number): ImageSet {
  const rand = mulberry32(size);
  const data = new Float32Array(count * size * size);
  for (let i = 0; i < data.length; i++) data[i] = rand();
  return { data, count, size, channels: 1 };
}

/** Runs fn (which processes `perCall` images) repeatedly for up to `seconds` (at least once), after one warm-up call unless told not to. */
async function rate(perCall: number, fn: () => void | Promise<void>, maxCalls = Infinity, warmUp = true, seconds = budget): Promise<{ imagesPerSecond: number; calls: number; ms: number }> {
  if (warmUp) await fn();
  let calls = 0;
  const start = performance.now();
  while (calls < maxCalls && (calls === 0 || performance.now() - start < seconds * 1000)) {
    await fn();
    calls++;
  }
  const ms = performance.now() - start;
  return { imagesPerSecond: (calls * perCall) / (ms / 1000), calls, ms };
}

interface PeerResult { size: number; threads: number; parameters: number; trainImagesPerSecond: number; scoreImagesPerSecondBatch64: number }
interface Peer { interpreter: string; available: boolean; note?: string; torch?: string; python?: string; results: PeerResult[] }

function peerAvailable(interpreter: string): { ok: boolean; note?: string } {
  if (v['no-peer']) return { ok: false, note: '--no-peer' };
  const probe = spawnSync(interpreter, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status === 0) return { ok: true };
  return { ok: false, note: `${interpreter} -c 'import torch' failed (${(probe.error?.message ?? probe.stderr ?? '').trim().split('\n').pop()}); apt-get install -y python3-torch to measure the PyTorch peer` };
}

function runPeer(interpreter: string, size: number): { torch: string; python: string; results: PeerResult[] } | { error: string } {
  const r = spawnSync(interpreter, [peerScript, '--sizes', String(size), '--threads', '1,2', '--seconds', String(peerSeconds)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) return { error: `peer exited with ${r.status ?? r.signal}` };
  return JSON.parse(r.stdout);
}

async function measure(size: number, backend: BackendName, peers: Peer[]) {
  const o = { ...DEFAULT_TRAIN_OPTIONS, size };
  const vae = createVae({ size, channels: 1, latent: o.latent, baseFilters: o.baseFilters, seed: 1 });
  const batch = noise(64, size);
  const one = noise(1, size);
  const m = { vae, likelihood: o.likelihood, sigma2: 0.01 };
  const trainOnce = async () => {
    // One epoch of one batch per call: the real training loop, optimizer included.
    await trainVae(vae, batch, one, { ...o, epochs: 1, batchSize: 64 });
  };
  const score64Once = () => void scoreImages(m, batch, { batchSize: 64 });
  const loadBefore = load();
  const result: Record<string, unknown> = { size, parameters: vae.model.countParams() };

  if (backend === 'cpu') {
    // The pure-JS cpu backend trains convolutions at ~1 img/s: one timed call at 28x28 only.
    const train = size > 28 ? null : (await rate(64, trainOnce, 1, false)).imagesPerSecond;
    Object.assign(result, {
      trainImagesPerSecond: train,
      scoreImagesPerSecondBatch1: (await rate(1, () => void scoreImages(m, one), 20)).imagesPerSecond,
      scoreImagesPerSecondBatch64: (await rate(64, score64Once, 2)).imagesPerSecond,
    });
  } else {
    const ab = backend === 'wasm' ? variants : (['after'] as Variant[]);
    const acc = new Map<string, { images: number; ms: number; calls: number }>();
    const add = (key: string, r: { calls: number; ms: number }, perCall: number) => {
      const e = acc.get(key) ?? { images: 0, ms: 0, calls: 0 };
      e.images += r.calls * perCall;
      e.ms += r.ms;
      e.calls += r.calls;
      acc.set(key, e);
    };
    const round = async (r: number) => {
      const order = r % 2 === 0 ? ab : [...ab].reverse();
      for (const variant of order) {
        if (backend === 'wasm') setVariant(variant);
        add(`${variant}.train`, await rate(64, trainOnce, Infinity, r === 0, budget / rounds), 64);
        add(`${variant}.score64`, await rate(64, score64Once, Infinity, r === 0, budget / rounds), 64);
      }
    };
    const peerAt = Math.floor(rounds / 2);
    for (let r = 0; r < rounds; r++) {
      for (const peer of r === peerAt ? peers.filter((x) => x.available) : []) {
        const p = runPeer(peer.interpreter, size);
        if ('error' in p) {
          peer.note = p.error;
        } else {
          peer.torch = p.torch;
          peer.python = p.python;
          peer.results.push(...p.results);
        }
      }
      await round(r);
    }
    const ips = (key: string) => {
      const e = acc.get(key);
      return e ? (e.images / e.ms) * 1000 : null;
    };
    if (backend === 'wasm') setVariant('after');
    Object.assign(result, {
      trainImagesPerSecond: ips('after.train'),
      scoreImagesPerSecondBatch1: (await rate(1, () => void scoreImages(m, one), Infinity, true, budget / 2)).imagesPerSecond,
      scoreImagesPerSecondBatch64: ips('after.score64'),
    });
    // Models trained now score through local error maps (SSIM, standardisation, smoothing, top-k).
    const local = fitLocalStats(vae, batch);
    result.scoreLocalMapsImagesPerSecondBatch64 = (await rate(64, () => void scoreImages({ ...m, local }, batch, { batchSize: 64 }), Infinity, true, budget / 2)).imagesPerSecond;
    if (backend === 'wasm') {
      result.variants = Object.fromEntries(ab.map((k) => [k, {
        trainImagesPerSecond: ips(`${k}.train`), scoreImagesPerSecondBatch64: ips(`${k}.score64`),
        trainCalls: acc.get(`${k}.train`)?.calls, scoreCalls: acc.get(`${k}.score64`)?.calls,
      }]));
    }
  }
  result.load = { before: loadBefore, after: load() };
  vae.model.dispose();
  return result;
}

const f = (x: unknown, w = 8) => (typeof x === 'number' ? x.toFixed(1).padStart(w) : 'n/a'.padStart(w));
const peers: Peer[] = peerPythons.map((interpreter) => {
  const probe = peerAvailable(interpreter);
  if (!probe.ok) console.log(`PyTorch peer skipped: ${probe.note}`);
  return { interpreter, available: probe.ok, note: probe.note, results: [] };
});
console.log(`load average at start: ${load()}`);

const results: Record<string, unknown>[] = [];
for (const name of requested) {
  let info;
  try {
    info = await initBackend(name);
  } catch (err) {
    console.error(`${name}: not available (${(err as Error).message.split('\n')[0]})`);
    continue;
  }
  for (const size of sizes) {
    // The peer runs once per size, beside the first backend that measures it.
    const r = await measure(size, info.name, results.some((x) => x.size === size) ? [] : peers);
    results.push({ backend: info.name, provider: info.provider, ...r });
    console.log(`${info.name.padEnd(10)} ${size}x${size}  train ${f(r.trainImagesPerSecond)} img/s  score b1 ${f(r.scoreImagesPerSecondBatch1)}  b64 ${f(r.scoreImagesPerSecondBatch64)} img/s  local-map b64 ${f(r.scoreLocalMapsImagesPerSecondBatch64)} img/s  (load ${(r.load as { after: string }).after})`);
    const vs = r.variants as Record<string, { trainImagesPerSecond: number; scoreImagesPerSecondBatch64: number }> | undefined;
    if (vs) {
      for (const [k, x] of Object.entries(vs)) {
        const base = vs.after;
        console.log(`    ${k.padEnd(7)} train ${f(x.trainImagesPerSecond)} img/s  score b64 ${f(x.scoreImagesPerSecondBatch64)} img/s` +
          (k === 'after' ? '' : `   after/${k}: train ${(base.trainImagesPerSecond / x.trainImagesPerSecond).toFixed(2)}x, score ${(base.scoreImagesPerSecondBatch64 / x.scoreImagesPerSecondBatch64).toFixed(2)}x`));
      }
    }
  }
}

// Ours / best of PyTorch with 1 and 2 threads, per peer, backend and size.
const ratios = [];
for (const peer of peers) for (const r of results) {
  const p = peer.results.filter((x) => x.size === r.size);
  if (p.length === 0) continue;
  const bestTrain = Math.max(...p.map((x) => x.trainImagesPerSecond));
  const bestScore = Math.max(...p.map((x) => x.scoreImagesPerSecondBatch64));
  const ours = { train: r.trainImagesPerSecond as number | null, score: r.scoreImagesPerSecondBatch64 as number | null };
  ratios.push({
    peer: `pytorch ${peer.torch} (${peer.interpreter})`, backend: r.backend, size: r.size,
    oursTrain: ours.train, torchTrain1: p.find((x) => x.threads === 1)?.trainImagesPerSecond, torchTrain2: p.find((x) => x.threads === 2)?.trainImagesPerSecond,
    trainRatio: ours.train == null ? null : ours.train / bestTrain,
    oursScore: ours.score, torchScore1: p.find((x) => x.threads === 1)?.scoreImagesPerSecondBatch64, torchScore2: p.find((x) => x.threads === 2)?.scoreImagesPerSecondBatch64,
    scoreRatio: ours.score == null ? null : ours.score / bestScore,
  });
}
for (const peer of [...new Set(ratios.map((x) => x.peer))]) {
  console.log(`\nours / best of ${peer}, 1 or 2 threads, batch 64, img/s:`);
  console.log(`backend     size   train: ours  torch1  torch2  ratio   score: ours  torch1  torch2  ratio`);
  for (const x of ratios.filter((y) => y.peer === peer)) {
    console.log(`${String(x.backend).padEnd(10)} ${String(x.size).padStart(5)}  ${f(x.oursTrain, 12)} ${f(x.torchTrain1, 7)} ${f(x.torchTrain2, 7)} ${(x.trainRatio ?? NaN).toFixed(2).padStart(6)}  ${f(x.oursScore, 12)} ${f(x.torchScore1, 7)} ${f(x.torchScore2, 7)} ${(x.scoreRatio ?? NaN).toFixed(2).padStart(6)}`);
  }
}
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
console.log(`peak RSS ${peakRssMiB.toFixed(0)} MiB; tensors alive ${tf.memory().numTensors}; load average at end: ${load()}`);
const file = await writeResult(`speed-${v.label ?? [...new Set(results.map((r) => r.backend))].join('-')}`, {
  benchmark: 'speed', date: new Date().toISOString(), machine: machine(), secondsPerMeasurement: budget, rounds,
  options: { latent: DEFAULT_TRAIN_OPTIONS.latent, baseFilters: DEFAULT_TRAIN_OPTIONS.baseFilters, batch: 64 },
  variants: {
    after: 'sub-pixel Conv2DBackpropInput, matrix-product Conv2DBackpropFilter when kh*kw*cin <= 64, BatchMatMul wrapper',
    before: 'zero-insertion Conv2DBackpropInput, dilated-convolution Conv2DBackpropFilter, stock BatchMatMul',
    stock: "wasm's own Conv2DBackpropInput, dilated-convolution Conv2DBackpropFilter, stock BatchMatMul",
  },
  results, peers, ratios, peakRssMiB,
});
console.error(`wrote ${file}`);

// Detection with frozen, ImageNet-pretrained CNN features instead of pixels:
// does a PatchCore- or PaDiM-style scorer on MobileNetV2 feature maps beat the
// pixel VAE on the same splits as bench/detection.ts? Benchmark only.
//
//   npm run build && node dist/bench/features.js --dataset fixtures
//   npm run build && node dist/bench/features.js --dataset elpv [--elpv ../shared/datasets/elpv]
//
// Options (defaults in brackets):
//   --weights DIR   MobileNetV2 weights: nsfwjs's dist/models/mobilenet_v2
//                   (JS bundles) or any model.json + shards folder
//                   [$LATENTWATCH_FEATURE_WEIGHTS, else
//                   /work/features-deps/node_modules/nsfwjs/dist/models/mobilenet_v2]
//   --size N        network input side [224]
//   --layers A,B    feature maps, finest first [block_5_add,block_9_add]
//                   (stride 8: 32 ch, stride 16: 64 ch; all layers used must be
//                   in blocks 0-10, the frozen ImageNet part of nsfwjs's model)
//   --pool K        k x k average pooling of each map, stride 1 [3]
//   --dims N        random channel subset for every scorer, 0 = all [0]
//   --padim-dims N  random channel subset for the per-position Gaussian [100]
//   --bank N        memory-bank size for PatchCore [10000]
//   --coreset L     random,greedy: which banks to build [random,greedy]
//   --dfr-epochs N  also train DFR-lite (an autoencoder on the pooled patch features) for N epochs; 0 = off [0]
//   --norm X        imagenet ([-1, 1], as Keras trained it) or unit ([0, 1], as nsfwjs feeds it) [imagenet]
//   --limit N       use at most N training normals (evenly spaced; bounds run time) [all]
//   --batch N, --seed N, --tag NAME (results file bench/results/features-<tag or dataset>.json)
//
// Splits are those of bench/detection.ts (no randomness), and the calibration
// split inside the training normals is the VAE's (calibrationSplit: seed 42,
// 10 % but at least 50). Scorers are fit on the rest of the training normals;
// the 1 % false-alarm threshold is the empirical quantile of the calibration
// images' scores (thresholdAt), judged on the held-out test normals.
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { auroc, thresholdAt } from '../server/domain/calibration.js';
import { initBackend } from '../server/ml/backend.js';
import { loadImages } from '../server/ml/dataset.js';
import { mulberry32, shuffledIndices } from '../server/ml/random.js';
import { DEFAULT_TRAIN_OPTIONS, validationCount } from '../server/services/fit.js';
import { DEFAULT_WEIGHTS, Extractor, loadBackbone, type FeatureBatch, type Normalisation } from './features/backbone.js';
import { FeatureAutoencoder, greedyCoreset, imageScores, PatchBank, PatchPool, PositionGaussian } from './features/scorers.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'fixtures' },
    elpv: { type: 'string', default: path.resolve('../shared/datasets/elpv') },
    weights: { type: 'string', default: process.env.LATENTWATCH_FEATURE_WEIGHTS ?? DEFAULT_WEIGHTS },
    size: { type: 'string', default: '224' },
    layers: { type: 'string', default: 'block_5_add,block_9_add' },
    pool: { type: 'string', default: '3' },
    dims: { type: 'string', default: '0' },
    'padim-dims': { type: 'string', default: '100' },
    bank: { type: 'string', default: '10000' },
    coreset: { type: 'string', default: 'random,greedy' },
    'dfr-epochs': { type: 'string', default: '0' },
    norm: { type: 'string', default: 'imagenet' },
    limit: { type: 'string' },
    batch: { type: 'string', default: '8' },
    seed: { type: 'string', default: '42' },
    tag: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (v.help) {
  const src = await readFile(path.resolve('bench/features.ts'), 'utf8').catch(() => '');
  console.log(src.split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') || 'see the header comment of bench/features.ts');
  process.exit(0);
}

interface Labelled {
  file: string;
  group: string;
  type: string;
}
interface Dataset {
  train: string[];
  normal: Labelled[];
  anomalous: Labelled[];
  groups: string[];
}

// The two dataset splits, exactly as bench/detection.ts defines them.
async function fixtures(): Promise<Dataset> {
  const normals = (await readdir('fixtures/normal')).sort().map((f) => path.join('fixtures/normal', f));
  const anomalous = (await readdir('fixtures/anomalous')).sort().map((f) => ({ file: path.join('fixtures/anomalous', f), group: 'all', type: f.replace(/_\d+\.\w+$/, '') }));
  return { train: normals.slice(0, 300), normal: normals.slice(300).map((file) => ({ file, group: 'all', type: 'normal' })), anomalous, groups: ['all'] };
}

async function elpv(root: string): Promise<Dataset> {
  if (!existsSync(path.join(root, 'labels.csv'))) throw new Error(`ELPV not found at ${root} (give --elpv <dir with labels.csv and images/>)`);
  const rows = (await readFile(path.join(root, 'labels.csv'), 'utf8')).split('\n').filter((l) => l.trim()).map((l) => l.trim().split(/\s+/));
  const normals = rows.filter((r) => Number(r[1]) === 0).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const train: string[] = [];
  const normal: Labelled[] = [];
  normals.forEach((r, i) => {
    const file = path.join(root, r[0]);
    if ((i + 1) % 5 === 0) normal.push({ file, group: r[2], type: 'normal' });
    else train.push(file);
  });
  const anomalous = rows.filter((r) => Number(r[1]) === 1).map((r) => ({ file: path.join(root, r[0]), group: r[2], type: r[2] }));
  return { train, normal, anomalous, groups: ['mono', 'poly'] };
}

const num = (name: string, x: string | undefined): number => {
  const n = Number(x);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${x}`);
  return n;
};
const size = num('size', v.size);
const seed = num('seed', v.seed);
const batch = num('batch', v.batch);
const bankSize = num('bank', v.bank);
const norm = v.norm as Normalisation;
if (norm !== 'imagenet' && norm !== 'unit') throw new Error('--norm must be imagenet or unit');
const coresets = v.coreset!.split(',').filter(Boolean);

const data = v.dataset === 'elpv' ? await elpv(v.elpv!) : v.dataset === 'fixtures' ? await fixtures() : null;
if (!data) throw new Error(`--dataset must be fixtures or elpv, got ${v.dataset}`);
const backend = await initBackend('wasm');

let backbone;
try {
  backbone = await loadBackbone(v.weights!, size);
} catch (err) {
  console.error(`features: ${(err as Error).message}`);
  process.exit(2);
}
const extractor = new Extractor(backbone.model, {
  layers: v.layers!.split(','), size, norm, pool: num('pool', v.pool), dims: num('dims', v.dims), seed,
});

// The VAE's calibration split of the training normals, then an optional bound on the rest.
const order = shuffledIndices(data.train.length, mulberry32(DEFAULT_TRAIN_OPTIONS.seed));
const nVal = validationCount(data.train.length, DEFAULT_TRAIN_OPTIONS.validationFraction, DEFAULT_TRAIN_OPTIONS.minValidation);
const calFiles = [...order.subarray(0, nVal)].map((i) => data.train[i]);
let fitFiles = [...order.subarray(nVal)].map((i) => data.train[i]);
if (v.limit && num('limit', v.limit) < fitFiles.length) {
  const k = num('limit', v.limit);
  fitFiles = Array.from({ length: k }, (_, i) => fitFiles[Math.floor((i * fitFiles.length) / k)]);
}
console.error(
  `${v.dataset}: fit on ${fitFiles.length} normals, calibrate on ${calFiles.length}, test ${data.normal.length} normals + ${data.anomalous.length} anomalies; ` +
    `backend ${backend.name}; ${size} px, layers ${extractor.o.layers.join('+')} (${extractor.d} ch), pool ${extractor.o.pool}, norm ${norm}; ` +
    `weights ${backbone.info.dir} (${backbone.info.bytes} of ${backbone.info.totalBytes} bytes used)`,
);

let extractMs = 0;
let decodeMs = 0;
let extracted = 0;
/** Decodes and extracts `files` in batches, handing each batch to `each`. */
async function forEachBatch(files: string[], each: (f: FeatureBatch, offset: number) => void): Promise<void> {
  for (let i = 0; i < files.length; i += batch) {
    const t0 = performance.now();
    const loaded = await loadImages(files.slice(i, i + batch), { size, channels: 1 });
    if (loaded.failures.length) throw new Error(`unreadable: ${loaded.failures.map((f) => f.file).join(', ')}`);
    const t1 = performance.now();
    const f = extractor.extract(loaded.set);
    const t2 = performance.now();
    decodeMs += t1 - t0;
    extractMs += t2 - t1;
    extracted += f.count;
    each(f, i);
    process.stderr.write(`\r${Math.min(i + batch, files.length)}/${files.length}   `);
  }
  process.stderr.write('\n');
}

// Fit: a patch pool for the banks, the per-position Gaussian.
const rand = mulberry32(seed);
const poolTarget = coresets.includes('greedy') ? 4 * bankSize : bankSize;
const perImage = Math.max(1, Math.ceil(poolTarget / fitFiles.length));
const pool = new PatchPool(extractor.d, perImage, perImage * fitFiles.length, rand);
const padimDims = num('padim-dims', v['padim-dims']);
const padimKeep = padimDims > 0 && padimDims < extractor.d
  ? Int32Array.from(shuffledIndices(extractor.d, mulberry32(seed + 1)).subarray(0, padimDims)).sort()
  : null;
const gaussian = new PositionGaussian(extractor.d, padimKeep);
let gaussianMs = 0;
const fitStart = performance.now();
await forEachBatch(fitFiles, (f) => {
  pool.add(f);
  const t = performance.now();
  gaussian.add(f);
  gaussianMs += performance.now() - t;
});
const fitExtractMs = extractMs;
let t = performance.now();
gaussian.finish();
gaussianMs += performance.now() - t;
console.error(`fit: extracted ${fitFiles.length} images in ${(fitExtractMs / 1000).toFixed(1)} s; pool ${pool.count} patches; gaussian ${(gaussianMs / 1000).toFixed(1)} s`);

interface Method {
  name: string;
  score: (f: FeatureBatch, n: number) => Float32Array;
  fitSeconds: number;
  scoreMs: number;
  detail: Record<string, unknown>;
}
const methods: Method[] = [];
for (const kind of coresets) {
  t = performance.now();
  let indices: Int32Array;
  if (kind === 'random') {
    indices = Int32Array.from(shuffledIndices(pool.count, mulberry32(seed + 2)).subarray(0, Math.min(bankSize, pool.count)));
  } else if (kind === 'greedy') {
    indices = greedyCoreset(pool, bankSize, mulberry32(seed + 3));
  } else throw new Error(`--coreset: unknown ${kind}`);
  const bank = PatchBank.from(pool, indices);
  const secs = (performance.now() - t) / 1000;
  console.error(`bank ${kind}: ${bank.size} patches x ${bank.d} in ${secs.toFixed(1)} s`);
  methods.push({
    name: `patchcore-${kind}`, score: (f, n) => bank.score(f, n), fitSeconds: secs, scoreMs: 0,
    detail: { bank: bank.size, pool: pool.count, dims: bank.d, bytes: bank.size * bank.d * 4 },
  });
}
const dfrEpochs = num('dfr-epochs', v['dfr-epochs']);
if (dfrEpochs > 0) {
  t = performance.now();
  const ae = new FeatureAutoencoder(pool.d, seed);
  const loss = await ae.fit(pool, dfrEpochs);
  const secs = (performance.now() - t) / 1000;
  console.error(`dfr: ${dfrEpochs} epochs on ${pool.count} patches in ${secs.toFixed(1)} s, loss ${loss.toFixed(3)}`);
  methods.push({ name: 'dfr-autoencoder', score: (f, n) => ae.score(f, n), fitSeconds: secs, scoreMs: 0, detail: { dims: pool.d, patches: pool.count, epochs: dfrEpochs, loss } });
}
methods.push({
  name: 'padim-gaussian', score: (f, n) => gaussian.score(f, n), fitSeconds: gaussianMs / 1000, scoreMs: 0,
  detail: { dims: gaussian.e, bytes: gaussian.bytes },
});

const fitSeconds = (performance.now() - fitStart) / 1000;

// Score the calibration images, the test normals and the anomalies.
type Scores = { max: number[]; top1: number[] };
const scoreAll = async (files: string[]): Promise<Scores[]> => {
  const out: Scores[] = methods.map(() => ({ max: [], top1: [] }));
  await forEachBatch(files, (f) => {
    for (let n = 0; n < f.count; n++) {
      methods.forEach((m, k) => {
        const t0 = performance.now();
        const s = imageScores(m.score(f, n));
        m.scoreMs += performance.now() - t0;
        out[k].max.push(s.max);
        out[k].top1.push(s.top1);
      });
    }
  });
  return out;
};
extractMs = 0;
extracted = 0;
decodeMs = 0;
const cal = await scoreAll(calFiles);
const neg = await scoreAll(data.normal.map((x) => x.file));
const pos = await scoreAll(data.anomalous.map((x) => x.file));
const scored = extracted;

const results: Record<string, unknown>[] = [];
methods.forEach((m, k) => {
  const byScore: Record<string, unknown> = {};
  for (const key of ['max', 'top1'] as const) {
    const threshold = thresholdAt([...cal[k][key]].sort((a, b) => a - b), DEFAULT_TRAIN_OPTIONS.falseAlarmRate);
    const groups: Record<string, unknown> = {};
    for (const group of ['all', ...data.groups.filter((g) => g !== 'all')]) {
      const ni = data.normal.map((x, i) => (group === 'all' || x.group === group ? i : -1)).filter((i) => i >= 0);
      const pi = data.anomalous.map((x, i) => (group === 'all' || x.group === group ? i : -1)).filter((i) => i >= 0);
      const negS = ni.map((i) => neg[k][key][i]);
      const perType: Record<string, { auroc: number; detected: string }> = {};
      for (const ty of [...new Set(pi.map((i) => data.anomalous[i].type))]) {
        const idx = pi.filter((i) => data.anomalous[i].type === ty);
        perType[ty] = { auroc: auroc(negS, idx.map((i) => pos[k][key][i])), detected: `${idx.filter((i) => pos[k][key][i] > threshold).length}/${idx.length}` };
      }
      const g = {
        auroc: auroc(negS, pi.map((i) => pos[k][key][i])),
        falseAlarmRate: ni.filter((i) => neg[k][key][i] > threshold).length / ni.length,
        detectionRate: pi.filter((i) => pos[k][key][i] > threshold).length / pi.length,
        perType, normal: ni.length, anomalous: pi.length,
      };
      groups[group] = g;
      console.log(`${m.name.padEnd(18)} ${key.padEnd(4)} ${group.padEnd(5)} AUROC ${g.auroc.toFixed(3)}  false alarms ${(100 * g.falseAlarmRate).toFixed(1)}%  detected ${(100 * g.detectionRate).toFixed(1)}%  ${Object.entries(perType).map(([ty, s]) => `${ty} ${s.auroc.toFixed(2)} ${s.detected}`).join('  ')}`);
    }
    byScore[key] = { threshold, groups };
  }
  results.push({ method: m.name, ...m.detail, fitSeconds: m.fitSeconds, scoreMsPerImage: m.scoreMs / scored, scores: byScore });
});

// The pixel VAE on the same split, from bench/detection.ts's result (local maps).
const vaeFile = path.resolve(`bench/results/detection-${v.dataset}.json`);
let vae: Record<string, unknown> | null = null;
if (existsSync(vaeFile)) {
  const r = JSON.parse(await readFile(vaeFile, 'utf8')) as { results: { scheme: string; groups: Record<string, { auroc: Record<string, number>; falseAlarmRate: number; detectionRate: number }> }[] };
  const local = r.results.find((x) => x.scheme.startsWith('local'));
  if (local) {
    vae = Object.fromEntries(Object.entries(local.groups).map(([g, x]) => [g, { aurocCombined: x.auroc.combined, aurocRecon: x.auroc.recon, falseAlarmRate: x.falseAlarmRate, detectionRate: x.detectionRate }]));
  }
}

const file = await writeResult(`features-${v.tag ?? v.dataset}`, {
  benchmark: `frozen-feature detection on ${v.dataset}`,
  date: new Date().toISOString(),
  machine: machine(),
  backend: backend.name,
  weights: { ...backbone.info, package: 'nsfwjs (MIT)', model: 'Keras MobileNetV2 alpha 1.0 (layers model), blocks 0-10 frozen ImageNet' },
  options: { size, dfrEpochs, layers: extractor.o.layers, channels: extractor.channels, featureDims: extractor.d, pool: extractor.o.pool, norm, bank: bankSize, coresets, padimDims: gaussian.e, batch, seed, limit: v.limit ?? null },
  split: { fit: fitFiles.length, calibration: calFiles.length, testNormal: data.normal.length, testAnomalous: data.anomalous.length },
  timings: {
    decodeMsPerImage: decodeMs / scored,
    extractMsPerImage: extractMs / scored,
    fitExtractSeconds: fitExtractMs / 1000,
    fitSeconds,
  },
  results,
  vae,
});
console.error(`wrote ${file}; ${tf.memory().numTensors} tensors alive`);

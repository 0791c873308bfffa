// Detection on folders of real images, trained as a user would (default
// options unless told otherwise). One model per dataset; each is judged two
// ways on the same weights: the legacy scoring (recon = mean squared error,
// every channel one-sided) and today's (local error maps, two-sided KL).
//
//   npm run bench:detection -- --dataset fixtures
//   npm run bench:detection -- --dataset elpv [--elpv ../shared/datasets/elpv] [--epochs 30]
//   npm run bench:detection -- --dataset elpv --resolution whole   # force the whole-image path
//
// Options a user leaves unset (channels, tiling) are chosen from the images
// as `latentwatch train` chooses them; --resolution N tiles at N px.
//
// Splits are fixed, with no randomness:
//   fixtures: the first 300 normal fixtures (by name) train, the last 100 are
//             held-out test normals; every anomalous fixture is a test anomaly.
//   elpv:     normals sorted by name; every 5th is a held-out test normal,
//             the rest train; every cell of defect probability 1 is a test
//             anomaly. Reported for all cells, mono and poly.
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { assess, auroc } from '../server/domain/calibration.js';
import { CHANNELS, type Calibration, type TrainOptions, type TrainProgress } from '../server/domain/types.js';
import { initBackend } from '../server/ml/backend.js';
import type { ImageSet } from '../server/ml/dataset.js';
import { scoreImages } from '../server/ml/score.js';
import { loadModel, saveModel } from '../server/ml/model-store.js';
import { defaultStride } from '../server/ml/tiles.js';
import { channelRank, inputCount, loadInput, scoreSet, type Detector, type ModelInput, type ScoredImage } from '../server/services/detector.js';
import { calibrateOn, calibrationSplit, DEFAULT_TRAIN_OPTIONS, fitDetector, fitTiledDetector, type FittedDetector } from '../server/services/fit.js';
import { fittedMeta, optionsForImages } from '../server/services/train-model.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'fixtures' },
    elpv: { type: 'string', default: path.resolve('../shared/datasets/elpv') },
    epochs: { type: 'string' },
    size: { type: 'string' },
    seed: { type: 'string' },
    resolution: { type: 'string' },
    tag: { type: 'string' },
    /** Keep the trained model here, or judge a model saved before instead of training. */
    save: { type: 'string' },
    model: { type: 'string' },
  },
});

interface Labelled {
  file: string;
  /** Group for separate reporting (elpv: mono or poly). */
  group: string;
  /** Defect type for per-type detection (fixtures: scratch, crack, ...). */
  type: string;
}

interface Dataset {
  train: string[];
  normal: Labelled[];
  anomalous: Labelled[];
  groups: string[];
}

async function fixtures(): Promise<Dataset> {
  const normals = (await readdir('fixtures/normal')).sort().map((f) => path.join('fixtures/normal', f));
  const anomalous = (await readdir('fixtures/anomalous')).sort().map((f) => ({ file: path.join('fixtures/anomalous', f), group: 'all', type: f.replace(/_\d+\.\w+$/, '') }));
  return { train: normals.slice(0, 300), normal: normals.slice(300).map((file) => ({ file, group: 'all', type: 'normal' })), anomalous, groups: ['all'] };
}

async function elpv(root: string): Promise<Dataset> {
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

const data = v.dataset === 'elpv' ? await elpv(v.elpv!) : await fixtures();
const requested: TrainOptions = {
  ...DEFAULT_TRAIN_OPTIONS,
  ...(v.epochs ? { epochs: Number(v.epochs) } : {}),
  ...(v.size ? { size: Number(v.size) } : {}),
  ...(v.seed ? { seed: Number(v.seed) } : {}),
  resolution: v.resolution && v.resolution !== 'whole' && v.resolution !== 'auto' ? Number(v.resolution) : null,
};
const options = await optionsForImages(data.train, requested, { channels: true, resolution: v.resolution === undefined || v.resolution === 'auto' });
const backend = await initBackend();
const shape = options.resolution != null
  ? { size: options.size, channels: options.channels, resize: 'tiles' as const, tiling: { resolution: options.resolution, stride: defaultStride(options.size) } }
  : { size: options.size, channels: options.channels, resize: 'fill' as const };
const load = async (files: string[]): Promise<ModelInput> => {
  const loaded = await loadInput(shape, files);
  if (loaded.failures.length) throw new Error(`unreadable: ${loaded.failures.map((f) => f.file).join(', ')}`);
  return loaded.input;
};
const [trainInput, normalInput, anomalousInput] = [await load(data.train), await load(data.normal.map((x) => x.file)), await load(data.anomalous.map((x) => x.file))];
const tiled = Array.isArray(trainInput);
console.error(`${v.dataset}: ${inputCount(trainInput)} training normals, ${inputCount(normalInput)} test normals, ${inputCount(anomalousInput)} test anomalies; backend ${backend.name}; ` +
  `${tiled ? `${options.size} px tiles at ${options.resolution} px` : `${options.size} px whole`}, ${options.channels} channel(s), ${options.epochs} epochs`);

const started = performance.now();
const onProgress = (e: TrainProgress) => {
  if (e.type === 'epoch') process.stderr.write(`\repoch ${e.epoch}/${e.epochs} val ${e.valLoss.toFixed(1)} ${Math.round(e.imagesPerSecond)} img/s   `);
};
const fitted = v.model
  ? await loadFitted(v.model)
  : Array.isArray(trainInput) ? await fitTiledDetector(trainInput, options, { onProgress }) : await fitDetector(trainInput, options, { onProgress });
const trainSeconds = (performance.now() - started) / 1000;
process.stderr.write('\n');
const meta = fittedMeta(fitted, { id: path.basename(v.save ?? 'bench'), source: v.dataset!, images: inputCount(trainInput), skipped: 0, backend: backend.name });
if (v.save && !v.model) await saveModel(v.save, fitted.vae, meta);

/** A saved model in the shape fitDetector returns (training figures from its meta.json). */
async function loadFitted(dir: string): Promise<FittedDetector> {
  const { vae, meta } = await loadModel(dir);
  return {
    vae, likelihood: meta.likelihood, calibration: meta.calibration, options: meta.options,
    training: { ...meta.training, sigma2: meta.likelihood.sigma2 } as unknown as FittedDetector['training'],
    split: { train: meta.dataset.train, validation: meta.dataset.validation },
    ...(meta.input.tiling ? { tiling: meta.input.tiling } : {}),
  };
}
const detector: Detector = { vae: fitted.vae, meta };
const calibrationImages = fitted.split.validation;

type Scheme = { name: string; cal: Calibration; score: (input: ModelInput) => ScoredImage[] };
const schemes: Scheme[] = [];
if (!Array.isArray(trainInput)) {
  // The legacy judgement on the same weights and the same held-out split.
  const base = { vae: fitted.vae, likelihood: fitted.options.likelihood, sigma2: fitted.likelihood.sigma2 };
  const { val } = calibrationSplit(trainInput, fitted.options);
  const legacyCal: Calibration = calibrateOn(base, val, options.falseAlarmRate);
  schemes.push({ name: 'legacy (mean squared error, one-sided)', cal: legacyCal, score: (input) => scoreImages(base, input as ImageSet).scores.map((s) => ({ ...s, ...assess(legacyCal, s) })) });
}
schemes.push({ name: tiled ? 'tiled local maps, two-sided kl' : 'local maps, two-sided kl', cal: fitted.calibration, score: (input) => scoreSet(detector, input) });

const results: Record<string, unknown>[] = [];
for (const scheme of schemes) {
  const t0 = performance.now();
  const neg = scheme.score(normalInput);
  const pos = scheme.score(anomalousInput);
  const imagesPerSecond = (neg.length + pos.length) / ((performance.now() - t0) / 1000);
  const groups: Record<string, unknown> = {};
  for (const group of ['all', ...data.groups.filter((g) => g !== 'all')]) {
    const ni = data.normal.map((x, i) => (group === 'all' || x.group === group ? i : -1)).filter((i) => i >= 0);
    const pi = data.anomalous.map((x, i) => (group === 'all' || x.group === group ? i : -1)).filter((i) => i >= 0);
    const a: Record<string, number> = {};
    for (const ch of CHANNELS) {
      const rank = channelRank(scheme.cal, ch);
      a[ch] = auroc(ni.map((i) => rank(neg[i])), pi.map((i) => rank(pos[i])));
    }
    a.combined = auroc(ni.map((i) => -Math.log(neg[i].p.combined)), pi.map((i) => -Math.log(pos[i].p.combined)));
    // For comparison only: Tippett's minimum p over the channels, uncalibrated.
    const minP = (s: (typeof neg)[number]) => -Math.log(Math.min(...CHANNELS.map((ch) => s.p[ch])));
    a.minP = auroc(ni.map((i) => minP(neg[i])), pi.map((i) => minP(pos[i])));
    // Fisher over recon and kl only (elbo left out): ranks as its calibrated p-value would.
    const fisherRK = (s: (typeof neg)[number]) => -Math.log(s.p.recon) - Math.log(s.p.kl);
    a.fisherReconKl = auroc(ni.map((i) => fisherRK(neg[i])), pi.map((i) => fisherRK(pos[i])));
    const perType: Record<string, string> = {};
    for (const t of [...new Set(pi.map((i) => data.anomalous[i].type))]) {
      const idx = pi.filter((i) => data.anomalous[i].type === t);
      perType[t] = `${idx.filter((i) => pos[i].anomaly).length}/${idx.length}`;
    }
    groups[group] = {
      auroc: a,
      falseAlarmRate: ni.filter((i) => neg[i].anomaly).length / ni.length,
      detectionRate: pi.filter((i) => pos[i].anomaly).length / pi.length,
      perType,
      normal: ni.length,
      anomalous: pi.length,
    };
    const g = groups[group] as { falseAlarmRate: number; detectionRate: number };
    console.log(`${scheme.name.padEnd(40)} ${group.padEnd(5)} ${[...CHANNELS, 'combined', 'minP', 'fisherReconKl'].map((ch) => `${ch} ${a[ch].toFixed(3)}`).join('  ')}  false alarms ${(100 * g.falseAlarmRate).toFixed(1)}%  detected ${(100 * g.detectionRate).toFixed(1)}%  ${Object.entries(perType).map(([t, s]) => `${t} ${s}`).join(' ')}`);
  }
  results.push({ scheme: scheme.name, scoringImagesPerSecond: imagesPerSecond, groups });
}
fitted.vae.model.dispose();

const file = await writeResult(`detection-${v.tag ?? v.dataset}`, {
  benchmark: `detection on ${v.dataset}`,
  date: new Date().toISOString(),
  machine: machine(),
  backend: backend.name,
  options: fitted.options,
  input: meta.input,
  split: { train: fitted.split.train, calibration: calibrationImages, testNormal: inputCount(normalInput), testAnomalous: inputCount(anomalousInput) },
  training: { seconds: trainSeconds, imagesPerSecond: fitted.training.imagesPerSecond, epochs: fitted.training.epochs.length },
  results,
});
console.error(`wrote ${file}`);


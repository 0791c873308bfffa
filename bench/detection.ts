// Detection on folders of real images, trained as a user would (default
// options unless told otherwise). One model per dataset; each is judged two
// ways on the same weights: the legacy scoring (recon = mean squared error,
// every channel one-sided) and today's (local error maps, two-sided KL).
//
//   npm run bench:detection -- --dataset fixtures
//   npm run bench:detection -- --dataset elpv [--elpv ../shared/datasets/elpv] [--epochs 30]
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
import { CHANNELS, type Calibration, type TrainOptions } from '../server/domain/types.js';
import { initBackend } from '../server/ml/backend.js';
import { loadImages, type ImageSet } from '../server/ml/dataset.js';
import { scoreImages } from '../server/ml/score.js';
import { loadModel, saveModel } from '../server/ml/model-store.js';
import { channelRank } from '../server/services/detector.js';
import { calibrateOn, calibrationSplit, DEFAULT_TRAIN_OPTIONS, fitDetector, type FittedDetector } from '../server/services/fit.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({
  options: {
    dataset: { type: 'string', default: 'fixtures' },
    elpv: { type: 'string', default: path.resolve('../shared/datasets/elpv') },
    epochs: { type: 'string' },
    size: { type: 'string' },
    seed: { type: 'string' },
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
const options: TrainOptions = {
  ...DEFAULT_TRAIN_OPTIONS,
  ...(v.epochs ? { epochs: Number(v.epochs) } : {}),
  ...(v.size ? { size: Number(v.size) } : {}),
  ...(v.seed ? { seed: Number(v.seed) } : {}),
};
const backend = await initBackend();
const decode = { size: options.size, channels: options.channels };
const load = async (files: string[]): Promise<ImageSet> => {
  const loaded = await loadImages(files, decode);
  if (loaded.failures.length) throw new Error(`unreadable: ${loaded.failures.map((f) => f.file).join(', ')}`);
  return loaded.set;
};
const [trainSet, normalSet, anomalousSet] = [await load(data.train), await load(data.normal.map((x) => x.file)), await load(data.anomalous.map((x) => x.file))];
console.error(`${v.dataset}: ${trainSet.count} training normals, ${normalSet.count} test normals, ${anomalousSet.count} test anomalies; backend ${backend.name}; ${options.size} px, ${options.epochs} epochs`);

const started = performance.now();
const fitted = v.model
  ? await loadFitted(v.model)
  : await fitDetector(trainSet, options, {
      onProgress: (e) => {
        if (e.type === 'epoch') process.stderr.write(`\repoch ${e.epoch}/${e.epochs} val ${e.valLoss.toFixed(1)} ${Math.round(e.imagesPerSecond)} img/s   `);
      },
    });
const trainSeconds = (performance.now() - started) / 1000;
process.stderr.write('\n');
if (v.save && !v.model) {
  await saveModel(v.save, fitted.vae, {
    format: 'latentwatch-vae/1', id: path.basename(v.save), createdAt: new Date().toISOString(),
    input: { size: options.size, channels: options.channels, resize: 'fill' }, options: fitted.options, likelihood: fitted.likelihood,
    dataset: { source: v.dataset!, images: trainSet.count, train: fitted.split.train, validation: fitted.split.validation, skipped: 0 },
    training: { epochs: fitted.training.epochs, bestEpoch: fitted.training.bestEpoch, stoppedEarly: fitted.training.stoppedEarly, seconds: fitted.training.seconds, imagesPerSecond: fitted.training.imagesPerSecond },
    calibration: fitted.calibration, parameters: fitted.vae.model.countParams(), backend: backend.name,
  });
}

/** A saved model in the shape fitDetector returns (training figures from its meta.json). */
async function loadFitted(dir: string): Promise<FittedDetector> {
  const { vae, meta } = await loadModel(dir);
  const { train, val } = calibrationSplit(trainSet, meta.options);
  return {
    vae, likelihood: meta.likelihood, calibration: meta.calibration, options: meta.options,
    training: { ...meta.training, sigma2: meta.likelihood.sigma2 } as unknown as FittedDetector['training'],
    split: { train: train.count, validation: val.count },
  };
}
const base = { vae: fitted.vae, likelihood: fitted.options.likelihood, sigma2: fitted.likelihood.sigma2 };

// The legacy judgement on the same weights and the same held-out split.
const { val } = calibrationSplit(trainSet, fitted.options);
const legacyCal: Calibration = calibrateOn(base, val, options.falseAlarmRate);

type Scheme = { name: string; cal: Calibration; local: boolean };
const schemes: Scheme[] = [
  { name: 'legacy (mean squared error, one-sided)', cal: legacyCal, local: false },
  { name: 'local maps, two-sided kl', cal: fitted.calibration, local: true },
];

const results: Record<string, unknown>[] = [];
for (const scheme of schemes) {
  const model = { ...base, local: scheme.local ? fitted.calibration.local : undefined };
  const t0 = performance.now();
  const neg = scoreImages(model, normalSet).scores.map((s) => ({ ...s, ...assess(scheme.cal, s) }));
  const pos = scoreImages(model, anomalousSet).scores.map((s) => ({ ...s, ...assess(scheme.cal, s) }));
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
  split: { train: trainSet.count, calibration: val.count, testNormal: normalSet.count, testAnomalous: anomalousSet.count },
  training: { seconds: trainSeconds, imagesPerSecond: fitted.training.imagesPerSecond, epochs: fitted.training.epochs.length },
  results,
});
console.error(`wrote ${file}`);


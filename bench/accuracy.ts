// Fashion-MNIST one-class anomaly detection: train on the training images of
// one class, score the whole 10 000-image test set, anomalies = the other
// nine classes. Prints AUROC per channel per class and the means, and writes
// bench/results/accuracy-<tag>.json.
//
//   npm run bench:accuracy                       # quick: classes 0, 1, 2
//   npm run bench:accuracy -- --all              # all 10 classes
//   npm run bench:accuracy -- --classes 3,7 --likelihood bernoulli --epochs 20
import { parseArgs } from 'node:util';
import { CHANNELS, type TrainOptions } from '../server/domain/types.js';
import { initBackend } from '../server/ml/backend.js';
import { evaluateSets, type Detector } from '../server/services/detector.js';
import { DEFAULT_TRAIN_OPTIONS, fitDetector } from '../server/services/fit.js';
import { fittedMeta } from '../server/services/train-model.js';
import { CLASS_NAMES, loadSplit, select } from './fashion-mnist.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({
  options: {
    all: { type: 'boolean' },
    classes: { type: 'string' },
    epochs: { type: 'string' },
    likelihood: { type: 'string' },
    latent: { type: 'string' },
    filters: { type: 'string' },
    beta: { type: 'string' },
    sigma: { type: 'string' },
    seed: { type: 'string' },
    tag: { type: 'string' },
  },
});

const classes = v.all ? [...Array(10).keys()] : (v.classes ?? '0,1,2').split(',').map(Number);
const options: TrainOptions = {
  ...DEFAULT_TRAIN_OPTIONS,
  size: 28,
  epochs: Number(v.epochs ?? 10),
  likelihood: (v.likelihood ?? DEFAULT_TRAIN_OPTIONS.likelihood) as TrainOptions['likelihood'],
  latent: Number(v.latent ?? DEFAULT_TRAIN_OPTIONS.latent),
  baseFilters: Number(v.filters ?? DEFAULT_TRAIN_OPTIONS.baseFilters),
  beta: Number(v.beta ?? DEFAULT_TRAIN_OPTIONS.beta),
  decoderSigma: v.sigma === undefined ? DEFAULT_TRAIN_OPTIONS.decoderSigma : Number(v.sigma),
  seed: Number(v.seed ?? DEFAULT_TRAIN_OPTIONS.seed),
  // Early stopping would cut runs short differently per class; the protocol fixes epochs.
  patience: 10_000,
};

const backend = await initBackend();
const [train, test] = [await loadSplit('train'), await loadSplit('t10k')];
console.error(`backend ${backend.name}; classes ${classes.join(',')}; ${options.epochs} epochs; likelihood ${options.likelihood}; sigma ${options.decoderSigma ?? 'learned'}; latent ${options.latent}`);

type ClassResult = ReturnType<typeof evaluateSets> & { class: number; name: string; trainImagesPerSecond: number; seconds: number };
const perClass: ClassResult[] = [];
const channels = [...CHANNELS, 'combined'] as const;
const meanOf = () => Object.fromEntries(channels.map((ch) => [ch, perClass.reduce((s, r) => s + r.auroc[ch], 0) / perClass.length]));
for (const c of classes) {
  const started = performance.now();
  const fitted = await fitDetector(select(train, (l) => l === c), options, {
    onProgress: (e) => {
      if (e.type === 'epoch') process.stderr.write(`\rclass ${c} epoch ${e.epoch}/${e.epochs} val ${e.valLoss.toFixed(1)} ${Math.round(e.imagesPerSecond)} img/s`);
    },
  });
  const detector: Detector = { vae: fitted.vae, meta: fittedMeta(fitted, { id: `fashion-mnist-${c}`, source: 'fashion-mnist', images: fitted.split.train + fitted.split.validation, skipped: 0, backend: backend.name }) };
  const result = evaluateSets(detector, select(test, (l) => l === c), select(test, (l) => l !== c));
  fitted.vae.model.dispose();
  const seconds = (performance.now() - started) / 1000;
  perClass.push({ class: c, name: CLASS_NAMES[c], ...result, trainImagesPerSecond: fitted.training.imagesPerSecond, seconds });
  process.stderr.write(`\rclass ${c} (${CLASS_NAMES[c]}): ${Object.entries(result.auroc).map(([k, a]) => `${k} ${a.toFixed(4)}`).join('  ')}  (${seconds.toFixed(0)} s)\n`);
  await save(); // after every class: a long run cut short keeps what it measured
}

const mean = meanOf();
console.log(['class'.padEnd(14), ...channels.map((c) => c.padStart(9))].join(''));
for (const r of perClass) console.log([`${r.class} ${r.name}`.padEnd(14), ...channels.map((ch) => r.auroc[ch].toFixed(4).padStart(9))].join(''));
console.log(['mean'.padEnd(14), ...channels.map((ch) => mean[ch].toFixed(4).padStart(9))].join(''));

console.error(`wrote ${await save()}`);

async function save(): Promise<string> {
  const tag = v.tag ?? `${options.likelihood}-${classes.length === 10 ? 'all' : classes.join('_')}`;
  return writeResult(`accuracy-${tag}`, {
    benchmark: 'fashion-mnist one-class',
    date: new Date().toISOString(),
    machine: machine(),
    backend: backend.name,
    options,
    classesDone: perClass.map((r) => r.class),
    meanAuroc: meanOf(),
    perClass,
  });
}

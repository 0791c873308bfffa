#!/usr/bin/env node
// latentwatch train | score | eval — the command-line contract (README.md,
// Command line; summarised in docs/architecture.md).
// With --json every command prints JSON lines on stdout; human progress and
// errors go to stderr. Exit codes: 0 ok, 1 failure (or some files unreadable),
// 2 bad usage, 130 cancelled with Ctrl-C.
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig } from './config.js';
import { AppError, errorBody } from './domain/errors.js';
import type { TrainOptions, TrainProgress } from './domain/types.js';
import { CHANNELS } from './domain/types.js';
import { initBackend, type BackendInfo } from './ml/backend.js';
import { countSkipped, describeSkipped, listImageFiles, listTrainingImages } from './ml/dataset.js';
import { evaluateFiles, inputCount, loadDetector, loadInput, scoreFiles, type FileResult } from './services/detector.js';
import { recalibratedMeta, writeRecalibrated } from './services/recalibrate.js';
import { DEFAULT_TRAIN_OPTIONS } from './services/fit.js';
import { optionsForImages, trainModel } from './services/train-model.js';
import { bar, formatDuration, num, table } from './cli-format.js';

const USAGE = `usage:
  latentwatch train --data <dir> --out <model-dir> [--size N] [--channels 1|3]
                    [--resolution N|whole] [--calibration-fraction X]
                    [--latent N] [--epochs N] [--batch N] [--beta X] [--seed N]
                    [--filters N] [--likelihood gaussian|bernoulli] [--sigma X]
                    [--patience N] [--json]
  latentwatch score --model <model-dir> <file-or-dir>... [--json]
  latentwatch eval  --model <model-dir> --normal <dir> --anomalous <dir> [--json]
  latentwatch recalibrate --model <model-dir> --data <dir> --out <model-dir> [--json]
  latentwatch serve [--port N] [--data-dir <dir>]

environment: LATENTWATCH_BACKEND=tensorflow|wasm|cpu forces a backend; see the README for the rest.`;

class UsageError extends Error {}

type Out = { json: boolean; stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream & { isTTY?: boolean } };

function emit(out: Out, obj: unknown): void {
  out.stdout.write(`${JSON.stringify(obj)}\n`);
}

type Parsed = { values: Record<string, string | boolean | undefined>; positionals: string[] };

function parse(args: string[], options: ParseArgsConfig['options'], positionals = false): Parsed {
  try {
    return parseArgs({ args, options: { ...options, json: { type: 'boolean' }, help: { type: 'boolean' } }, allowPositionals: positionals, strict: true }) as Parsed;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function intFlag(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(value)}`);
  return n;
}

function numFlag(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(value)}`);
  return n;
}

function required(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function announceBackend(out: Out, backend: BackendInfo): void {
  if (!out.json) out.stderr.write(`backend: ${backend.name} (${backend.provider})\n`);
}

function progressPrinter(out: Out): (e: TrainProgress) => void {
  const tty = out.stderr.isTTY === true;
  return (e) => {
    if (out.json) return emit(out, e);
    if (e.type === 'loading') {
      if (tty || e.loaded === e.total) out.stderr.write(`${tty ? '\r' : ''}loading images ${e.loaded}/${e.total}${e.loaded === e.total ? '\n' : ''}`);
    } else if (e.type === 'step' && tty) {
      const frac = (e.epoch - 1 + e.step / e.steps) / e.epochs;
      out.stderr.write(
        `\repoch ${e.epoch}/${e.epochs} ${bar(frac)} loss ${num(e.loss)} recon ${num(e.recon)} kl ${num(e.kl)} ` +
          `${Math.round(e.imagesPerSecond)} img/s ETA ${formatDuration(e.etaSeconds)}\x1b[K`,
      );
    } else if (e.type === 'epoch') {
      out.stderr.write(
        `${tty ? '\r' : ''}epoch ${e.epoch}/${e.epochs} loss ${num(e.loss)} recon ${num(e.recon)} kl ${num(e.kl)} ` +
          `val ${num(e.valLoss)}${e.best ? ' *' : ''} ${Math.round(e.imagesPerSecond)} img/s ${formatDuration(e.seconds)}\x1b[K\n`,
      );
    } else if (e.type === 'calibrating') {
      out.stderr.write(`calibrating on ${e.images} held-out images\n`);
    }
  };
}

/** "tiles of 64x64 at 256 px (longer side), grey" or "whole image at 64x64, colour". */
function describeInput(o: TrainOptions): string {
  const colour = o.channels === 3 ? 'colour' : 'grey';
  return o.resolution != null
    ? `input: ${o.size}x${o.size} tiles of each image resized to ${o.resolution} px on its longer side, ${colour}`
    : `input: whole image resized to ${o.size}x${o.size}, ${colour}`;
}

async function train(args: string[], out: Out, backend: () => Promise<BackendInfo>, signal: AbortSignal): Promise<number> {
  const { values: v } = parse(args, {
    data: { type: 'string' }, out: { type: 'string' }, size: { type: 'string' }, channels: { type: 'string' },
    latent: { type: 'string' }, epochs: { type: 'string' }, batch: { type: 'string' }, beta: { type: 'string' },
    seed: { type: 'string' }, filters: { type: 'string' }, likelihood: { type: 'string' }, sigma: { type: 'string' }, patience: { type: 'string' },
    resolution: { type: 'string' }, 'calibration-fraction': { type: 'string' },
  });
  const d = DEFAULT_TRAIN_OPTIONS;
  const data = required(v.data, 'data');
  const outDir = required(v.out, 'out');
  const requested: TrainOptions = {
    ...d,
    size: intFlag(v.size, 'size', d.size),
    channels: intFlag(v.channels, 'channels', d.channels) as 1 | 3,
    latent: intFlag(v.latent, 'latent', d.latent),
    epochs: intFlag(v.epochs, 'epochs', d.epochs),
    batchSize: intFlag(v.batch, 'batch', d.batchSize),
    beta: numFlag(v.beta, 'beta', d.beta),
    seed: intFlag(v.seed, 'seed', d.seed),
    baseFilters: intFlag(v.filters, 'filters', d.baseFilters),
    patience: intFlag(v.patience, 'patience', d.patience),
    likelihood: (v.likelihood as TrainOptions['likelihood'] | undefined) ?? d.likelihood,
    decoderSigma: v.sigma === undefined ? d.decoderSigma : numFlag(v.sigma, 'sigma', 0),
    validationFraction: numFlag(v['calibration-fraction'], 'calibration-fraction', d.validationFraction),
    resolution: v.resolution === undefined || v.resolution === 'auto' || v.resolution === 'whole' ? null : intFlag(v.resolution, 'resolution', 0),
  };
  // What the user did not choose, the images decide (their colour, size and shape).
  const auto = { channels: v.channels === undefined, resolution: v.resolution === undefined || v.resolution === 'auto' };
  const info = await backend();
  announceBackend(out, info);
  const { files, skipped } = await listTrainingImages(data);
  const options = await optionsForImages(files, requested, auto);
  if (!out.json) out.stderr.write(`${describeInput(options)}\n`);
  if (out.json) emit(out, { type: 'start', backend: info.name, images: files.length, skipped: skipped.length, skippedReasons: countSkipped(skipped), options });
  else if (skipped.length > 0) out.stderr.write(`${data}: ${describeSkipped(skipped)}\n`);
  const { meta, failures } = await trainModel({
    files, source: data, outDir, options, backend: info.name, onProgress: progressPrinter(out), signal,
  });
  for (const f of failures) {
    if (out.json) emit(out, { type: 'skipped', file: f.file, error: f.error.toJSON() });
    else out.stderr.write(`skipped ${f.error.message}\n`);
  }
  const thresholds = Object.fromEntries(CHANNELS.map((ch) => [ch, meta.calibration.channels[ch].threshold]));
  const summary = {
    type: 'done', model: path.resolve(outDir), id: meta.id, backend: info.name,
    images: meta.dataset.images, train: meta.dataset.train, validation: meta.dataset.validation, skipped: failures.length,
    epochs: meta.training.epochs.length, bestEpoch: meta.training.bestEpoch,
    valLoss: meta.training.epochs[meta.training.bestEpoch - 1]?.valLoss, seconds: meta.training.seconds,
    imagesPerSecond: meta.training.imagesPerSecond, thresholds, falseAlarmRate: meta.calibration.falseAlarmRate,
  };
  if (out.json) emit(out, summary);
  else {
    out.stdout.write(
      `model saved to ${summary.model} (${meta.parameters} parameters, best epoch ${summary.bestEpoch} of ${summary.epochs}, ` +
        `${formatDuration(summary.seconds)})\n` +
        `calibrated on ${summary.validation} held-out images; thresholds at ${meta.calibration.falseAlarmRate * 100}% false alarms: ` +
        CHANNELS.map((ch) => `${ch} ${num(thresholds[ch])}`).join(', ') + '\n',
    );
  }
  return 0;
}

async function score(args: string[], out: Out, backend: () => Promise<BackendInfo>): Promise<number> {
  const { values: v, positionals } = parse(args, { model: { type: 'string' } }, true);
  const modelDir = required(v.model, 'model');
  if (positionals.length === 0) throw new UsageError('give at least one image file or directory to score');
  const info = await backend();
  announceBackend(out, info);
  const detector = await loadDetector(modelDir);
  const files = await listImageFiles(positionals);
  if (files.length === 0) throw new AppError('not_found', `no image files found in ${positionals.join(', ')}`);
  const rows: string[][] = [];
  let failed = 0;
  const progress = !out.json && out.stderr.isTTY === true && files.length > 64;
  await scoreFiles(detector, files, (r: FileResult, i) => {
    if ('error' in r) failed++;
    if (out.json) return emit(out, 'error' in r ? r : { ...r, model: detector.meta.id, backend: info.name });
    if ('error' in r) out.stderr.write(`error: ${r.error.message}\n`);
    else rows.push([r.file, num(r.kl), num(r.recon), num(r.elbo), num(r.p.combined), r.anomaly ? 'ANOMALY' : 'ok']);
    if (progress) out.stderr.write(`\rscored ${i + 1}/${files.length}\x1b[K${i + 1 === files.length ? '\n' : ''}`);
  });
  if (!out.json && rows.length > 0) {
    out.stdout.write(table(['file', 'kl', 'recon', 'elbo', 'p', 'verdict'], rows, [false, true, true, true, true, false]) + '\n');
    const anomalies = rows.filter((r) => r[5] === 'ANOMALY').length;
    out.stdout.write(`${rows.length} scored, ${anomalies} anomalous at p < ${detector.meta.calibration.falseAlarmRate}${failed ? `, ${failed} unreadable` : ''}\n`);
  }
  return failed > 0 ? 1 : 0;
}

async function evaluate(args: string[], out: Out, backend: () => Promise<BackendInfo>): Promise<number> {
  const { values: v } = parse(args, { model: { type: 'string' }, normal: { type: 'string' }, anomalous: { type: 'string' } });
  const modelDir = required(v.model, 'model');
  const normalDir = required(v.normal, 'normal');
  const anomalousDir = required(v.anomalous, 'anomalous');
  const info = await backend();
  announceBackend(out, info);
  const detector = await loadDetector(modelDir);
  const result = await evaluateFiles(detector, await listImageFiles([normalDir]), await listImageFiles([anomalousDir]));
  const warning = trainedOnWarning(detector.meta.dataset.source, normalDir);
  if (warning) out.stderr.write(`warning: ${warning}\n`);
  if (out.json) {
    emit(out, { ...result, model: detector.meta.id, backend: info.name, ...(warning ? { warning } : {}) });
    return 0;
  }
  for (const f of result.failures) out.stderr.write(`skipped ${f.error.message}\n`);
  const channels = [...CHANNELS, 'combined'] as const;
  out.stdout.write(table(['channel', 'AUROC'], channels.map((ch) => [ch, result.auroc[ch].toFixed(4)]), [false, true]) + '\n');
  out.stdout.write(
    `${result.normal} normal, ${result.anomalous} anomalous images; at the model's verdict ` +
      `(p < ${detector.meta.calibration.falseAlarmRate}): ${(result.detectionRate * 100).toFixed(1)}% of anomalies caught, ` +
      `${(result.falseAlarmRate * 100).toFixed(1)}% false alarms\n`,
  );
  return 0;
}

/**
 * A false-alarm rate measured on images the model was trained on says little
 * about unseen ones (they score lower than new normal images would).
 */
function trainedOnWarning(trainedOn: string, normalDir: string): string | null {
  const [a, b] = [path.resolve(trainedOn), path.resolve(normalDir)];
  const inside = (x: string, y: string) => x === y || x.startsWith(y + path.sep);
  if (!inside(a, b) && !inside(b, a)) return null;
  return `the normal images in ${normalDir} overlap the folder this model was trained on (${trainedOn}): ` +
    'its AUROC and false-alarm rate are optimistic. Evaluate on normal images it has not seen.';
}

/** A new version of a model calibrated on recent normal images, without retraining. */
async function recalibrate(args: string[], out: Out, backend: () => Promise<BackendInfo>): Promise<number> {
  const { values: v } = parse(args, { model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' } });
  const modelDir = required(v.model, 'model');
  const dataDir = required(v.data, 'data');
  const outDir = required(v.out, 'out');
  const info = await backend();
  announceBackend(out, info);
  const detector = await loadDetector(modelDir);
  try {
    const { files } = await listTrainingImages(dataDir, dataDir);
    const loaded = await loadInput(detector.meta.input, files);
    const images = inputCount(loaded.input);
    for (const f of loaded.failures) out.stderr.write(`skipped ${f.error.message}\n`);
    const { meta, flaggedBefore: before } = recalibratedMeta(detector, loaded.input, { outDir, source: path.resolve(dataDir) });
    await writeRecalibrated({ parentDir: modelDir, outDir, source: dataDir }, meta);
    const thresholds = Object.fromEntries(CHANNELS.map((ch) => [ch, meta.calibration.channels[ch].threshold]));
    if (out.json) {
      emit(out, { type: 'done', model: outDir, id: meta.id, parent: detector.meta.id, images, skipped: loaded.failures.length, flaggedBefore: before, thresholds, falseAlarmRate: meta.calibration.falseAlarmRate, backend: info.name });
    } else {
      out.stdout.write(
        `${meta.id}: ${detector.meta.id} recalibrated on ${images} images from ${dataDir}\n` +
          `the old calibration flagged ${(before * 100).toFixed(1)}% of them; the new one targets ${(meta.calibration.falseAlarmRate * 100).toFixed(1)}%\n` +
          `written to ${outDir}\n`,
      );
    }
    return loaded.failures.length > 0 ? 1 : 0;
  } finally {
    detector.vae.model.dispose();
  }
}

async function serve(args: string[], env: Record<string, string | undefined>): Promise<number> {
  const { values: v } = parse(args, { port: { type: 'string' }, 'data-dir': { type: 'string' } });
  // Flags override the environment.
  const config = loadConfig({
    ...env,
    ...(v.port !== undefined ? { LATENTWATCH_PORT: String(v.port) } : {}),
    ...(v['data-dir'] !== undefined ? { LATENTWATCH_DATA_DIR: String(v['data-dir']) } : {}),
  });
  const { runServer } = await import('./main.js');
  await runServer(config);
  return -1; // keeps running; main.ts exits on a signal
}

export async function main(argv: string[], env: Record<string, string | undefined>, out: Out, signal: AbortSignal): Promise<number> {
  const [command, ...rest] = argv;
  out.json = rest.includes('--json');
  try {
    if (command === undefined || command === '--help' || command === '-h' || rest.includes('--help')) {
      out.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    }
    const config = loadConfig(env);
    const backend = () => initBackend(config.backend);
    switch (command) {
      case 'train': return await train(rest, out, backend, signal);
      case 'score': return await score(rest, out, backend);
      case 'eval': return await evaluate(rest, out, backend);
      case 'recalibrate': return await recalibrate(rest, out, backend);
      case 'serve': return await serve(rest, env);
      default: throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      out.stderr.write(`latentwatch: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    const body = errorBody(err);
    out.stderr.write(`latentwatch: ${body.message}\n`);
    if (!(err instanceof AppError)) out.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    return body.code === 'cancelled' ? 130 : body.code === 'invalid_option' ? 2 : 1;
  }
}

const controller = new AbortController();
if (process.argv[2] !== 'serve') process.once('SIGINT', () => controller.abort());
const code = await main(process.argv.slice(2), process.env, { json: false, stdout: process.stdout, stderr: process.stderr }, controller.signal);
if (code >= 0) process.exitCode = code;

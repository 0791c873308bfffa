// Files in, model directory out: decode the normal images, fit and calibrate
// a detector, and save it with its meta.json (docs/architecture.md, Storage).
import path from 'node:path';
import { AppError } from '../domain/errors.js';
import type { ModelMeta, TrainOptions } from '../domain/types.js';
import { loadImages, loadPictures, type LoadFailure } from '../ml/dataset.js';
import { saveModel } from '../ml/model-store.js';
import { probeImages, type FolderShape } from '../ml/probe.js';
import { checkTrainingMemory, fitDetector, fitTiledDetector, type FitHooks, type FittedDetector } from './fit.js';

/** Options the user left to the images: channels from their colour, tiling from their size and shape. */
export interface AutoOptions {
  channels?: boolean;
  resolution?: boolean;
}

/**
 * Images whose longer side is above this are tiled by default: a 64 px model
 * would shrink them more than 8x. Not lower: on ELPV's 300x300 solar cells
 * the whole-image path ranks defects better (recon AUROC 0.779) than 64 px
 * tiles at 128 px (0.704; mono cells 0.926 against 0.627): their defects are
 * large dark regions that need the whole cell as context.
 */
export const TILE_ABOVE = 512;
/** Images with one side at least this many times the other are tiled too: a strip squeezed square loses its thin direction. */
export const TILE_ASPECT = 2;
/** Default working resolution of tiled models: the images' longer side, at most this (49 tiles of 64 px on a square). */
export const DEFAULT_RESOLUTION = 256;

/**
 * The defaults a folder of images gets. Colour images train in colour.
 * Images up to TILE_ABOVE on their longer side and less elongated than
 * TILE_ASPECT are read whole at the model's input size; larger or elongated
 * ones (a 1024x1024 frame, a 500x1250 strip) are tiled at their own longer
 * side, at most DEFAULT_RESOLUTION, so that a thin defect keeps a few pixels
 * instead of vanishing in one 64 px square.
 */
export function resolveAutoOptions(o: TrainOptions, auto: AutoOptions, shape: FolderShape): TrainOptions {
  const out = { ...o };
  if (auto.channels) out.channels = shape.colour ? 3 : 1;
  if (auto.resolution && shape.sampled > 0) {
    const longer = Math.max(shape.width, shape.height);
    const aspect = longer / Math.max(1, Math.min(shape.width, shape.height));
    out.resolution = longer > TILE_ABOVE || aspect >= TILE_ASPECT ? Math.max(o.size, Math.min(longer, DEFAULT_RESOLUTION)) : null;
  }
  return out;
}

export interface TrainModelRequest extends FitHooks {
  files: readonly string[];
  /** What the images came from, recorded in meta.json (e.g. the directory). */
  source: string;
  outDir: string;
  options: TrainOptions;
  /** Options to infer from the images (the rest of `options` is used as given). */
  auto?: AutoOptions;
  backend: string;
}

/** Decodes the files as the model will read them (whole, or at the tiling resolution) and fits. */
async function loadAndFit(req: TrainModelRequest, o: TrainOptions, onLoad: (loaded: number, total: number) => void): Promise<{ fitted: FittedDetector; loaded: { failures: LoadFailure[] }; count: number }> {
  if (o.resolution != null) {
    const loaded = await loadPictures(req.files, { size: o.size, channels: o.channels, resolution: o.resolution }, onLoad);
    return { fitted: await fitTiledDetector(loaded.pictures, o, req), loaded, count: loaded.pictures.length };
  }
  const loaded = await loadImages(req.files, { size: o.size, channels: o.channels }, onLoad);
  return { fitted: await fitDetector(loaded.set, o, req), loaded, count: loaded.set.count };
}

/** A fitted detector's meta.json. */
export function fittedMeta(fitted: FittedDetector, o: { id: string; source: string; images: number; skipped: number; backend: string }): ModelMeta {
  const { training, options } = fitted;
  return {
    format: 'latentwatch-vae/1',
    id: o.id,
    createdAt: new Date().toISOString(),
    input: fitted.tiling
      ? { size: options.size, channels: options.channels, resize: 'tiles', tiling: fitted.tiling }
      : { size: options.size, channels: options.channels, resize: 'fill' },
    options,
    likelihood: fitted.likelihood,
    dataset: { source: o.source, images: o.images, train: fitted.split.train, validation: fitted.split.validation, skipped: o.skipped },
    training: {
      epochs: training.epochs,
      bestEpoch: training.bestEpoch,
      stoppedEarly: training.stoppedEarly,
      seconds: training.seconds,
      imagesPerSecond: training.imagesPerSecond,
    },
    calibration: fitted.calibration,
    parameters: fitted.vae.model.countParams(),
    backend: o.backend,
  };
}

/** The options a training run will use: those left to the images are read from a sample of them. */
export async function optionsForImages(files: readonly string[], options: TrainOptions, auto: AutoOptions = {}): Promise<TrainOptions> {
  return auto.channels || auto.resolution ? resolveAutoOptions(options, auto, await probeImages(files)) : options;
}

export async function trainModel(req: TrainModelRequest): Promise<{ meta: ModelMeta; failures: LoadFailure[] }> {
  if (req.files.length === 0) throw new AppError('not_enough_images', `${req.source}: no image files found`);
  const o = await optionsForImages(req.files, req.options, req.auto);
  checkTrainingMemory(o, req.files.length);
  const onLoad = (loaded: number, total: number) => req.onProgress?.({ type: 'loading', loaded, total });
  const { fitted, loaded, count } = await loadAndFit(req, o, onLoad);
  try {
    const meta = fittedMeta(fitted, {
      id: path.basename(path.resolve(req.outDir)), source: req.source, images: count, skipped: loaded.failures.length, backend: req.backend,
    });
    await saveModel(req.outDir, fitted.vae, meta);
    return { meta, failures: loaded.failures };
  } finally {
    fitted.vae.model.dispose();
  }
}

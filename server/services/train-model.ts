// Files in, model directory out: decode the normal images, fit and calibrate
// a detector, and save it with its meta.json (docs/architecture.md, Storage).
import path from 'node:path';
import { AppError } from '../domain/errors.js';
import type { ModelMeta, TrainOptions } from '../domain/types.js';
import { loadImages, type LoadFailure } from '../ml/dataset.js';
import { saveModel } from '../ml/model-store.js';
import { checkTrainingMemory, fitDetector, type FitHooks } from './fit.js';

export interface TrainModelRequest extends FitHooks {
  files: readonly string[];
  /** What the images came from, recorded in meta.json (e.g. the directory). */
  source: string;
  outDir: string;
  options: TrainOptions;
  backend: string;
}

export async function trainModel(req: TrainModelRequest): Promise<{ meta: ModelMeta; failures: LoadFailure[] }> {
  const { options: o } = req;
  if (req.files.length === 0) throw new AppError('not_enough_images', `${req.source}: no image files found`);
  checkTrainingMemory(o, req.files.length);
  const loaded = await loadImages(req.files, { size: o.size, channels: o.channels }, (loaded, total) =>
    req.onProgress?.({ type: 'loading', loaded, total }),
  );
  const fitted = await fitDetector(loaded.set, o, req);
  try {
    const { training } = fitted;
    const meta: ModelMeta = {
      format: 'latentwatch-vae/1',
      id: path.basename(path.resolve(req.outDir)),
      createdAt: new Date().toISOString(),
      input: { size: o.size, channels: o.channels, resize: 'fill' },
      options: fitted.options,
      likelihood: fitted.likelihood,
      dataset: {
        source: req.source,
        images: loaded.set.count,
        train: fitted.split.train,
        validation: fitted.split.validation,
        skipped: loaded.failures.length,
      },
      training: {
        epochs: training.epochs,
        bestEpoch: training.bestEpoch,
        stoppedEarly: training.stoppedEarly,
        seconds: training.seconds,
        imagesPerSecond: training.imagesPerSecond,
      },
      calibration: fitted.calibration,
      parameters: fitted.vae.model.countParams(),
      backend: req.backend,
    };
    await saveModel(req.outDir, fitted.vae, meta);
    return { meta, failures: loaded.failures };
  } finally {
    fitted.vae.model.dispose();
  }
}

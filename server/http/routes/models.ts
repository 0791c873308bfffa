// /api/models and /api/jobs: registry, activation, training jobs.
import { realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Router } from 'express';
import type { Context } from '../../context.js';
import { audit } from '../../db/audit.js';
import { listJobs } from '../../db/jobs.js';
import { AppError } from '../../domain/errors.js';
import type { TrainOptions } from '../../domain/types.js';
import { IMAGE_EXTENSIONS, listTrainingImages } from '../../ml/dataset.js';
import { checkTrainingMemory, DEFAULT_TRAIN_OPTIONS, validateTrainOptions } from '../../services/fit.js';
import { linkStoredImages, MIN_RECALIBRATION_IMAGES } from '../../services/recalibrate.js';
import { optionsForImages, type AutoOptions } from '../../services/train-model.js';
import { jobView } from '../../services/training-jobs.js';
import { principalOf, requireRole } from '../auth.js';
import { idParam, intParam, numParam, objectBody, strParam, timeParam } from '../params.js';
import { parseMultipartToDir } from '../uploads.js';

/**
 * Hyper-parameters from a JSON body or multipart fields, validated like the
 * CLI's flags. channels and resolution left out (or resolution "auto") are
 * for the images to decide; resolution "whole" reads images whole.
 */
export function trainOptionsFrom(raw: Record<string, unknown>): { options: TrainOptions; auto: AutoOptions } {
  const d = DEFAULT_TRAIN_OPTIONS;
  const int = (k: string, fb: number) => intParam(raw[k], k, { fallback: fb });
  const unset = (v: unknown) => v === undefined || v === '' || v === 'auto';
  const resolution = unset(raw.resolution) || raw.resolution === 'whole' ? null : intParam(raw.resolution, 'resolution');
  const o: TrainOptions = {
    ...d,
    size: int('size', d.size),
    channels: unset(raw.channels) ? d.channels : (int('channels', d.channels) as 1 | 3),
    latent: int('latent', d.latent),
    epochs: int('epochs', d.epochs),
    batchSize: int('batch', d.batchSize),
    baseFilters: int('filters', d.baseFilters),
    seed: int('seed', d.seed),
    patience: int('patience', d.patience),
    beta: raw.beta === undefined ? d.beta : numParam(raw.beta, 'beta'),
    likelihood: (strParam(raw.likelihood, 'likelihood', { optional: true }) ?? d.likelihood) as TrainOptions['likelihood'],
    validationFraction: raw.calibrationFraction === undefined ? d.validationFraction : numParam(raw.calibrationFraction, 'calibrationFraction'),
    resolution,
  };
  try {
    validateTrainOptions(o);
  } catch (err) {
    throw new AppError('bad_request', (err as Error).message.replace(/^--calibration-fraction/, 'calibrationFraction').replace(/^--/, ''));
  }
  return { options: o, auto: { channels: unset(raw.channels), resolution: unset(raw.resolution) } };
}

/** A directory named by a client must resolve (symlinks included) inside the datasets root. */
async function datasetDir(root: string, requested: string): Promise<{ dir: string; name: string }> {
  const base = await realpath(root).catch(() => {
    throw new AppError('not_found', 'no datasets directory is configured on the server (LATENTWATCH_DATASETS_DIR)');
  });
  const target = await realpath(path.resolve(base, requested)).catch(() => {
    throw new AppError('not_found', `no dataset directory ${JSON.stringify(requested)}`);
  });
  if (target !== base && !target.startsWith(base + path.sep)) {
    throw new AppError('bad_request', `directory ${JSON.stringify(requested)} is outside the datasets directory`);
  }
  return { dir: target, name: path.relative(base, target) || '.' };
}

export function modelsRouter(ctx: Context): Router {
  const r = Router();

  r.get('/', requireRole('viewer'), (_req, res) => {
    res.json({ models: ctx.registry.list().map((m) => ({ ...JSON.parse(m.summary), active: m.active === 1 })) });
  });

  r.post('/train', requireRole('admin'), async (req, res) => {
    const who = principalOf(req);
    let options: TrainOptions;
    let dataDir: string;
    let source: string;
    const uploaded = /^multipart\/form-data/i.test(req.headers['content-type'] ?? '');
    if (uploaded) {
      // Streamed to disk: a training set can be thousands of large files.
      dataDir = path.join(ctx.jobs.uploadsDir, `train-${Date.now()}-${randomBytes(4).toString('hex')}`);
      const limits = { field: 'images', maxFileBytes: ctx.config.maxUploadBytes, maxFiles: ctx.config.maxTrainFiles, maxTotalBytes: ctx.config.maxTrainBytes };
      // Never trust an upload's name for a path: keep only a known extension.
      const safeExtension = (name: string) => {
        const ext = path.extname(name).toLowerCase();
        return IMAGE_EXTENSIONS.has(ext) ? ext : '.img';
      };
      const { files, fields } = await parseMultipartToDir(req, limits, dataDir, safeExtension);
      try {
        const requested = trainOptionsFrom(fields);
        if (files.length === 0) throw new AppError('bad_request', 'no images: upload the normal images in the multipart field "images"');
        options = await optionsForImages(files.map((f) => f.path), requested.options, requested.auto);
        checkTrainingMemory(options, files.length);
      } catch (err) {
        await rm(dataDir, { recursive: true, force: true });
        throw err;
      }
      source = `upload of ${files.length} images`;
    } else {
      const body = objectBody(req.body);
      const requested = trainOptionsFrom(body);
      const dir = strParam(body.directory, 'directory', { max: 500 })!;
      const dataset = await datasetDir(ctx.config.datasetsDir, dir);
      dataDir = dataset.dir;
      source = `datasets/${dataset.name}`;
      options = await optionsForImages((await listTrainingImages(dataDir, source)).files, requested.options, requested.auto);
    }
    let job;
    try {
      job = ctx.jobs.submit({ options, dataDir, source, createdBy: who.keyId });
    } catch (err) {
      if (uploaded) await rm(dataDir, { recursive: true, force: true });
      throw err;
    }
    audit(ctx.db, { keyId: who.keyId, action: 'model.train', target: `job:${job.id}`, detail: { source, options }, now: ctx.clock.now() });
    res.status(202).json(jobView(job));
  });

  r.get('/:id', requireRole('viewer'), async (req, res) => {
    const row = ctx.registry.get(String(req.params.id));
    const meta = await ctx.registry.meta(row.id);
    res.json({ ...JSON.parse(row.summary), active: row.active === 1, calibrationScores: Object.fromEntries(Object.entries(meta.calibration.channels).map(([ch, c]) => [ch, c.scores])) });
  });

  /** A new version of this model calibrated on stored images (same weights), made in the worker. */
  r.post('/:id/recalibrate', requireRole('admin'), async (req, res) => {
    const who = principalOf(req);
    const parent = ctx.registry.get(String(req.params.id));
    const body = objectBody(req.body ?? {});
    const sel = {
      source: strParam(body.source, 'source', { max: 100, optional: true }),
      since: timeParam(body.since, 'since'),
      until: timeParam(body.until, 'until'),
      limit: intParam(body.limit, 'limit', { min: MIN_RECALIBRATION_IMAGES, max: 5000, fallback: 500 }),
    };
    const meta = await ctx.registry.meta(parent.id);
    const { dir, count } = await linkStoredImages(ctx.db, ctx.files, ctx.jobs.uploadsDir, sel);
    const where = [sel.source ? `source ${sel.source}` : 'all sources', sel.since ? `since ${new Date(sel.since).toISOString()}` : '', sel.until ? `until ${new Date(sel.until).toISOString()}` : ''].filter(Boolean).join(', ');
    let job;
    try {
      job = ctx.jobs.submit({ options: meta.options, dataDir: dir, source: `recalibration of ${parent.id} on ${count} stored images (${where})`, createdBy: who.keyId, parentModel: parent.id });
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    audit(ctx.db, { keyId: who.keyId, action: 'model.recalibrate', target: `job:${job.id}`, detail: { parent: parent.id, ...sel, images: count }, now: ctx.clock.now() });
    res.status(202).json(jobView(job));
  });

  r.post('/:id/activate', requireRole('admin'), async (req, res) => {
    const who = principalOf(req);
    const row = await ctx.registry.activate(ctx.registry.get(String(req.params.id)).id, who.keyId);
    audit(ctx.db, { keyId: who.keyId, action: 'model.activate', target: `model:${row.id}`, now: ctx.clock.now() });
    res.json({ ...JSON.parse(row.summary), active: true });
  });

  return r;
}

export function jobsRouter(ctx: Context): Router {
  const r = Router();
  r.get('/', requireRole('viewer'), (_req, res) => {
    res.json({ jobs: listJobs(ctx.db).map(jobView) });
  });
  r.get('/:id', requireRole('viewer'), (req, res) => {
    res.json(jobView(ctx.jobs.get(idParam(req.params.id, 'job id'))));
  });
  r.post('/:id/cancel', requireRole('admin'), (req, res) => {
    const who = principalOf(req);
    const job = ctx.jobs.cancel(idParam(req.params.id, 'job id'));
    audit(ctx.db, { keyId: who.keyId, action: 'job.cancel', target: `job:${job.id}`, now: ctx.clock.now() });
    res.json(jobView(job));
  });
  return r;
}

// The scoring pipeline behind POST /api/images: decode, score in micro-batches
// with the active model, render the derived images, store files, then commit
// the image row, its alerts and their events in one transaction, and only
// then broadcast. A score the API answered is in the database.
import { assess } from '../domain/calibration.js';
import { AppError, errorBody } from '../domain/errors.js';
import type { RawScores } from '../domain/types.js';
import type { ImageView } from '../domain/wire.js';
import { insertImage, getImage, type ImageRow } from '../db/images.js';
import type { Db } from '../db/open.js';
import { decodeImage } from '../ml/images.js';
import { heatmapPng, pixelsPng, thumbnailPng } from '../ml/render.js';
import { scoreImages } from '../ml/score.js';
import type { Logger } from '../logger.js';
import { evaluateRules } from './alerting.js';
import { scoringModel, type Detector } from './detector.js';
import type { BusEvent, EventBus } from './event-bus.js';
import { derivedPath, originalPath, sha256, type FileStore } from './file-store.js';
import { MicroBatcher } from './micro-batcher.js';
import type { ModelRegistry } from './model-registry.js';
import type { WebhookSender } from './webhooks.js';

export interface Upload {
  name: string;
  bytes: Buffer;
}

export type ScoreOutcome =
  | { name: string; image: ImageView; alerts: unknown[] }
  | { name: string; error: { code: string; message: string } };

export function imageView(r: ImageRow): ImageView {
  const base = `/api/images/${r.id}`;
  return {
    id: r.id, receivedAt: new Date(r.received_at).toISOString(), source: r.source, originalName: r.original_name,
    sha256: r.sha256, format: r.format, width: r.width, height: r.height, bytes: r.bytes, modelId: r.model_id,
    scores: { kl: r.kl, recon: r.recon, elbo: r.elbo },
    p: { kl: r.p_kl, recon: r.p_recon, elbo: r.p_elbo, combined: r.p_combined },
    percentile: { kl: r.pct_kl, recon: r.pct_recon, elbo: r.pct_elbo },
    anomaly: r.anomaly === 1,
    urls: { original: `${base}/original`, thumbnail: `${base}/thumbnail`, reconstruction: `${base}/reconstruction`, heatmap: `${base}/heatmap` },
  };
}

interface BatchItem {
  detector: Detector;
  pixels: Float32Array;
}

interface BatchResult {
  raw: RawScores;
  errorMap: Float32Array;
  reconstruction: Float32Array;
}

/** One forward pass for everything submitted together (all with the same detector). */
function runBatch(items: BatchItem[]): BatchResult[] {
  const out: BatchResult[] = new Array(items.length);
  const groups = new Map<Detector, number[]>();
  items.forEach((it, i) => groups.set(it.detector, [...(groups.get(it.detector) ?? []), i]));
  for (const [detector, idx] of groups) {
    const { size, channels } = detector.meta.input;
    const p = size * size * channels;
    const data = new Float32Array(idx.length * p);
    idx.forEach((i, k) => data.set(items[i].pixels, k * p));
    const scored = scoreImages(scoringModel(detector), { data, count: idx.length, size, channels }, { errorMaps: true, reconstructions: true, batchSize: 64 });
    idx.forEach((i, k) => (out[i] = { raw: scored.scores[k], errorMap: scored.errorMaps[k], reconstruction: scored.reconstructions[k] }));
  }
  return out;
}

export interface ScoringDeps {
  db: Db;
  registry: ModelRegistry;
  files: FileStore;
  bus: EventBus;
  webhooks: WebhookSender;
  log: Logger;
  now: () => number;
}

export class ScoringService {
  private readonly batcher = new MicroBatcher<BatchItem, BatchResult>(runBatch, 64, 2);
  private inFlight = 0;

  constructor(private readonly d: ScoringDeps) {}

  get queueDepth(): number {
    return this.inFlight;
  }

  /** Scores every upload; a bad one gets an error outcome and the rest go on. */
  async scoreUploads(uploads: Upload[], source: string): Promise<ScoreOutcome[]> {
    const active = await this.d.registry.active();
    if (!active) throw new AppError('no_active_model', 'no model is active yet: train one (POST /api/models/train) or activate one (POST /api/models/:id/activate)');
    this.inFlight += uploads.length;
    try {
      return await Promise.all(uploads.map((u) => this.scoreOne(u, source, active.detector).catch((err) => ({ name: u.name, error: errorBody(err) }))));
    } finally {
      this.inFlight -= uploads.length;
    }
  }

  private async scoreOne(u: Upload, source: string, detector: Detector): Promise<ScoreOutcome> {
    const { meta } = detector;
    const decoded = await decodeImage(u.bytes, { size: meta.input.size, channels: meta.input.channels }, u.name);
    const { raw, errorMap, reconstruction } = await this.batcher.submit({ detector, pixels: decoded.pixels });
    const verdict = assess(meta.calibration, raw);
    const hash = sha256(u.bytes);
    const { files } = this.d;
    const view = Math.max(128, meta.input.size);
    const [thumb, rec, heat] = await Promise.all([
      thumbnailPng(u.bytes),
      pixelsPng(reconstruction, meta.input.size, meta.input.channels, view),
      heatmapPng(errorMap, meta.input.size, meta.calibration.heatmapScale, view),
    ]);
    const [originalRel, thumbRel, recRel, heatRel] = await Promise.all([
      files.put(originalPath(hash, decoded.format), u.bytes),
      files.put(derivedPath(hash, 'thumb'), thumb),
      files.put(derivedPath(hash, `${meta.id}-reconstruction`), rec),
      files.put(derivedPath(hash, `${meta.id}-heatmap`), heat),
    ]);

    const now = this.d.now();
    const { db, bus } = this.d;
    const { row, events, webhooks } = db.transaction(() => {
      const id = insertImage(db, {
        received_at: now, source, original_name: u.name, sha256: hash, format: decoded.format,
        width: decoded.width, height: decoded.height, bytes: u.bytes.length, model_id: meta.id,
        kl: raw.kl, recon: raw.recon, elbo: raw.elbo,
        p_kl: verdict.p.kl, p_recon: verdict.p.recon, p_elbo: verdict.p.elbo, p_combined: verdict.p.combined,
        pct_kl: verdict.percentile.kl, pct_recon: verdict.percentile.recon, pct_elbo: verdict.percentile.elbo,
        anomaly: verdict.anomaly ? 1 : 0,
        original_path: originalRel, thumbnail_path: thumbRel, reconstruction_path: recRel, heatmap_path: heatRel,
      });
      const row = getImage(db, id)!;
      const scored = bus.record('image.scored', imageView(row));
      const changes = evaluateRules(db, bus, row, meta.calibration, now);
      return { row, events: [scored, ...changes.map((c) => c.event)] as BusEvent[], webhooks: changes.flatMap((c) => (c.webhook ? [c.webhook] : [])) };
    })();
    for (const e of events) bus.broadcast(e);
    for (const w of webhooks) this.d.webhooks.enqueue(w.url, w.body);
    return { name: u.name, image: imageView(row), alerts: events.slice(1).map((e) => e.payload) };
  }
}

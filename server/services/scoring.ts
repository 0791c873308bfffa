// The scoring pipeline behind POST /api/images: decode, score in micro-batches
// with the active model, render the derived images, store files, then commit
// the request's image rows, their alerts and events in one transaction, and
// only then broadcast. A score the API answered is in the database. Bad input
// fails only its own file; a failure of the server's own (disk, database,
// model) fails the whole request before anything is committed, so a client
// may retry it without duplicates.
import { assess } from '../domain/calibration.js';
import { AppError, isClientError } from '../domain/errors.js';
import type { RawScores } from '../domain/types.js';
import type { ImageView } from '../domain/wire.js';
import { insertImage, getImage, type ImageRow } from '../db/images.js';
import type { Db } from '../db/open.js';
import { decodeImage, type DecodedImage } from '../ml/images.js';
import { heatmapPng, pixelsPng, thumbnailPng, viewGrid } from '../ml/render.js';
import { scoreImages } from '../ml/score.js';
import { copyTile, stitch, tileGrid } from '../ml/tiles.js';
import type { Logger } from '../logger.js';
import { evaluateRules } from './alerting.js';
import { scoringModel } from './detector.js';
import type { BusEvent, EventBus } from './event-bus.js';
import { derivedPath, originalPath, sha256, type FileStore } from './file-store.js';
import type { Metrics } from './metrics.js';
import { MicroBatcher } from './micro-batcher.js';
import type { ModelLease, ModelRegistry } from './model-registry.js';
import type { WebhookSender } from './webhooks.js';

export interface Upload {
  name: string;
  bytes: Buffer;
}

export type ScoreOutcome =
  | { name: string; image: ImageView; alerts: unknown[] }
  /** Bad input only; serialises as {code, message}. */
  | { name: string; error: AppError };

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
  lease: ModelLease;
  pixels: Float32Array;
}

interface BatchResult {
  raw: RawScores;
  errorMap: Float32Array;
  reconstruction: Float32Array;
}

/** One forward pass for a batch; the batcher groups items by model, so all share one. */
function runBatch(items: BatchItem[]): BatchResult[] {
  const { lease } = items[0];
  // Every submitter holds its lease until its item settles; a released one is a bug, not a tfjs error later.
  if (items.some((it) => !it.lease.held || it.lease.detector !== lease.detector)) throw new Error('micro-batch holds a released or mixed model');
  const detector = lease.detector;
  const { size, channels } = detector.meta.input;
  const p = size * size * channels;
  const data = new Float32Array(items.length * p);
  items.forEach((it, k) => data.set(it.pixels, k * p));
  const scored = scoreImages(scoringModel(detector), { data, count: items.length, size, channels }, { errorMaps: true, reconstructions: true, batchSize: 64 });
  return items.map((_, k) => ({ raw: scored.scores[k], errorMap: scored.errorMaps[k], reconstruction: scored.reconstructions[k] }));
}

/** An upload scored, rendered and stored, waiting for the commit. */
interface Prepared {
  upload: Upload;
  decoded: DecodedImage;
  hash: string;
  raw: RawScores;
  paths: { original: string; thumbnail: string; reconstruction: string; heatmap: string };
}

export interface ScoringDeps {
  db: Db;
  registry: ModelRegistry;
  files: FileStore;
  bus: EventBus;
  webhooks: WebhookSender;
  log: Logger;
  now: () => number;
  metrics?: Pick<Metrics, 'uploadScored'>;
}

export class ScoringService {
  private readonly batcher = new MicroBatcher<BatchItem, BatchResult>(runBatch, 64, 2, (it) => it.lease.detector);
  private inFlight = 0;

  constructor(private readonly d: ScoringDeps) {}

  get queueDepth(): number {
    return this.inFlight;
  }

  /**
   * Scores every upload with one model, leased for the whole request. A bad
   * upload gets an error outcome and the rest go on; a server failure throws.
   */
  async scoreUploads(uploads: Upload[], source: string): Promise<ScoreOutcome[]> {
    const lease = await this.d.registry.lease();
    if (!lease) throw new AppError('no_active_model', 'no model is active yet: train one (POST /api/models/train) or activate one (POST /api/models/:id/activate)');
    const started = performance.now();
    this.inFlight += uploads.length;
    try {
      // allSettled, not all: the lease must outlive every file's work.
      const settled = await Promise.allSettled(uploads.map((u) => this.prepare(u, lease)));
      const serverFailures = settled.flatMap((r) => (r.status === 'rejected' && !isClientError(r.reason) ? [r.reason as unknown] : []));
      if (serverFailures.length > 0) {
        for (const extra of serverFailures.slice(1)) this.d.log.error('upload failed', { error: (extra as Error)?.stack ?? String(extra) });
        throw serverFailures[0];
      }
      const outcomes = this.commit(uploads, settled, source, lease);
      this.d.metrics?.uploadScored(source, outcomes, (performance.now() - started) / 1000);
      return outcomes;
    } finally {
      this.inFlight -= uploads.length;
      lease.release();
    }
  }

  /**
   * Scores one decoded image: one batch item for a whole-image model; for a
   * tiled model one item per tile (the batcher packs them with other
   * uploads' tiles), stitched back into a full-image map.
   */
  private async scoreDecoded(decoded: DecodedImage, lease: ModelLease): Promise<BatchResult> {
    const { size, channels, tiling } = lease.detector.meta.input;
    const { local } = lease.detector.meta.calibration;
    if (!tiling || !local) return this.batcher.submit({ lease, pixels: decoded.pixels });
    const picture = { pixels: decoded.pixels, cols: decoded.cols, rows: decoded.rows, channels };
    const grid = tileGrid(decoded.cols, decoded.rows, size, tiling.stride);
    const results = await Promise.all(grid.map(({ x, y }) => {
      const pixels = new Float32Array(size * size * channels);
      copyTile(picture, x, y, size, pixels);
      return this.batcher.submit({ lease, pixels });
    }));
    const stitched = stitch(decoded.cols, decoded.rows, channels, size, grid, results, local);
    return { raw: stitched.raw, errorMap: stitched.errorMap, reconstruction: stitched.reconstruction! };
  }

  private async prepare(u: Upload, lease: ModelLease): Promise<Prepared> {
    const { meta } = lease.detector;
    const decoded = await decodeImage(u.bytes, { size: meta.input.size, channels: meta.input.channels, resolution: meta.input.tiling?.resolution }, u.name);
    const { raw, errorMap, reconstruction } = await this.scoreDecoded(decoded, lease);
    const hash = sha256(u.bytes);
    const { files } = this.d;
    const grid = { cols: decoded.cols, rows: decoded.rows };
    const view = viewGrid(grid);
    const [thumb, rec, heat] = await Promise.all([
      thumbnailPng(u.bytes),
      pixelsPng(reconstruction, grid, meta.input.channels, view),
      heatmapPng(errorMap, grid, meta.calibration.heatmapScale, meta.calibration.local ? 'local' : 'squared', view),
    ]);
    const [original, thumbnail, reconstructionRel, heatmap] = await Promise.all([
      files.put(originalPath(hash, decoded.format), u.bytes),
      files.put(derivedPath(hash, 'thumb'), thumb),
      files.put(derivedPath(hash, `${meta.id}-reconstruction`), rec),
      files.put(derivedPath(hash, `${meta.id}-heatmap`), heat),
    ]);
    return { upload: u, decoded, hash, raw, paths: { original, thumbnail, reconstruction: reconstructionRel, heatmap } };
  }

  /** One transaction for the whole request, in upload order; broadcasts only after it commits. */
  private commit(uploads: Upload[], settled: PromiseSettledResult<Prepared>[], source: string, lease: ModelLease): ScoreOutcome[] {
    const { meta } = lease.detector;
    const { db, bus } = this.d;
    const now = this.d.now();
    const { outcomes, events, webhooks } = db.transaction(() => {
      const events: BusEvent[] = [];
      const webhooks: { url: string; body: unknown }[] = [];
      const outcomes = settled.map((r, i): ScoreOutcome => {
        if (r.status === 'rejected') return { name: uploads[i].name, error: r.reason as AppError }; // a client error: checked above
        const { upload: u, decoded, hash, raw, paths } = r.value;
        const verdict = assess(meta.calibration, raw);
        const id = insertImage(db, {
          received_at: now, source, original_name: u.name, sha256: hash, format: decoded.format,
          width: decoded.width, height: decoded.height, bytes: u.bytes.length, model_id: meta.id,
          kl: raw.kl, recon: raw.recon, elbo: raw.elbo,
          p_kl: verdict.p.kl, p_recon: verdict.p.recon, p_elbo: verdict.p.elbo, p_combined: verdict.p.combined,
          pct_kl: verdict.percentile.kl, pct_recon: verdict.percentile.recon, pct_elbo: verdict.percentile.elbo,
          anomaly: verdict.anomaly ? 1 : 0,
          original_path: paths.original, thumbnail_path: paths.thumbnail, reconstruction_path: paths.reconstruction, heatmap_path: paths.heatmap,
        });
        const row = getImage(db, id)!;
        const scored = bus.record('image.scored', imageView(row));
        const changes = evaluateRules(db, bus, row, meta.calibration, now);
        events.push(scored, ...changes.map((c) => c.event));
        for (const c of changes) if (c.webhook) webhooks.push(c.webhook);
        return { name: u.name, image: imageView(row), alerts: changes.map((c) => c.event.payload) };
      });
      return { outcomes, events, webhooks };
    })();
    for (const e of events) bus.broadcast(e);
    for (const w of webhooks) this.d.webhooks.enqueue(w.url, w.body);
    return outcomes;
  }
}

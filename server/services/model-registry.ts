// Which trained models exist and which one scores new images. Model files
// live under the models directory; the database keeps the registry and the
// active version; the active detector stays loaded in memory. Scoring leases
// the model it uses: a model that stops being active is freed only when the
// last request holding it has finished.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { activeModel, getModel, insertModel, listModels, setActiveModel, type ModelRow } from '../db/models.js';
import type { Db } from '../db/open.js';
import { AppError } from '../domain/errors.js';
import type { Channel, ModelMeta } from '../domain/types.js';
import type { ModelView } from '../domain/wire.js';
import { CHANNELS } from '../domain/types.js';
import type { Logger } from '../logger.js';
import { disposeDetector, loadDetector, type Detector } from './detector.js';
import type { EventBus } from './event-bus.js';

/** What the API shows about a model without loading it (meta.json minus the big arrays). */
export function modelSummary(meta: ModelMeta): Omit<ModelView, 'active'> {
  const cal = meta.calibration;
  return {
    id: meta.id,
    createdAt: meta.createdAt,
    input: meta.input,
    options: meta.options,
    likelihood: meta.likelihood,
    dataset: meta.dataset,
    training: meta.training,
    parameters: meta.parameters,
    backend: meta.backend,
    lineage: meta.lineage ?? null,
    calibration: {
      n: cal.n,
      falseAlarmRate: cal.falseAlarmRate,
      heatmapScale: cal.heatmapScale,
      thresholds: Object.fromEntries(CHANNELS.map((ch) => [ch, cal.channels[ch].threshold])) as Record<Channel, number>,
    },
  };
}


/** A model held for one request: it stays in memory until released. */
export interface ModelLease {
  row: ModelRow;
  detector: Detector;
  /** False once released: the detector may then be freed at any moment. */
  readonly held: boolean;
  /** Idempotent. */
  release(): void;
}

/** A model in memory (or being loaded) and how many leases hold it. */
interface Loaded {
  ready: Promise<Detector>;
  detector: Detector | null;
  leases: number;
}

export class ModelRegistry {
  /** By model id. One entry per model, so concurrent callers share one load. */
  private readonly models = new Map<string, Loaded>();
  /** The model kept in memory with no lease on it: the active one. */
  private keep: string | null = null;
  private closed = false;

  constructor(
    private readonly db: Db,
    private readonly modelsDir: string,
    private readonly bus: EventBus,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** Registers a model directory (after training, or found on disk). */
  async register(dir: string): Promise<ModelRow> {
    let meta: ModelMeta;
    try {
      meta = JSON.parse(await readFile(path.join(dir, 'meta.json'), 'utf8')) as ModelMeta;
    } catch (err) {
      this.log.warn('unreadable model directory', { dir, error: (err as Error).message });
      throw new AppError('model_invalid', `model folder ${JSON.stringify(path.basename(dir))} has no readable meta.json`, { cause: err });
    }
    const existing = getModel(this.db, meta.id);
    if (existing) return existing;
    insertModel(this.db, {
      id: meta.id, dir: path.resolve(dir), created_at: Date.parse(meta.createdAt) || this.now(),
      input_size: meta.input.size, channels: meta.input.channels, summary: JSON.stringify(modelSummary(meta)),
    });
    this.log.info('model registered', { id: meta.id, dir });
    return getModel(this.db, meta.id)!;
  }

  /** Registers every model directory under the models dir; activates the newest if none is active. */
  async syncFromDisk(): Promise<void> {
    let entries: string[] = [];
    try {
      // A `.tmp-` folder is a version still being written (or abandoned mid-write).
      entries = (await readdir(this.modelsDir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.includes('.tmp-')).map((e) => e.name);
    } catch {
      return; // no models directory yet
    }
    for (const name of entries.sort()) {
      try {
        await this.register(path.join(this.modelsDir, name));
      } catch (err) {
        this.log.warn('skipping model directory', { dir: name, error: (err as Error).message });
      }
    }
    if (!activeModel(this.db)) {
      const newest = listModels(this.db)[0];
      if (newest) await this.activate(newest.id, null);
    }
  }

  list(): ModelRow[] {
    return listModels(this.db);
  }

  get(id: string): ModelRow {
    const row = getModel(this.db, id);
    if (!row) throw new AppError('not_found', `no model ${JSON.stringify(id)}`);
    return row;
  }

  activeRow(): ModelRow | undefined {
    return activeModel(this.db);
  }

  /**
   * Loads first (a model that cannot load is never activated), then switches.
   * Requests already scoring keep the previous model until they finish.
   */
  async activate(id: string, byKey: number | null): Promise<ModelRow> {
    const row = this.get(id);
    let entry: Loaded;
    try {
      ({ entry } = await this.acquire(row));
    } catch (err) {
      throw this.unusable(row, err);
    }
    try {
      setActiveModel(this.db, id);
      this.keep = id;
    } finally {
      this.release(entry);
    }
    this.bus.publish('model.activated', { id, by: byKey });
    this.log.info('model activated', { id });
    return this.get(id);
  }

  /**
   * The active model, held until release(); null when there is none. Every
   * use of the detector's tensors goes through a lease.
   */
  async lease(): Promise<ModelLease | null> {
    if (this.closed) throw new AppError('unavailable', 'the server is shutting down');
    const row = activeModel(this.db);
    if (!row) return null;
    this.keep = row.id;
    let got: { entry: Loaded; detector: Detector };
    try {
      got = await this.acquire(row);
    } catch (err) {
      // The client did nothing wrong: the server's model is missing or broken.
      this.log.warn('active model cannot be loaded', { id: row.id, dir: row.dir, error: (err as Error)?.message });
      throw new AppError('unavailable', `the active model ${JSON.stringify(row.id)} cannot be loaded; activate another one`, { cause: err });
    }
    let released = false;
    return {
      row,
      detector: got.detector,
      get held() {
        return !released;
      },
      release: () => {
        if (released) return;
        released = true;
        this.release(got.entry);
      },
    };
  }

  /**
   * The active model for callers that only read detector.meta (thresholds,
   * calibration). Its tensors may be freed after the next activation: score
   * through lease() instead.
   */
  async active(): Promise<{ row: ModelRow; detector: Detector } | null> {
    const lease = await this.lease();
    if (!lease) return null;
    lease.release();
    return { row: lease.row, detector: lease.detector };
  }

  /** Takes a lease on a model's entry, joining its load if one is under way. */
  private async acquire(row: ModelRow): Promise<{ entry: Loaded; detector: Detector }> {
    if (this.closed) throw new AppError('unavailable', 'the server is shutting down');
    let entry = this.models.get(row.id);
    if (!entry) {
      const created: Loaded = { ready: null as unknown as Promise<Detector>, detector: null, leases: 0 };
      created.ready = loadDetector(row.dir).then(
        (d) => (created.detector = d),
        (err: unknown) => {
          // Not cached: the next caller tries again (the folder may be restored).
          if (this.models.get(row.id) === created) this.models.delete(row.id);
          throw err;
        },
      );
      this.models.set(row.id, created);
      entry = created;
    }
    entry.leases++;
    try {
      return { entry, detector: await entry.ready };
    } catch (err) {
      entry.leases--;
      throw err;
    }
  }

  private release(entry: Loaded): void {
    entry.leases--;
    this.sweep();
  }

  /** Frees every loaded model that is neither the active one nor leased. */
  private sweep(): void {
    for (const [id, e] of this.models) {
      if (e.leases > 0 || id === this.keep || !e.detector) continue;
      this.models.delete(id);
      try {
        disposeDetector(e.detector);
        this.log.info('model unloaded', { id });
      } catch (err) {
        // One model that cannot be freed must not keep the others in memory.
        this.log.error('model could not be unloaded', { id, error: (err as Error)?.stack });
      }
    }
  }

  /** A model whose files are gone or damaged, named by id (its path goes to the log only). */
  private unusable(row: ModelRow, err: unknown): AppError {
    this.log.warn('model cannot be loaded', { id: row.id, dir: row.dir, error: (err as Error)?.message });
    const missing = (err instanceof AppError && err.code === 'not_found') || (err as NodeJS.ErrnoException)?.code === 'ENOENT';
    return missing
      ? new AppError('not_found', `model ${JSON.stringify(row.id)} is registered but its files are missing from the models directory`, { cause: err })
      : new AppError('model_invalid', `model ${JSON.stringify(row.id)} cannot be loaded: its files are damaged`, { cause: err });
  }

  /** Full meta.json of a model (curves and calibration arrays included). */
  async meta(id: string): Promise<ModelMeta> {
    const row = this.get(id);
    try {
      return JSON.parse(await readFile(path.join(row.dir, 'meta.json'), 'utf8')) as ModelMeta;
    } catch (err) {
      throw this.unusable(row, err);
    }
  }

  /** Frees what no request holds; leased models are freed as their leases end. */
  close(): void {
    this.closed = true;
    this.keep = null;
    this.sweep();
  }
}

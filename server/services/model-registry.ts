// Which trained models exist and which one scores new images. Model files
// live under the models directory; the database keeps the registry and the
// active version; the active detector stays loaded in memory.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { activeModel, getModel, insertModel, listModels, setActiveModel, type ModelRow } from '../db/models.js';
import type { Db } from '../db/open.js';
import { AppError } from '../domain/errors.js';
import type { Channel, ModelMeta } from '../domain/types.js';
import type { ModelView } from '../domain/wire.js';
import { CHANNELS } from '../domain/types.js';
import type { Logger } from '../logger.js';
import { loadDetector, type Detector } from './detector.js';
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
    calibration: {
      n: cal.n,
      falseAlarmRate: cal.falseAlarmRate,
      heatmapScale: cal.heatmapScale,
      thresholds: Object.fromEntries(CHANNELS.map((ch) => [ch, cal.channels[ch].threshold])) as Record<Channel, number>,
    },
  };
}


export class ModelRegistry {
  private loaded: { id: string; detector: Detector } | null = null;

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
      throw new AppError('model_invalid', `${dir}: no readable meta.json (${(err as Error).message})`);
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
      entries = (await readdir(this.modelsDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
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

  /** Loads first (a model that cannot load is never activated), then switches. */
  async activate(id: string, byKey: number | null): Promise<ModelRow> {
    await this.load(this.get(id));
    setActiveModel(this.db, id);
    this.bus.publish('model.activated', { id, by: byKey });
    this.log.info('model activated', { id });
    return this.get(id);
  }

  /** The active model, loaded; null when there is none. */
  async active(): Promise<{ row: ModelRow; detector: Detector } | null> {
    const row = activeModel(this.db);
    return row ? { row, detector: await this.load(row) } : null;
  }

  /** The model in memory: kept if it is this one, else loaded, freeing the one it replaces. */
  private async load(row: ModelRow): Promise<Detector> {
    if (this.loaded?.id === row.id) return this.loaded.detector;
    const detector = await loadDetector(row.dir);
    this.loaded?.detector.vae.model.dispose();
    this.loaded = { id: row.id, detector };
    return detector;
  }

  /** Full meta.json of a model (curves and calibration arrays included). */
  async meta(id: string): Promise<ModelMeta> {
    const row = this.get(id);
    return JSON.parse(await readFile(path.join(row.dir, 'meta.json'), 'utf8')) as ModelMeta;
  }

  close(): void {
    this.loaded?.detector.vae.model.dispose();
    this.loaded = null;
  }
}

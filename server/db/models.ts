// The model registry: which trained model versions exist, and the active one.
import type { Db } from './open.js';

export interface ModelRow {
  id: string;
  dir: string;
  created_at: number;
  input_size: number;
  channels: number;
  summary: string;
  active: 0 | 1;
}

export function insertModel(db: Db, m: Omit<ModelRow, 'active'>): void {
  db.prepare('INSERT INTO models (id, dir, created_at, input_size, channels, summary) VALUES (?, ?, ?, ?, ?, ?)')
    .run(m.id, m.dir, m.created_at, m.input_size, m.channels, m.summary);
}

export function getModel(db: Db, id: string): ModelRow | undefined {
  return db.prepare('SELECT * FROM models WHERE id = ?').get(id) as ModelRow | undefined;
}

export function listModels(db: Db): ModelRow[] {
  return db.prepare('SELECT * FROM models ORDER BY created_at DESC, id').all() as ModelRow[];
}

export function activeModel(db: Db): ModelRow | undefined {
  return db.prepare('SELECT * FROM models WHERE active = 1').get() as ModelRow | undefined;
}

export function setActiveModel(db: Db, id: string): void {
  db.transaction(() => {
    db.prepare('UPDATE models SET active = 0 WHERE active = 1').run();
    db.prepare('UPDATE models SET active = 1 WHERE id = ?').run(id);
  })();
}

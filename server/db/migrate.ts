// Numbered .sql migrations, each applied once in a transaction and recorded
// with a checksum. A database that has drifted from the files is refused.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export function readMigrations(dir: string): Migration[] {
  const migrations = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .map((file) => {
      const m = FILE.exec(file);
      if (!m) throw new Error(`migration file name ${file} does not match NNNN_name.sql`);
      const sql = readFileSync(path.join(dir, file), 'utf8');
      return { version: Number(m[1]), name: file, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations must be numbered 0001, 0002, … without gaps; found ${m.name}`);
  });
  return migrations;
}

export function migrate(db: Database.Database, dir: string): { applied: string[] } {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const migrations = readMigrations(dir);
  const done = db.prepare('SELECT version, name, checksum FROM schema_migrations ORDER BY version').all() as Omit<Migration, 'sql'>[];
  for (const row of done) {
    const file = migrations[row.version - 1];
    if (!file) {
      throw new Error(`database has migration ${row.name}, which this version of latentwatch does not know: it was written by a newer version`);
    }
    if (file.checksum !== row.checksum) {
      throw new Error(`database has drifted: migration ${row.name} was changed after it was applied (never edit a landed migration; add a new one)`);
    }
  }
  const applied: string[] = [];
  const record = db.prepare('INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)');
  for (const m of migrations.slice(done.length)) {
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, m.checksum, Date.now());
    })();
    applied.push(m.name);
  }
  return { applied };
}

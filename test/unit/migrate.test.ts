import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, readdir, rename, writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileIdentity, openDb } from '../../server/db/open.js';
import { MIGRATIONS_DIR } from '../../server/paths.js';
import { tempDir } from '../helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterAll(() => cleanup());

async function copyMigrations(to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const f of await readdir(MIGRATIONS_DIR)) if (f.endsWith('.sql')) await copyFile(path.join(MIGRATIONS_DIR, f), path.join(to, f));
}

/** Every migration file this version ships, in order, and the number the next one would take. */
const shipped = async () => (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{4}_.*\.sql$/.test(f)).sort();
const nextNumber = async () => String((await shipped()).length + 1).padStart(4, '0');

describe('migrations', () => {
  it('apply every migration to a fresh database, in WAL mode with foreign keys on', async () => {
    const all = await shipped();
    const file = path.join(dir, 'fresh', 'lw.db');
    const db = openDb(file);
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    for (const t of ['api_keys', 'sessions', 'models', 'training_jobs', 'images', 'alert_rules', 'alerts', 'alert_transitions', 'silences', 'events', 'audit_log', 'settings', 'schema_migrations']) {
      expect(tables).toContain(t);
    }
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(db.prepare('SELECT name FROM schema_migrations ORDER BY name').all()).toEqual(all.map((name) => ({ name })));
    db.close();
    // Opening again applies nothing new and keeps the data.
    const again = openDb(file);
    expect((again.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(all.length);
    again.close();
  });

  it('enforces foreign keys and one active model', () => {
    const db = openDb(':memory:');
    expect(() => db.prepare("INSERT INTO sessions (token_hash, key_id, created_at, expires_at) VALUES ('x', 999, 0, 1)").run()).toThrow(/FOREIGN KEY/);
    db.prepare("INSERT INTO models (id, dir, created_at, input_size, channels, summary, active) VALUES ('a', 'd', 0, 28, 1, '{}', 1)").run();
    expect(() => db.prepare("INSERT INTO models (id, dir, created_at, input_size, channels, summary, active) VALUES ('b', 'd', 0, 28, 1, '{}', 1)").run()).toThrow(/UNIQUE/);
    db.close();
  });

  it('refuses a database whose applied migration was edited afterwards', async () => {
    const migrations = path.join(dir, 'drift-migrations');
    await copyMigrations(migrations);
    const file = path.join(dir, 'drift', 'lw.db');
    openDb(file, migrations).close();
    await appendFile(path.join(migrations, '0001_initial.sql'), '\n-- an innocent-looking edit\n');
    expect(() => openDb(file, migrations)).toThrow(/database has drifted: migration 0001_initial\.sql was changed after it was applied/);
  });

  it('refuses a database written by a newer version, and applies a new migration in order', async () => {
    const migrations = path.join(dir, 'new-migrations');
    await copyMigrations(migrations);
    const file = path.join(dir, 'newer', 'lw.db');
    openDb(file, migrations).close();
    const more = `${await nextNumber()}_more.sql`;
    await writeFile(path.join(migrations, more), 'CREATE TABLE extra (id INTEGER PRIMARY KEY);');
    const db = openDb(file, migrations);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'extra'").get()).toBeTruthy();
    db.close();
    const older = path.join(dir, 'older-migrations');
    await copyMigrations(older);
    expect(() => openDb(file, older)).toThrow(new RegExp(`${more.replace('.', '\\.')}, which this version of latentwatch does not know`));
  });

  it('rolls back a failing migration entirely', async () => {
    const migrations = path.join(dir, 'bad-migrations');
    await copyMigrations(migrations);
    await writeFile(path.join(migrations, `${await nextNumber()}_broken.sql`), 'CREATE TABLE half (id INTEGER); THIS IS NOT SQL;');
    const file = path.join(dir, 'bad', 'lw.db');
    expect(() => openDb(file, migrations)).toThrow();
    const raw = new Database(file);
    expect(raw.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").get()).toBeUndefined();
    expect(raw.prepare('SELECT name FROM schema_migrations ORDER BY name').all()).toEqual((await shipped()).map((name) => ({ name })));
    raw.close();
  });
});

describe('opening where it cannot', () => {
  it('says so when a file stands where the data directory should be', async () => {
    const blocker = path.join(dir, 'blocker');
    await writeFile(blocker, 'a file, not a directory');
    expect(() => openDb(path.join(blocker, 'lw.db'))).toThrow(/blocker \(or a folder above it\) is a file, not a directory/);
  });

  it('says so when the database path is a directory', async () => {
    const file = path.join(dir, 'dir-db', 'lw.db');
    await mkdir(file, { recursive: true });
    expect(() => openDb(file)).toThrow(/that path is a directory, not a database file/);
  });

  it('says so when the data directory is read-only', async (t) => {
    const ro = path.join(dir, 'read-only');
    await mkdir(ro);
    let undo: () => void;
    if (process.getuid?.() === 0) {
      // chmod does not stop root: a read-only bind mount does, where mounting is allowed.
      try {
        execFileSync('mount', ['--bind', ro, ro], { stdio: 'pipe' });
      } catch {
        t.skip();
      }
      execFileSync('mount', ['-o', 'remount,bind,ro', ro], { stdio: 'pipe' });
      undo = () => execFileSync('umount', [ro], { stdio: 'pipe' });
    } else {
      await chmod(ro, 0o555);
      undo = () => execFileSync('chmod', ['755', ro]);
    }
    try {
      expect(() => openDb(path.join(ro, 'lw.db'))).toThrow(/data directory .*read-only is not writable \((EROFS|EACCES)\)/);
    } finally {
      undo();
    }
  });

  it('tells a file replaced at the same path from the one opened', async () => {
    const file = path.join(dir, 'identity', 'lw.db');
    const db = openDb(file);
    const opened = fileIdentity(file);
    expect(fileIdentity(file)).toEqual(opened);
    const other = path.join(dir, 'identity', 'other.db');
    new Database(other).close();
    await rename(other, file);
    expect(fileIdentity(file)).not.toEqual(opened);
    db.close();
  });
});

describe('0002_close_orphaned_alerts', () => {
  it('closes alerts left open by deleted or disabled rules, and only those', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const first = path.join(dir, 'first');
      await mkdir(first);
      await copyFile(path.join(MIGRATIONS_DIR, '0001_initial.sql'), path.join(first, '0001_initial.sql'));
      const file = path.join(dir, 'old.db');
      const old = openDb(file, first);
      const rule = old.prepare(
        `INSERT INTO alert_rules (name, channel, threshold, state, enabled, created_at, updated_at, deleted_at)
         VALUES (?, 'recon', '{"kind":"rate","rate":0.01}', '{"state":"firing","window":[true],"cleanStreak":0,"lastNotifiedAt":1}', ?, 1, 1, ?)`,
      );
      const alert = old.prepare("INSERT INTO alerts (rule_id, state, started_at, updated_at) VALUES (?, ?, 1, 1)");
      const deleted = Number(rule.run('deleted', 0, 5).lastInsertRowid);
      const disabled = Number(rule.run('disabled', 0, null).lastInsertRowid);
      const live = Number(rule.run('live', 1, null).lastInsertRowid);
      alert.run(deleted, 'firing');
      alert.run(disabled, 'pending');
      alert.run(live, 'firing');
      old.close();

      const db = openDb(file);
      const states = db.prepare('SELECT r.name, a.state FROM alerts a JOIN alert_rules r ON r.id = a.rule_id ORDER BY a.id').all();
      expect(states).toEqual([{ name: 'deleted', state: 'resolved' }, { name: 'disabled', state: 'normal' }, { name: 'live', state: 'firing' }]);
      const transitions = db.prepare('SELECT from_state, to_state, notified FROM alert_transitions ORDER BY id').all();
      expect(transitions).toEqual([{ from_state: 'firing', to_state: 'resolved', notified: 0 }, { from_state: 'pending', to_state: 'normal', notified: 0 }]);
      const memory = db.prepare('SELECT name, json_extract(state, \'$.state\') AS s FROM alert_rules ORDER BY id').all();
      expect(memory).toEqual([{ name: 'deleted', s: 'normal' }, { name: 'disabled', s: 'normal' }, { name: 'live', s: 'firing' }]);
      db.close();
    } finally {
      await cleanup();
    }
  });
});

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

      // Up to 0002 only: later migrations move rule state elsewhere (0004).
      await copyFile(path.join(MIGRATIONS_DIR, '0002_close_orphaned_alerts.sql'), path.join(first, '0002_close_orphaned_alerts.sql'));
      const db = openDb(file, first);
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

describe('0004_alert_instances', () => {
  it('moves rule state to per-source instances, names the source of old alerts, and totals stored images per source', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const before = path.join(dir, 'before');
      await mkdir(before);
      for (const f of (await shipped()).filter((f) => f < '0004')) await copyFile(path.join(MIGRATIONS_DIR, f), path.join(before, f));
      const file = path.join(dir, 'old.db');
      const old = openDb(file, before);
      old.prepare("INSERT INTO models (id, dir, created_at, input_size, channels, summary) VALUES ('m', 'd', 0, 28, 1, '{}')").run();
      const image = old.prepare(
        `INSERT INTO images (received_at, source, original_name, sha256, format, width, height, bytes, model_id, kl, recon, elbo,
           p_kl, p_recon, p_elbo, p_combined, pct_kl, pct_recon, pct_elbo, anomaly, original_path, thumbnail_path, reconstruction_path, heatmap_path)
         VALUES (?, ?, 'x.png', 'h', 'png', 1, 1, 1, 'm', 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, ?, 'o', 't', 'r', 'h')`,
      );
      const img = (at: number, source: string, anomaly: 0 | 1) => Number(image.run(at, source, anomaly).lastInsertRowid);
      const a1 = img(100, 'cam-a', 0);
      const b1 = img(200, 'cam-b', 1);
      const a2 = img(300, 'cam-a', 0);
      img(400, 'cam-b', 1);
      const rule = old.prepare(
        `INSERT INTO alert_rules (name, channel, source, threshold, state, created_at, updated_at)
         VALUES (?, 'recon', ?, '{"kind":"absolute","value":1}', ?, 1, 1)`,
      );
      const firingState = '{"state":"firing","window":[],"cleanStreak":2,"lastNotifiedAt":200}';
      const everySource = Number(rule.run('every source', null, firingState).lastInsertRowid);
      const oneSource = Number(rule.run('cam-a only', 'cam-a', '{"state":"pending","window":[true],"cleanStreak":0,"lastNotifiedAt":100}').lastInsertRowid);
      const quiet = Number(rule.run('quiet', null, '{"state":"resolved","window":[false],"cleanStreak":0,"lastNotifiedAt":5}').lastInsertRowid);
      const alert = old.prepare('INSERT INTO alerts (rule_id, state, started_at, updated_at, first_image_id, last_image_id) VALUES (?, ?, 1, 1, ?, ?)');
      const transition = old.prepare("INSERT INTO alert_transitions (alert_id, from_state, to_state, at, image_id, notified) VALUES (?, ?, ?, 1, ?, 1)");
      // Fired by cam-b, then its last change came from a cam-a image: it belongs to cam-b.
      const firing = Number(alert.run(everySource, 'firing', b1, a2).lastInsertRowid);
      transition.run(firing, 'normal', 'firing', b1);
      const pending = Number(alert.run(oneSource, 'pending', a1, a1).lastInsertRowid);
      const orphan = Number(alert.run(quiet, 'firing', null, null).lastInsertRowid); // its images are gone
      const history = Number(alert.run(quiet, 'resolved', null, null).lastInsertRowid);
      old.close();

      const db = openDb(file);
      const sources = db.prepare('SELECT id, source, state FROM alerts ORDER BY id').all();
      expect(sources).toEqual([
        { id: firing, source: 'cam-b', state: 'firing' },
        { id: pending, source: 'cam-a', state: 'pending' },
        { id: orphan, source: null, state: 'resolved' },
        { id: history, source: null, state: 'resolved' },
      ]);
      expect(db.prepare('SELECT from_state, to_state, notified FROM alert_transitions WHERE alert_id = ?').all(orphan)).toEqual([{ from_state: 'firing', to_state: 'resolved', notified: 0 }]);
      const instances = db.prepare('SELECT rule_id, source, state, breaches, clean_streak, last_notified_at FROM alert_instances ORDER BY rule_id').all();
      expect(instances).toEqual([
        { rule_id: everySource, source: 'cam-b', state: 'firing', breaches: '[]', clean_streak: 0, last_notified_at: 200 },
        { rule_id: oneSource, source: 'cam-a', state: 'pending', breaches: '[true]', clean_streak: 0, last_notified_at: 100 },
      ]);
      const columns = (db.prepare('PRAGMA table_info(alert_rules)').all() as { name: string }[]).map((c) => c.name);
      expect(columns).not.toContain('state');

      const stats = () => db.prepare('SELECT source, first_seen, last_seen, images, anomalies FROM source_stats ORDER BY source').all();
      expect(stats()).toEqual([
        { source: 'cam-a', first_seen: 100, last_seen: 300, images: 2, anomalies: 0 },
        { source: 'cam-b', first_seen: 200, last_seen: 400, images: 2, anomalies: 2 },
      ]);
      // The triggers keep the totals as images arrive and retention deletes them.
      const insert = db.prepare(
        `INSERT INTO images (received_at, source, original_name, sha256, format, width, height, bytes, model_id, kl, recon, elbo,
           p_kl, p_recon, p_elbo, p_combined, pct_kl, pct_recon, pct_elbo, anomaly, original_path, thumbnail_path, reconstruction_path, heatmap_path)
         VALUES (?, ?, 'x.png', 'h', 'png', 1, 1, 1, 'm', 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, ?, 'o', 't', 'r', 'h')`,
      );
      insert.run(500, 'cam-c', 1);
      insert.run(600, 'cam-a', 1);
      db.prepare('DELETE FROM images WHERE received_at < 250').run();
      db.prepare("DELETE FROM images WHERE source = 'cam-c'").run();
      expect(stats()).toEqual([
        { source: 'cam-a', first_seen: 300, last_seen: 600, images: 2, anomalies: 1 },
        { source: 'cam-b', first_seen: 400, last_seen: 400, images: 1, anomalies: 1 },
      ]);
      db.prepare("UPDATE images SET source = 'cam-b', anomaly = 0 WHERE received_at = 600").run();
      expect(stats()).toEqual([
        { source: 'cam-a', first_seen: 300, last_seen: 300, images: 1, anomalies: 0 },
        { source: 'cam-b', first_seen: 400, last_seen: 600, images: 2, anomalies: 1 },
      ]);
      db.close();
    } finally {
      await cleanup();
    }
  });
});

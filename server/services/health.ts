// Whether this server can do its job right now: the database can be read and
// written and is still the file at its path, and the data directory can be
// written and has room. Probes are real (a committed row, a temp file with
// bytes in it) because a rolled-back write or a SELECT 1 succeeds on a full
// disk and on a database deleted under the server. Results are cached so that
// health stays cheap; a check that starts failing is logged once.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, type Dirent } from 'node:fs';
import { lstat, open, statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fileIdentity, type Db, type FileIdentity } from '../db/open.js';
import { setSetting } from '../db/settings.js';
import type { Logger } from '../logger.js';

export interface HealthOptions {
  /** How long a probe result is reused. */
  cacheMs: number;
  /** Below this much free space in the data directory, storage is degraded. */
  minFreeBytes: number;
  /** Background probe period once started (so faults are logged even if no one asks). */
  intervalMs: number;
}

export const DEFAULT_HEALTH_OPTIONS: HealthOptions = {
  cacheMs: 5_000,
  minFreeBytes: 64 * 1024 * 1024,
  intervalMs: 30_000,
};

export type HealthCode =
  | 'db_file_missing'
  | 'db_file_replaced'
  | 'db_unreadable'
  | 'db_unwritable'
  | 'not_a_directory'
  | 'storage_unwritable'
  | 'low_disk_space'
  | 'probe_failed';

/** Reasons are fixed phrases plus error codes: the body is unauthenticated, so no paths. */
export interface Check {
  ok: boolean;
  code?: HealthCode;
  reason?: string;
}

export interface StorageCheck extends Check {
  freeBytes: number | null;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  checks: { database: Check; storage: StorageCheck };
}

export interface HealthDeps {
  db: Db;
  dbFile: string;
  /** The database file as opened at start; null when it could not be read. */
  dbIdentity: FileIdentity | null;
  dataDir: string;
  log: Logger;
  now: () => number;
  options?: Partial<HealthOptions>;
}

/** Sub-directories of the data directory the server writes into (see FileStore). */
const STORE_DIRS = ['images', 'derived'];
const PROBE_BYTES = randomBytes(4096);

function errCode(err: unknown): string {
  const e = err as { code?: unknown };
  return typeof e?.code === 'string' ? e.code : 'error';
}

function failing(code: HealthCode, reason: string): Check {
  return { ok: false, code, reason };
}

/** The first problem decides the code; every problem is in the reason. */
function combine(problems: Check[]): Check {
  if (problems.length === 0) return { ok: true };
  return { ok: false, code: problems[0].code, reason: problems.map((p) => p.reason).join('; ') };
}

export class HealthService {
  private readonly o: HealthOptions;
  private cached: { at: number; report: HealthReport } | null = null;
  private inFlight: Promise<HealthReport> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The failing code per check as last logged; absent when it was ok. */
  private readonly logged = new Map<'database' | 'storage', HealthCode>();

  constructor(private readonly d: HealthDeps) {
    this.o = { ...DEFAULT_HEALTH_OPTIONS, ...d.options };
  }

  /** The latest report, probing again when the cached one is older than cacheMs. Never rejects. */
  check(): Promise<HealthReport> {
    const now = this.d.now();
    if (this.cached && now - this.cached.at < this.o.cacheMs && now >= this.cached.at) return Promise.resolve(this.cached.report);
    this.inFlight ??= this.probe()
      .catch((err): HealthReport => {
        const c = failing('probe_failed', `health probe failed (${errCode(err)})`);
        return { status: 'degraded', checks: { database: c, storage: { ...c, freeBytes: null } } };
      })
      .then((report) => {
        this.cached = { at: this.d.now(), report };
        this.inFlight = null;
        return report;
      });
    return this.inFlight;
  }

  start(): void {
    if (this.timer) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async probe(): Promise<HealthReport> {
    const database = this.probeDatabase();
    const storage = await this.probeStorage();
    this.note('database', database);
    this.note('storage', storage);
    return { status: database.ok && storage.ok ? 'ok' : 'degraded', checks: { database, storage } };
  }

  private probeDatabase(): Check {
    const { db } = this.d;
    const problems: Check[] = [];
    // SQLite keeps using the file it opened: a deleted or replaced path means
    // everything written from now on is lost at the next restart.
    let current: FileIdentity | null = null;
    let statError: string | null = null;
    try {
      current = fileIdentity(this.d.dbFile);
    } catch (err) {
      statError = errCode(err);
    }
    if (!current) {
      problems.push(failing('db_file_missing', `the database file was deleted while the server is running (${statError ?? 'ENOENT'}); what is written now will be lost at restart`));
    } else if (!this.d.dbIdentity || current.dev !== this.d.dbIdentity.dev || current.ino !== this.d.dbIdentity.ino) {
      problems.push(failing('db_file_replaced', 'the database file was replaced while the server is running; the server still uses the old one'));
    }
    // What authentication, listings and the event log read first.
    try {
      db.prepare('SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 1').get();
      db.prepare('SELECT COUNT(*) FROM api_keys').get();
      db.prepare("SELECT id FROM api_keys WHERE key_hash = ''").get();
      db.prepare('SELECT MAX(last_used_at) FROM api_keys').get();
      db.prepare("SELECT key_id FROM sessions WHERE token_hash = ''").get();
      db.prepare('SELECT id FROM models WHERE active = 1').get();
      db.prepare('SELECT * FROM images ORDER BY id DESC LIMIT 1').get();
      db.prepare('SELECT * FROM events ORDER BY id DESC LIMIT 1').get();
    } catch (err) {
      problems.push(failing('db_unreadable', `the database cannot be read (${errCode(err)})`));
    }
    // A committed row, not a rolled-back transaction: only a commit has to reach the file.
    try {
      setSetting(db, 'health.probe', String(this.d.now()));
    } catch (err) {
      problems.push(failing('db_unwritable', `the database cannot be written (${errCode(err)})`));
    }
    return combine(problems);
  }

  private async probeStorage(): Promise<StorageCheck> {
    const { dataDir } = this.d;
    const problems: Check[] = [];
    for (const name of ['.', ...STORE_DIRS]) {
      try {
        const st = await lstat(path.join(dataDir, name));
        if (!st.isDirectory()) problems.push(failing('not_a_directory', name === '.' ? 'the data directory is not a directory' : `${name} in the data directory is not a directory`));
      } catch (err) {
        // images/ and derived/ are made on first use; the data directory itself must exist.
        if (name === '.' || errCode(err) !== 'ENOENT') problems.push(failing('not_a_directory', `${name === '.' ? 'the data directory' : name} cannot be read (${errCode(err)})`));
      }
    }
    let freeBytes: number | null = null;
    try {
      const fs = await statfs(dataDir);
      freeBytes = fs.bavail * fs.bsize;
      if (freeBytes < this.o.minFreeBytes) {
        problems.push(failing('low_disk_space', `the data directory has ${freeBytes} bytes free, under the ${this.o.minFreeBytes} needed`));
      }
    } catch (err) {
      problems.push(failing('storage_unwritable', `free space of the data directory cannot be read (${errCode(err)})`));
    }
    // Real bytes, flushed: creating an empty file succeeds on a full disk.
    const probe = path.join(dataDir, `.health-probe-${process.pid}.tmp`);
    try {
      const fh = await open(probe, 'w');
      try {
        await fh.write(PROBE_BYTES);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      problems.push(failing('storage_unwritable', `the data directory cannot be written (${errCode(err)})`));
    } finally {
      await unlink(probe).catch(() => {});
    }
    // Space is the likelier cause when the write failed on a nearly full disk.
    problems.sort((a, b) => Number(b.code === 'low_disk_space') - Number(a.code === 'low_disk_space'));
    return { ...combine(problems), freeBytes };
  }

  /** Logs a check when it starts failing (or fails differently) and when it recovers; not on every probe. */
  private note(check: 'database' | 'storage', c: Check): void {
    const before = this.logged.get(check);
    if (!c.ok && c.code !== before) {
      this.logged.set(check, c.code!);
      this.d.log.error(`health: ${check} check failing`, { check, code: c.code, reason: c.reason });
    } else if (c.ok && before) {
      this.logged.delete(check);
      this.d.log.info(`health: ${check} check ok again`, { check, was: before });
    }
  }
}

/**
 * What a data directory without latentwatch.db still holds from an earlier
 * database (relative names); empty when there is no database to have lost.
 */
export function leftoversWithoutDatabase(dataDir: string, dbFile: string): string[] {
  if (existsSync(dbFile)) return [];
  const found: string[] = [];
  for (const suffix of ['-wal', '-shm']) if (existsSync(dbFile + suffix)) found.push(path.basename(dbFile + suffix));
  for (const name of STORE_DIRS) if (holdsAFile(path.join(dataDir, name), 2)) found.push(`${name}/`);
  return found;
}

function holdsAFile(dir: string, depth: number): boolean {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  return entries.some((e) => e.isFile() || (e.isDirectory() && depth > 1 && holdsAFile(path.join(dir, e.name), depth - 1)));
}

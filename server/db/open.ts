// Opens the SQLite database the way every part expects it: WAL, foreign keys
// on, a busy timeout, and every migration applied.
import Database from 'better-sqlite3';
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { migrate } from './migrate.js';
import { MIGRATIONS_DIR } from '../paths.js';

export type Db = Database.Database;

/** Which file a path names right now: a file deleted or replaced under an open database changes it. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/** Throws (ENOENT, ENOTDIR, …) when nothing is at the path. */
export function fileIdentity(file: string): FileIdentity {
  const st = statSync(file, { bigint: true });
  return { dev: st.dev, ino: st.ino };
}

function code(err: unknown): string {
  return String((err as { code?: unknown })?.code ?? '');
}

/** SQLite only says "unable to open database file"; name the actual cause. */
function explain(err: unknown, file: string): Error {
  const dir = path.dirname(path.resolve(file));
  const why = (text: string) => new Error(`cannot open the database ${file}: ${text} (${(err as Error).message})`, { cause: err });
  try {
    if (!statSync(dir).isDirectory()) return why(`${dir} is not a directory`);
  } catch (e) {
    return why(`${dir} cannot be used as the data directory (${code(e)})`);
  }
  try {
    if (statSync(file).isDirectory()) return why('that path is a directory, not a database file');
  } catch {
    // not there: the directory decides
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    return why(`the data directory ${dir} is not writable (${code(e)}); SQLite needs to create its -wal and -shm files there`);
  }
  return err as Error;
}

export function openDb(file: string, migrationsDir = MIGRATIONS_DIR): Db {
  if (file !== ':memory:') {
    const dir = path.dirname(path.resolve(file));
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      const c = code(err);
      throw new Error(
        c === 'EEXIST' || c === 'ENOTDIR'
          ? `cannot open the database ${file}: ${dir} (or a folder above it) is a file, not a directory`
          : `cannot create the data directory ${dir} (${c || (err as Error).message})`,
        { cause: err },
      );
    }
  }
  let db: Db;
  try {
    db = new Database(file);
  } catch (err) {
    throw file === ':memory:' ? err : explain(err, file);
  }
  try {
    try {
      db.pragma('journal_mode = WAL');
    } catch (err) {
      throw file === ':memory:' ? err : explain(err, file);
    }
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma('synchronous = NORMAL'); // with WAL: durable across process crashes, fast commits
    migrate(db, migrationsDir);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

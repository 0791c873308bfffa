// /api/health tells the truth: a database that cannot be read or written, a
// database file deleted or replaced under the running server, a data
// directory that cannot be written or is nearly full all answer 503
// "degraded" with a machine-readable reason per check. The faults are real
// where this machine allows it (tmpfs and read-only bind mounts need root and
// mount rights; those tests skip elsewhere).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { mkdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../server/config.js';
import { createContext } from '../../server/context.js';
import { createLoggers, type LogSink } from '../../server/logger.js';
import { startServer } from '../../server/main.js';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, multipart, testServer, type Reply, type TestServer } from '../server-helpers.js';
import { spawnServer } from '../server-process.js';

type Record_ = Parameters<LogSink>[0];

function capture(): { records: Record_[]; sink: LogSink } {
  const records: Record_[] = [];
  return { records, sink: (r) => void records.push(r) };
}

const NO_CACHE = { health: { cacheMs: 0 } };

async function health(s: TestServer): Promise<Reply> {
  return s.request('GET', '/api/health', { key: null });
}

/** The body is unauthenticated: no absolute paths, no keys. */
function expectNothingPrivate(s: TestServer, res: Reply): void {
  const text = JSON.stringify(res.json);
  expect(text).not.toContain(s.dir);
  expect(text).not.toContain(s.config.dataDir);
  expect(text).not.toMatch(/\/tmp\/|latentwatch-server-/);
  expect(text).not.toContain(ADMIN_KEY);
}

function dbFile(s: TestServer): string {
  return path.join(s.config.dataDir, 'latentwatch.db');
}

async function png(): Promise<Buffer> {
  return readFile('fixtures/normal/normal_0100.png');
}

async function uploadStatus(s: TestServer): Promise<number> {
  const m = multipart([{ name: 'images', filename: 'a.png', content: await png() }]);
  return (await s.request('POST', '/api/images', { body: m.body, headers: m.headers })).status;
}

// Mounting needs root and CAP_SYS_ADMIN; find out once.
let canMount = false;
let work: string;
let cleanupWork: () => Promise<void>;
const mounted: string[] = [];

function mount(args: string[]): void {
  execFileSync('mount', args, { stdio: 'pipe' });
}
function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
  mounted.splice(mounted.indexOf(dir), 1);
}

beforeAll(async () => {
  ({ dir: work, cleanup: cleanupWork } = await tempDir('latentwatch-health-'));
  const probe = path.join(work, 'mount-probe');
  mkdirSync(probe);
  try {
    mount(['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
    execFileSync('umount', [probe]);
    canMount = true;
  } catch {
    canMount = false;
  }
});
afterAll(async () => {
  for (const m of [...mounted].reverse()) unmount(m);
  await cleanupWork?.();
});

describe('/api/health when all is well', () => {
  it('answers 200 ok with a result per check and the free space', async () => {
    const s = await testServer({ model: false });
    try {
      const res = await health(s);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({
        status: 'ok', database: 'ok',
        checks: { database: { ok: true }, storage: { ok: true, freeBytes: expect.any(Number) } },
      });
      expect(res.json.checks.storage.freeBytes).toBeGreaterThan(0);
      expectNothingPrivate(s, res);
    } finally {
      await s.close();
    }
  });
});

describe('database faults', () => {
  it('a database file deleted under the running server: 503 db_file_missing, logged at error level once', async () => {
    const logs = capture();
    const s = await testServer({ model: false, overrides: { ...NO_CACHE, log: createLoggers(logs.sink, 'debug') } });
    try {
      expect((await health(s)).status).toBe(200);
      await unlink(dbFile(s));
      // SQLite goes on writing to the unlinked file: writes "succeed" and are lost.
      expect((await s.request('POST', '/api/rules', { json: { name: 'lost', channel: 'recon', threshold: { kind: 'absolute', value: 1 } } })).status).toBe(201);
      for (let i = 0; i < 3; i++) {
        const res = await health(s);
        expect(res.status).toBe(503);
        expect(res.json).toMatchObject({ status: 'degraded', database: 'error', checks: { database: { ok: false, code: 'db_file_missing', reason: expect.stringMatching(/deleted/) } } });
        expectNothingPrivate(s, res);
      }
      const errors = logs.records.filter((r) => r.level === 'error' && r.code === 'db_file_missing');
      expect(errors).toHaveLength(1);
      expect(errors[0].msg).toMatch(/database/);
    } finally {
      await s.close();
    }
  });

  it('a database file replaced under the running server: 503 db_file_replaced', async () => {
    const s = await testServer({ model: false, overrides: NO_CACHE });
    try {
      const other = path.join(s.dir, 'other.db');
      new Database(other).exec('CREATE TABLE x (y)');
      await rename(other, dbFile(s));
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json.checks.database).toMatchObject({ ok: false, code: 'db_file_replaced' });
    } finally {
      await s.close();
    }
  });

  it('a corrupted database (the pages every authenticated request reads): 503 db_unreadable', async () => {
    const s = await testServer({ model: false, overrides: NO_CACHE });
    try {
      s.ctx.db.pragma('wal_checkpoint(TRUNCATE)');
      const pageSize = s.ctx.db.pragma('page_size', { simple: true }) as number;
      const roots = (s.ctx.db.prepare("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'api_keys' AND rootpage > 0").all() as { rootpage: number }[]).map((r) => r.rootpage);
      const fd = openSync(dbFile(s), 'r+');
      for (const root of roots) writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (root - 1) * pageSize);
      closeSync(fd);
      // Another connection's commit makes the server's connection drop its page cache.
      const other = new Database(dbFile(s));
      other.prepare("INSERT INTO settings (key, value) VALUES ('poke', '1')").run();
      other.close();
      expect((await s.request('GET', '/api/images')).status).toBe(500); // the symptom health used to hide
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json.checks.database).toMatchObject({ ok: false, code: 'db_unreadable' });
      expectNothingPrivate(s, res);
    } finally {
      await s.close();
    }
  });

  it('a database that cannot be written: 503 db_unwritable, while every GET route still answers', async () => {
    const s = await testServer({ overrides: NO_CACHE });
    try {
      const m = multipart([{ name: 'images', filename: 'a.png', content: await png() }]);
      const uploaded = await s.request('POST', '/api/images', { body: m.body, headers: m.headers });
      expect(uploaded.status).toBe(201);
      const imageId = uploaded.json.results[0].image.id;
      const rule = await s.request('POST', '/api/rules', { json: { name: 'r', channel: 'recon', threshold: { kind: 'absolute', value: 1 } } });
      expect(rule.status).toBe(201);
      const model = s.ctx.registry.activeRow()!.id;
      const signIn = await s.request('POST', '/api/session', { key: null, json: { key: ADMIN_KEY } });
      expect(signIn.status).toBe(201);
      const cookie = String(signIn.headers['set-cookie']).split(';')[0];

      s.ctx.db.pragma('query_only = ON'); // every write now fails, reads do not
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json.checks.database).toMatchObject({ ok: false, code: 'db_unwritable' });

      // The read path writes nothing (the dashboard signs in with a cookie).
      for (const url of [
        '/api/session', '/api/images', `/api/images/${imageId}`, `/api/images/${imageId}/thumbnail`, `/api/images/${imageId}/original`,
        '/api/models', `/api/models/${model}`, '/api/jobs', '/api/rules', `/api/rules/${rule.json.id}`, '/api/silences',
        '/api/alerts', '/api/keys', '/api/audit', '/api/stats', '/api/sources', '/metrics',
      ]) {
        const r = await s.request('GET', url, { key: null, headers: { cookie } });
        expect(r.status, `GET ${url}: ${r.raw.toString().slice(0, 200)}`).toBe(200);
      }
    } finally {
      s.ctx.db.pragma('query_only = OFF');
      await s.close();
    }
  });

  it('health never throws: with the database closed it answers 503, not 500', async () => {
    const s = await testServer({ model: false, overrides: NO_CACHE });
    try {
      s.ctx.db.close();
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json).toMatchObject({ status: 'degraded', activeModel: null, checks: { database: { ok: false } } });
    } finally {
      await s.close();
    }
  });
});

describe('storage faults', () => {
  it('a file where the images directory should be: 503 not_a_directory', async () => {
    const s = await testServer({ overrides: NO_CACHE });
    try {
      await rm(path.join(s.config.dataDir, 'images'), { recursive: true, force: true });
      await writeFile(path.join(s.config.dataDir, 'images'), 'not a directory');
      expect(await uploadStatus(s)).not.toBe(201); // the symptom: uploads cannot be stored
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json.checks.storage).toMatchObject({ ok: false, code: 'not_a_directory', reason: expect.stringMatching(/images/) });
      expectNothingPrivate(s, res);
    } finally {
      await s.close();
    }
  });

  it('free space below the floor: 503 low_disk_space with the free bytes', async () => {
    const s = await testServer({ model: false, overrides: { health: { cacheMs: 0, minFreeBytes: Number.MAX_SAFE_INTEGER } } });
    try {
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json.checks.storage).toMatchObject({ ok: false, code: 'low_disk_space', freeBytes: expect.any(Number) });
      expect(res.json.checks.database.ok).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('a full disk (tmpfs filled up): 503, then ok again once space is freed', async (t) => {
    if (!canMount) t.skip();
    const dataDir = path.join(work, 'full');
    await mkdir(dataDir);
    mount(['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', dataDir]);
    mounted.push(dataDir);
    const logs = capture();
    const s = await testServer({ env: { dataDir }, overrides: { health: { cacheMs: 0, minFreeBytes: 1024 * 1024 }, log: createLoggers(logs.sink, 'debug') } });
    try {
      expect((await health(s)).status).toBe(200);
      const filler = path.join(dataDir, 'filler');
      const fd = openSync(filler, 'w');
      try {
        for (;;) writeSync(fd, Buffer.alloc(64 * 1024, 1));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        closeSync(fd);
      }
      expect(await uploadStatus(s)).not.toBe(201); // the symptom: uploads cannot be stored
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json.checks.storage).toMatchObject({ ok: false, code: 'low_disk_space' });
      expect(res.json.checks.storage.freeBytes).toBeLessThan(1024 * 1024);
      expectNothingPrivate(s, res);

      await unlink(filler);
      const again = await health(s);
      expect(again.status).toBe(200);
      expect(logs.records.filter((r) => r.level === 'error' && r.code === 'low_disk_space')).toHaveLength(1);
      expect(logs.records.some((r) => r.level === 'info' && r.check === 'storage' && /ok again/.test(r.msg))).toBe(true);
    } finally {
      await s.close();
      unmount(dataDir);
    }
  });

  it('a data directory that turned read-only under the running server: 503 storage_unwritable', async (t) => {
    if (!canMount) t.skip();
    const s = await testServer({ model: false, overrides: NO_CACHE });
    const dataDir = s.config.dataDir;
    try {
      mount(['--bind', dataDir, dataDir]);
      mounted.push(dataDir);
      mount(['-o', 'remount,bind,ro', dataDir]);
      const res = await health(s);
      expect(res.status).toBe(503);
      expect(res.json.checks.storage).toMatchObject({ ok: false, code: 'storage_unwritable', reason: expect.stringMatching(/EROFS/) });
      expectNothingPrivate(s, res);
    } finally {
      if (mounted.includes(dataDir)) unmount(dataDir);
      await s.close();
    }
  });
});

describe('probing cost', () => {
  it('caches results for a few seconds, then probes again', async () => {
    let now = Date.now();
    const s = await testServer({ model: false, overrides: { clock: { now: () => now } } });
    try {
      expect((await health(s)).status).toBe(200);
      await unlink(dbFile(s));
      expect((await health(s)).status).toBe(200); // within the cache window
      now += 10_000;
      expect((await health(s)).status).toBe(503);
    } finally {
      await s.close();
    }
  });

  it('a running server notices a deleted database on its own, without anyone asking', async () => {
    const logs = capture();
    const { dir, cleanup } = await tempDir('latentwatch-health-bg-');
    const running = await startServer(
      buildConfig({ port: '0', host: '127.0.0.1', dataDir: path.join(dir, 'data'), modelsDir: path.join(dir, 'models'), adminKey: ADMIN_KEY, backend: 'wasm' }),
      { log: createLoggers(logs.sink, 'debug'), health: { intervalMs: 50 } },
    );
    try {
      await unlink(path.join(dir, 'data', 'latentwatch.db'));
      const deadline = Date.now() + 10_000;
      while (!logs.records.some((r) => r.level === 'error' && r.code === 'db_file_missing')) {
        if (Date.now() > deadline) throw new Error('the deleted database was not noticed');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await running.close();
      await cleanup();
    }
  });
});

describe('the real server process', () => {
  it('answers 503 once its database file is deleted, and says so once on stderr', async () => {
    const { dir, cleanup } = await tempDir('latentwatch-health-proc-');
    const server = await spawnServer({ LATENTWATCH_DATA_DIR: path.join(dir, 'data'), LATENTWATCH_MODELS_DIR: path.join(dir, 'models'), LATENTWATCH_ADMIN_KEY: ADMIN_KEY });
    try {
      await unlink(path.join(dir, 'data', 'latentwatch.db'));
      let res: Response | undefined;
      const deadline = Date.now() + 20_000;
      for (;;) {
        res = await fetch(`${server.url}/api/health`);
        if (res.status === 503 || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(res.status).toBe(503);
      const body = (await res.json()) as any;
      expect(body.checks.database.code).toBe('db_file_missing');
      for (let i = 0; i < 3; i++) expect((await fetch(`${server.url}/api/health`)).status).toBe(503);
      const lines = server.output().split('\n').filter((l) => l.includes('"level":"error"') && l.includes('db_file_missing'));
      expect(lines).toHaveLength(1);
    } finally {
      server.child.kill('SIGKILL');
      await server.exited;
      await cleanup();
    }
  });
});

describe('starting without the database but with its images', () => {
  async function dataDirWithImages(): Promise<{ dataDir: string; modelsDir: string }> {
    const base = path.join(work, `lost-${Math.random().toString(36).slice(2)}`);
    const dataDir = path.join(base, 'data');
    await mkdir(path.join(dataDir, 'images', 'ab'), { recursive: true });
    await writeFile(path.join(dataDir, 'images', 'ab', 'abcdef.png'), await png());
    return { dataDir, modelsDir: path.join(base, 'models') };
  }

  it('refuses to create a fresh, empty database, with an error naming what happened and what to check', async () => {
    const { dataDir, modelsDir } = await dataDirWithImages();
    const logs = capture();
    const config = buildConfig({ dataDir, modelsDir, adminKey: ADMIN_KEY, backend: 'wasm' });
    await expect(createContext(config, { log: createLoggers(logs.sink) })).rejects.toThrow(/latentwatch\.db is missing.*images/s);
    expect(existsSync(path.join(dataDir, 'latentwatch.db'))).toBe(false);
    const error = logs.records.find((r) => r.level === 'error');
    expect(error?.msg).toMatch(/no database file/);
    expect(JSON.stringify(error)).toMatch(/backup/);
  });

  it('starts when told to, still logging the error', async () => {
    const { dataDir, modelsDir } = await dataDirWithImages();
    const logs = capture();
    const config = buildConfig({ dataDir, modelsDir, adminKey: ADMIN_KEY, backend: 'wasm' });
    const ctx = await createContext(config, { log: createLoggers(logs.sink), allowNewDatabase: true });
    await ctx.close();
    expect(logs.records.filter((r) => r.level === 'error' && /no database file/.test(r.msg))).toHaveLength(1);
  });

  it('starts quietly on an empty data directory', async () => {
    const logs = capture();
    const base = path.join(work, 'empty');
    const ctx = await createContext(buildConfig({ dataDir: path.join(base, 'data'), modelsDir: path.join(base, 'models'), adminKey: ADMIN_KEY, backend: 'wasm' }), { log: createLoggers(logs.sink) });
    await ctx.close();
    expect(logs.records.filter((r) => r.level === 'error')).toEqual([]);
  });
});


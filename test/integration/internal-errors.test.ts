// Failures that are the server's, not the client's: a file store that cannot
// write, a database that refuses the commit, a model that is gone or was
// freed. Each must answer 5xx with a generic message (never the client's
// fault, never a path), log its stack, and store nothing half-way. Only
// bad input is 4xx. A model whose folder was removed is named in a 4xx.
import { inject } from 'light-my-request';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../server/config.js';
import { createContext, type Context } from '../../server/context.js';
import { countImages } from '../../server/db/images.js';
import { setActiveModel } from '../../server/db/models.js';
import { createApp } from '../../server/http/app.js';
import { createLoggers, type LogSink } from '../../server/logger.js';
import type { BusEvent } from '../../server/services/event-bus.js';
import { FileStore } from '../../server/services/file-store.js';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, multipart, trainTinyModel } from '../server-helpers.js';

/** A real file store that can be told to fail the way a full or read-only disk does. */
class FaultyFiles extends FileStore {
  fault: NodeJS.ErrnoException | null = null;

  override async put(rel: string, bytes: Uint8Array): Promise<string> {
    if (this.fault) throw this.fault;
    return super.put(rel, bytes);
  }
}

function errno(code: string, message: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}, open '${file}'`), { code, errno: -28, syscall: 'open', path: file });
}

let dir: string;
let cleanup: () => Promise<void>;
let dataDir: string;
let modelsDir: string;
let files: FaultyFiles;
let ctx: Context;
let app: ReturnType<typeof createApp>;
const logs: Parameters<LogSink>[0][] = [];
const broadcast: BusEvent[] = [];
const normal = () => readFile('fixtures/normal/normal_0150.png');

async function call(method: string, url: string, body?: { body: Buffer; headers: Record<string, string> }): Promise<{ status: number; json: any; text: string }> {
  const res = await inject(app as never, { method: method as never, url, headers: { authorization: `Bearer ${ADMIN_KEY}`, ...body?.headers }, payload: body?.body });
  return { status: res.statusCode, json: res.payload ? JSON.parse(res.payload) : undefined, text: res.payload };
}

async function upload(parts: { filename: string; content: Buffer }[]) {
  return call('POST', '/api/images', multipart(parts.map((p) => ({ name: 'images', type: 'image/png', ...p }))));
}

/** The answer says nothing about where the server keeps its files. */
function expectNoPath(text: string): void {
  expect(text).not.toContain(dir);
  expect(text).not.toContain(os.tmpdir());
  expect(text).not.toContain(process.cwd());
}

/** A 5xx with the generic body, and the real cause logged with its stack. */
function expectInternal(res: { status: number; json: any; text: string }, cause: RegExp, status = 500): void {
  expect(res.status, res.text).toBe(status);
  expect(res.json.results, 'no per-file results are claimed').toBeUndefined();
  expectNoPath(res.text);
  const logged = logs.filter((r) => r.level === 'error' && cause.test(JSON.stringify(r)));
  expect(logged.length, `an error log matching ${cause}`).toBeGreaterThan(0);
  expect(JSON.stringify(logged), 'the log carries the stack').toMatch(/\\n\s+at /);
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-internal-'));
  dataDir = path.join(dir, 'data');
  modelsDir = path.join(dir, 'models');
  await trainTinyModel(path.join(modelsDir, 'tiny'));
  const config = buildConfig({ dataDir, modelsDir, adminKey: ADMIN_KEY, backend: 'wasm', datasetsDir: 'fixtures', maxUploadMb: '1', maxUploadFiles: '10' });
  files = new FaultyFiles(dataDir);
  ctx = await createContext(config, { log: createLoggers((r) => logs.push(r)), files });
  ctx.bus.subscribe((e) => broadcast.push(e));
  app = createApp(ctx);
  const warm = await upload([{ filename: 'warm.png', content: await normal() }]);
  expect(warm.status).toBe(201);
}, 120_000);

afterAll(async () => {
  await ctx?.close();
  await cleanup?.();
});

describe('internal failures while scoring uploads', () => {
  it('answers 500 when the disk is full, for one image or a batch, and stores nothing', async () => {
    files.fault = errno('ENOSPC', 'no space left on device', path.join(dataDir, 'images', 'ab', 'x.png.tmp'));
    try {
      const before = countImages(ctx.db);
      const events = broadcast.length;
      const one = await upload([{ filename: 'a.png', content: await normal() }]);
      expectInternal(one, /ENOSPC/);
      expect(one.json.error).toEqual({ code: 'internal', message: expect.any(String) });
      expect(one.json.error.message).not.toMatch(/ENOSPC|space|a\.png/);
      // Good and bad input together: the server failed, so the whole request fails.
      const mixed = await upload([{ filename: 'b.png', content: await normal() }, { filename: 'c.txt', content: Buffer.from('not an image') }]);
      expectInternal(mixed, /ENOSPC/);
      expect(countImages(ctx.db)).toBe(before);
      expect(broadcast.length).toBe(events);
    } finally {
      files.fault = null;
    }
  });

  it('answers 500 when a storage folder is not writable (a file where a folder should be)', async () => {
    const derived = path.join(dataDir, 'derived');
    await rm(derived, { recursive: true, force: true });
    await writeFile(derived, 'in the way');
    try {
      const before = countImages(ctx.db);
      const res = await upload([{ filename: 'd.png', content: await normal() }]);
      expectInternal(res, /ENOTDIR|EEXIST/);
      expect(countImages(ctx.db)).toBe(before);
    } finally {
      await rm(derived, { force: true });
      await mkdir(derived);
    }
  });

  it('answers 500 when the database refuses the commit, leaving no image and no event', async () => {
    ctx.db.exec("CREATE TRIGGER refuse BEFORE INSERT ON images BEGIN SELECT RAISE(ABORT, 'database disk image is malformed'); END");
    try {
      const before = countImages(ctx.db);
      const events = broadcast.length;
      const res = await upload([{ filename: 'e.png', content: await normal() }, { filename: 'f.png', content: await readFile('fixtures/anomalous/crack_00.png') }]);
      expectInternal(res, /malformed/);
      expect(countImages(ctx.db)).toBe(before);
      expect(broadcast.length).toBe(events);
    } finally {
      ctx.db.exec('DROP TRIGGER refuse');
    }
  });

  it('still answers bad input with 4xx and scores again once the fault is gone', async () => {
    const bad = await upload([{ filename: 'g.txt', content: Buffer.from('hello') }]);
    expect(bad.status).toBe(415);
    expect(bad.json.error.code).toBe('unsupported_image');
    const mixed = await upload([{ filename: 'h.png', content: await normal() }, { filename: 'i.png', content: Buffer.alloc(0) }]);
    expect(mixed.status).toBe(201);
    expect(mixed.json.results.map((r: any) => r.error?.code ?? 'ok')).toEqual(['ok', 'empty_file']);
    const stored = await call('GET', `/api/images/${mixed.json.results[0].image.id}`);
    expect(stored.status).toBe(200);
  });
});

describe('a model whose folder was removed', () => {
  const GONE = 'gone-model';

  beforeAll(async () => {
    const gone = path.join(modelsDir, 'gone');
    await cp(path.join(modelsDir, 'tiny'), gone, { recursive: true });
    const meta = JSON.parse(await readFile(path.join(gone, 'meta.json'), 'utf8'));
    await writeFile(path.join(gone, 'meta.json'), JSON.stringify({ ...meta, id: GONE }));
    await ctx.registry.register(gone);
    await rm(gone, { recursive: true });
  });

  it('is named in a 4xx by GET /api/models/:id, without a path', async () => {
    const res = await call('GET', `/api/models/${GONE}`);
    expect(res.status, res.text).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.json.error.message).toContain(GONE);
    expectNoPath(res.text);
  });

  it('cannot be activated: a 4xx naming it, and the active model stays', async () => {
    const res = await call('POST', `/api/models/${GONE}/activate`);
    expect(res.status, res.text).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.json.error.message).toContain(GONE);
    expectNoPath(res.text);
    expect((await call('GET', '/api/health')).json.activeModel).toBe('tiny-model');
  });

  it('answers uploads with 503 when it is the active model (as after a restart), then recovers', async () => {
    setActiveModel(ctx.db, GONE);
    try {
      const before = countImages(ctx.db);
      const res = await upload([{ filename: 'j.png', content: await normal() }]);
      expect(res.status, res.text).toBe(503);
      expect(res.json.error.code).toBe('unavailable');
      expectNoPath(res.text);
      expect(countImages(ctx.db)).toBe(before);
    } finally {
      setActiveModel(ctx.db, 'tiny-model');
    }
    expect((await upload([{ filename: 'k.png', content: await normal() }])).status).toBe(201);
  });
});

describe('a model freed under the scoring path', () => {
  // Last: it leaves this server without a usable model.
  it('answers 500, not a 422 blaming the image', async () => {
    const active = await ctx.registry.active();
    active!.detector.vae.model.dispose();
    const before = countImages(ctx.db);
    const res = await upload([{ filename: 'l.png', content: await normal() }]);
    expectInternal(res, /disposed/);
    expect(countImages(ctx.db)).toBe(before);
  });
});

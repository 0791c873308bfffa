// Helpers for server tests: a real context (SQLite in a temp dir, a small
// model trained on the fixtures), the app called in-process, multipart bodies.
import { inject } from 'light-my-request';
import { cp, readdir, access } from 'node:fs/promises';
import path from 'node:path';
import { buildConfig, type Config } from '../server/config.js';
import { createContext, type Context, type ContextOverrides } from '../server/context.js';
import { createApp } from '../server/http/app.js';
import { silentLoggers } from '../server/logger.js';
import { createApiKey } from '../server/services/auth.js';
import { DEFAULT_TRAIN_OPTIONS } from '../server/services/fit.js';
import { trainModel } from '../server/services/train-model.js';
import { tempDir } from './helpers.js';

export const ADMIN_KEY = 'lw_test_admin_key_0123456789';

/** Where test/global-setup.ts leaves the shared small model for this run. */
export const TINY_MODEL_CACHE = path.resolve('test/.tmp/tiny-model');

/** A real but small model (28x28, 10 epochs) trained on 200 normal fixtures: a few seconds. */
export async function trainTinyModelInto(outDir: string, epochs = 10): Promise<void> {
  const all = (await readdir('fixtures/normal')).sort().map((f) => path.join('fixtures/normal', f));
  await trainModel({
    files: all.slice(0, 200), source: 'fixtures/normal (first 200)', outDir, backend: 'wasm',
    options: { ...DEFAULT_TRAIN_OPTIONS, size: 28, latent: 8, baseFilters: 8, epochs, batchSize: 16 },
  });
}

/** Puts the small model into outDir: a copy of this run's shared one, trained here if there is none. */
export async function trainTinyModel(outDir: string): Promise<void> {
  try {
    await access(`${TINY_MODEL_CACHE}/meta.json`);
  } catch {
    await trainTinyModelInto(TINY_MODEL_CACHE);
  }
  await cp(TINY_MODEL_CACHE, outDir, { recursive: true });
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: any;
  raw: Buffer;
}

export interface TestServer {
  ctx: Context;
  dir: string;
  config: Config;
  keys: { admin: string; operator: string; viewer: string };
  request(method: string, url: string, o?: { key?: string | null; json?: unknown; body?: Buffer | string; headers?: Record<string, string> }): Promise<Reply>;
  close(): Promise<void>;
}

/**
 * A server on a fresh data directory. `model: false` starts without the tiny
 * model; `models` copies trained model directories in (the newest is active).
 */
export async function testServer(o: { model?: boolean; models?: { name: string; from: string }[]; env?: Record<string, string>; overrides?: ContextOverrides } = {}): Promise<TestServer> {
  const { dir, cleanup } = await tempDir('latentwatch-server-');
  const modelsDir = path.join(dir, 'models');
  if (o.model !== false) await trainTinyModel(path.join(modelsDir, 'tiny'));
  for (const m of o.models ?? []) await cp(m.from, path.join(modelsDir, m.name), { recursive: true });
  const config = buildConfig({
    dataDir: path.join(dir, 'data'), modelsDir, adminKey: ADMIN_KEY, backend: 'wasm',
    datasetsDir: 'fixtures', maxUploadMb: '1', maxUploadFiles: '10', ...o.env,
  });
  const ctx = await createContext(config, { log: silentLoggers(), ...o.overrides });
  const now = ctx.clock.now();
  const keys = {
    admin: ADMIN_KEY,
    operator: createApiKey(ctx.db, 'test operator', 'operator', now).key,
    viewer: createApiKey(ctx.db, 'test viewer', 'viewer', now).key,
  };
  const app = createApp(ctx);
  return {
    ctx, dir, config, keys,
    async request(method, url, r = {}) {
      const headers: Record<string, string> = { ...r.headers };
      const key = r.key === undefined ? keys.admin : r.key;
      if (key !== null) headers.authorization = `Bearer ${key}`;
      let payload = r.body;
      if (r.json !== undefined) {
        headers['content-type'] = 'application/json';
        payload = JSON.stringify(r.json);
      }
      const res = await inject(app as never, { method: method as never, url, headers, payload });
      const raw = res.rawPayload;
      let json: unknown = undefined;
      if (String(res.headers['content-type'] ?? '').includes('json') && raw.length) json = JSON.parse(raw.toString('utf8'));
      return { status: res.statusCode, headers: res.headers as Reply['headers'], json, raw };
    },
    async close() {
      await ctx.close();
      await cleanup();
    },
  };
}

export interface Part {
  name: string;
  filename?: string;
  content: Buffer | string;
  type?: string;
}

export function multipart(parts: Part[]): { body: Buffer; headers: Record<string, string> } {
  const boundary = `----latentwatch${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = `form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`;
    const type = p.filename !== undefined ? `\r\nContent-Type: ${p.type ?? 'application/octet-stream'}` : '';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}${type}\r\n\r\n`), Buffer.from(p.content), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

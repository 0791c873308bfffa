// Model activation and restarts under load: uploads keep flowing while an
// admin switches between two models 20 times and the server is re-created
// 3 times over the same data directory (with parallel uploads fired the
// moment it is back). No upload may fail, every acknowledged image must be
// stored, and the process must hold no more tensors afterwards than with one
// model loaded at the start.
import * as tf from '@tensorflow/tfjs';
import { inject } from 'light-my-request';
import { readFile, writeFile, cp } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, type Config } from '../../server/config.js';
import { createContext, type Context } from '../../server/context.js';
import { countImages } from '../../server/db/images.js';
import { createApp } from '../../server/http/app.js';
import { silentLoggers } from '../../server/logger.js';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, multipart, trainTinyModel } from '../server-helpers.js';

const A = 'tiny-model';
const B = 'tiny-model-b';
const FIXTURES = Array.from({ length: 16 }, (_, i) => `fixtures/normal/normal_${String(380 + i).padStart(4, '0')}.png`);

let dir: string;
let cleanup: () => Promise<void>;
let config: Config;
let ctx: Context;
let app: ReturnType<typeof createApp>;
const bytes: Buffer[] = [];

async function start(): Promise<void> {
  ctx = await createContext(config, { log: silentLoggers() });
  app = createApp(ctx);
}

async function call(method: string, url: string, body?: { body: Buffer; headers: Record<string, string> }): Promise<{ status: number; json: any }> {
  const res = await inject(app as never, {
    method: method as never, url,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, ...body?.headers },
    payload: body?.body,
  });
  return { status: res.statusCode, json: res.payload ? JSON.parse(res.payload) : undefined };
}

// Every upload's outcome, kept for the assertions.
const failures: { status: number; json: unknown }[] = [];
let acked = 0;
const modelsPerRequest: string[][] = [];
let seq = 0;

async function upload(): Promise<void> {
  const n = 1 + (seq % 3);
  const files = Array.from({ length: n }, (_, k) => ({ name: 'images', filename: `f${seq}-${k}.png`, type: 'image/png', content: bytes[(seq + k) % bytes.length] }));
  seq++;
  const res = await call('POST', '/api/images', multipart(files));
  if (res.status !== 201 || res.json.results.some((r: any) => !r.image)) {
    failures.push({ status: res.status, json: res.json });
    return;
  }
  acked += res.json.results.length;
  modelsPerRequest.push(res.json.results.map((r: any) => r.image.modelId));
}

/** Concurrent clients uploading until stopped. */
function load(clients: number): { stop(): Promise<void> } {
  let stopped = false;
  const runs = Array.from({ length: clients }, async () => {
    while (!stopped) await upload();
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(runs);
    },
  };
}

async function ackedAtLeast(n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (acked < n && failures.length === 0) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} acknowledged images (have ${acked})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-switch-'));
  const modelsDir = path.join(dir, 'models');
  await trainTinyModel(path.join(modelsDir, 'tiny'));
  // A second model: the same weights under another id (the registry keys on meta.id).
  await cp(path.join(modelsDir, 'tiny'), path.join(modelsDir, 'tiny-b'), { recursive: true });
  const metaFile = path.join(modelsDir, 'tiny-b', 'meta.json');
  const meta = JSON.parse(await readFile(metaFile, 'utf8'));
  await writeFile(metaFile, JSON.stringify({ ...meta, id: B, createdAt: '2000-01-01T00:00:00.000Z' }));
  config = buildConfig({
    dataDir: path.join(dir, 'data'), modelsDir, adminKey: ADMIN_KEY, backend: 'wasm',
    datasetsDir: 'fixtures', maxUploadMb: '1', maxUploadFiles: '10',
  });
  for (const f of FIXTURES) bytes.push(await readFile(f));
  await start();
}, 120_000);

afterAll(async () => {
  await ctx?.close();
  await cleanup?.();
});

describe('activations and restarts under load', () => {
  it('loses no upload through 20 activations and 3 restarts, and ends with as many tensors as it started', async () => {
    expect((await call('GET', '/api/health')).json.activeModel).toBe(A);
    await upload();
    expect(failures).toEqual([]);
    const baseline = tf.memory().numTensors;

    let activations = 0;
    for (let round = 0; round < 4; round++) {
      if (round > 0) {
        // Restart: a fresh context over the same data directory, then
        // parallel uploads the moment it is up (nothing is loaded yet).
        await ctx.close();
        await start();
        await Promise.all(Array.from({ length: 8 }, () => upload()));
        expect(failures).toEqual([]);
      }
      const clients = load(4);
      try {
        for (let i = 0; i < 5; i++) {
          const target = activations % 2 === 0 ? B : A;
          const res = await call('POST', `/api/models/${target}/activate`);
          expect(res.status, JSON.stringify(res.json)).toBe(200);
          activations++;
          await ackedAtLeast(acked + 4); // let uploads overlap the switch and the old model's release
        }
      } finally {
        await clients.stop();
      }
      expect(failures).toEqual([]);
    }

    expect(activations).toBe(20);
    expect(failures).toEqual([]);
    expect(acked).toBeGreaterThan(100);
    expect(countImages(ctx.db)).toBe(acked);
    // A request is scored by one model, whatever switches happen meanwhile.
    for (const ids of modelsPerRequest) expect(new Set(ids).size).toBe(1);
    const used = new Set(modelsPerRequest.flat());
    expect([...used].sort()).toEqual([A, B]);
    // Only the active model is left in memory.
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

// Training jobs through the API: a real worker thread trains a small model,
// progress is stored and broadcast, jobs queue, cancel, and a crashing worker
// fails its job without taking the server down. Needs `npm run build` (the
// worker runs compiled JavaScript); `npm test` builds first.
import { copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsAfter } from '../../server/db/events.js';
import { createLoggers } from '../../server/logger.js';
import { multipart, testServer, type TestServer } from '../server-helpers.js';
import { tempDir } from '../helpers.js';

let s: TestServer;
let datasets: string;
let cleanup: () => Promise<void>;
const SMALL = { size: 28, latent: 4, filters: 8, epochs: 2, batch: 16 };

/** Training upload folders left under the data directory, once the job's cleanup has had its moment. */
async function leftoverUploads(server: TestServer): Promise<string[]> {
  const uploads = path.join(server.config.dataDir, 'uploads');
  const left = async () => (await readdir(uploads).catch(() => [] as string[])).filter((n) => n.startsWith('train-'));
  for (let i = 0; i < 50 && (await left()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  return left();
}

async function waitForJob(server: TestServer, id: number, timeoutMs = 120_000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await server.request('GET', `/api/jobs/${id}`, { key: server.keys.viewer });
    if (['succeeded', 'failed', 'cancelled'].includes(res.json.status)) return res.json;
    if (Date.now() > until) throw new Error(`job ${id} still ${res.json.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  ({ dir: datasets, cleanup } = await tempDir('latentwatch-datasets-'));
  await mkdir(path.join(datasets, 'line-a'));
  for (const f of (await readdir('fixtures/normal')).slice(0, 60)) await copyFile(path.join('fixtures/normal', f), path.join(datasets, 'line-a', f));
  await symlink('/etc', path.join(datasets, 'escape'));
  s = await testServer({ env: { datasetsDir: datasets } });
}, 120_000);
afterAll(async () => {
  await s.close();
  await cleanup();
});

describe('POST /api/models/train', () => {
  it('trains from a dataset directory in a worker, reporting progress per epoch', async () => {
    const res = await s.request('POST', '/api/models/train', { json: { directory: 'line-a', ...SMALL } });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ status: expect.stringMatching(/queued|running/), source: 'datasets/line-a', options: { size: 28, latent: 4, epochs: 2 } });
    const job = await waitForJob(s, res.json.id);
    expect(job.status).toBe('succeeded');
    expect(job.curves.map((c: any) => c.epoch)).toEqual([1, 2]);
    expect(job.curves[0]).toMatchObject({ loss: expect.any(Number), valLoss: expect.any(Number), kl: expect.any(Number) });
    const models = await s.request('GET', '/api/models', { key: s.keys.viewer });
    const trained = models.json.models.find((m: any) => m.id === job.modelId);
    expect(trained).toMatchObject({ active: false, input: { size: 28, channels: 1 }, dataset: { images: 60 } });
    const events = eventsAfter(s.ctx.db, 0, 10_000).filter((e) => e.type === 'training.progress' || e.type === 'training.finished');
    const epochEvents = events.map((e) => JSON.parse(e.payload)).filter((p) => p.type === 'epoch' && p.jobId === job.id);
    expect(epochEvents.map((p) => p.epoch)).toEqual([1, 2]);
    expect(events[events.length - 1].type).toBe('training.finished');

    const detail = await s.request('GET', `/api/models/${job.modelId}`);
    expect(detail.json.training.epochs).toHaveLength(2);
    expect(detail.json.calibrationScores.recon.length).toBe(detail.json.calibration.n);
    const activated = await s.request('POST', `/api/models/${job.modelId}/activate`);
    expect(activated.status).toBe(200);
    expect((await s.request('GET', '/api/health', { key: null })).json.activeModel).toBe(job.modelId);
    expect((await s.request('POST', '/api/models/tiny-model/activate')).status).toBe(200);
  });

  it('trains from uploaded images', async () => {
    const files = (await readdir('fixtures/normal')).slice(100, 140);
    const parts = await Promise.all(files.map(async (f) => ({ name: 'images', filename: f, content: await readFile(path.join('fixtures/normal', f)) })));
    const m = multipart([...parts, ...Object.entries(SMALL).map(([name, v]) => ({ name, content: String(v) }))]);
    const res = await s.request('POST', '/api/models/train', { body: m.body, headers: m.headers });
    expect(res.status).toBe(202);
    expect(res.json.source).toBe('upload of 40 images');
    // Streamed to disk, not held in memory, and deleted once the job has ended.
    const job = await waitForJob(s, res.json.id);
    expect(job.status).toBe('succeeded');
    expect(await leftoverUploads(s)).toEqual([]);
  });

  it('chooses channels and tiling from the images unless told, and records the choice on the job', async () => {
    // 64x64 grey fixtures: whole images, one channel. Each job is cancelled at once: only its options matter here.
    const chosen = async (extra: Record<string, unknown>) => {
      const res = await s.request('POST', '/api/models/train', { json: { directory: 'line-a', ...SMALL, ...extra } });
      expect(res.status).toBe(202);
      await s.request('POST', `/api/jobs/${res.json.id}/cancel`);
      await waitForJob(s, res.json.id);
      return res.json.options;
    };
    expect(await chosen({})).toMatchObject({ channels: 1, resolution: null, validationFraction: 0.2 });
    expect(await chosen({ resolution: 'auto', channels: 'auto' })).toMatchObject({ channels: 1, resolution: null });
    expect(await chosen({ resolution: 96, channels: 3, calibrationFraction: 0.3 })).toMatchObject({ channels: 3, resolution: 96, validationFraction: 0.3 });
    expect(await chosen({ resolution: 'whole' })).toMatchObject({ resolution: null });
  });

  it('queues a second job behind the first and can cancel either', async () => {
    const long = await s.request('POST', '/api/models/train', { json: { directory: 'line-a', ...SMALL, epochs: 500, patience: 1000 } });
    const queued = await s.request('POST', '/api/models/train', { json: { directory: 'line-a', ...SMALL } });
    expect((await s.request('GET', `/api/jobs/${queued.json.id}`)).json.status).toBe('queued');
    const cancelledQueued = await s.request('POST', `/api/jobs/${queued.json.id}/cancel`);
    expect(cancelledQueued.json.status).toBe('cancelled');
    // Wait until the long job has really started, then cancel it mid-run.
    for (let i = 0; i < 600 && !(await s.request('GET', `/api/jobs/${long.json.id}`)).json.progress; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await s.request('POST', `/api/jobs/${long.json.id}/cancel`)).status).toBe(200);
    const job = await waitForJob(s, long.json.id);
    expect(job.status).toBe('cancelled');
    expect(job.error).toBeNull();
    expect((await s.request('POST', `/api/jobs/${long.json.id}/cancel`)).status).toBe(409);
  });

  it('refuses directories outside the datasets directory, however they are spelled', async () => {
    for (const directory of ['../', '../../etc', '/etc', 'line-a/../../', 'escape']) {
      const res = await s.request('POST', '/api/models/train', { json: { directory, ...SMALL } });
      expect(res.status, directory).toBe(400);
      expect(res.json.error.message).toMatch(/outside the datasets directory/);
    }
    const missing = await s.request('POST', '/api/models/train', { json: { directory: 'no-such-line', ...SMALL } });
    expect(missing.status).toBe(404);
  });

  it('refuses bad hyper-parameters with 400', async () => {
    for (const [k, v, msg] of [
      ['size', 30, /size must be an integer from 28 to 128/], ['epochs', 0, /epochs must be an integer/], ['channels', 2, /channels must be 1 or 3/],
      ['beta', 'lots', /beta must be a number/], ['resolution', 20, /resolution must be an integer from the tile size \(28\)/],
      ['resolution', 'big', /resolution must be an integer/], ['calibrationFraction', 0.9, /calibrationFraction must be from 0.05 to 0.5/],
    ] as const) {
      const res = await s.request('POST', '/api/models/train', { json: { directory: 'line-a', ...SMALL, [k]: v } });
      expect(res.status, k).toBe(400);
      expect(res.json.error.message).toMatch(msg);
    }
  });
});

describe('a crashing training worker', () => {
  it('fails its job with the error and leaves the server up', async () => {
    const { dir, cleanup: done } = await tempDir();
    const workerFile = path.join(dir, 'crash.mjs');
    await writeFile(workerFile, "throw new Error('out of memory (simulated)');\n");
    const crashy = await testServer({ env: { datasetsDir: datasets }, overrides: { workerFile } });
    try {
      const res = await crashy.request('POST', '/api/models/train', { json: { directory: 'line-a', ...SMALL } });
      const job = await waitForJob(crashy, res.json.id);
      expect(job.status).toBe('failed');
      expect(job.error).toMatch(/training worker crashed: out of memory \(simulated\)/);
      expect((await crashy.request('GET', '/api/health', { key: null })).json.status).toBe('ok');
    } finally {
      await crashy.close();
      await done();
    }
  });
});

describe('a training job that fails inside the server', () => {
  it('shows a generic error on the job and logs the cause with its stack', async () => {
    const { dir, cleanup: done } = await tempDir();
    // The models directory sits under a regular file: saving the model fails with ENOTDIR.
    await writeFile(path.join(dir, 'not-a-dir'), '');
    const records: { level: string; msg: string; error?: unknown }[] = [];
    const broken = await testServer({
      model: false,
      env: { datasetsDir: datasets, modelsDir: path.join(dir, 'not-a-dir', 'models') },
      overrides: { log: createLoggers((r) => records.push(r), 'debug') },
    });
    try {
      const res = await broken.request('POST', '/api/models/train', { json: { directory: 'line-a', ...SMALL } });
      const job = await waitForJob(broken, res.json.id);
      expect(job.status).toBe('failed');
      expect(job.error).toBe('training failed with an internal error (see the server log)');
      const logged = records.find((r) => r.level === 'error' && r.msg === 'training job failed with an internal error');
      expect(String(logged?.error)).toMatch(/ENOTDIR/);
    } finally {
      await broken.close();
      await done();
    }
  });
});

describe('POST /api/models/:id/recalibrate', () => {
  it('makes a new version from stored images in the worker, with the same weights and its lineage', async () => {
    const files = (await readdir('fixtures/normal')).sort().slice(300, 360);
    for (let i = 0; i < files.length; i += 10) {
      const m = multipart(await Promise.all(files.slice(i, i + 10).map(async (f) => ({ name: 'images', filename: f, content: await readFile(path.join('fixtures/normal', f)) }))));
      expect((await s.request('POST', '/api/images', { body: m.body, headers: m.headers })).status).toBe(201);
    }
    expect((await s.request('POST', '/api/models/tiny-model/recalibrate', { json: {}, key: s.keys.operator })).status).toBe(403);
    const res = await s.request('POST', '/api/models/tiny-model/recalibrate', { json: { limit: 60 } });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ kind: 'recalibrate', parentModel: 'tiny-model' });
    expect(res.json.source).toMatch(/recalibration of tiny-model on 60 stored images/);
    const job = await waitForJob(s, res.json.id);
    expect(job.status).toBe('succeeded');
    const model = await s.request('GET', `/api/models/${job.modelId}`);
    expect(model.status).toBe(200);
    expect(model.json.lineage).toMatchObject({ parent: 'tiny-model', kind: 'recalibration', images: 60 });
    expect(model.json.active).toBe(false);
    const parentDir = s.ctx.registry.get('tiny-model').dir;
    expect(await readFile(path.join(s.ctx.registry.get(job.modelId).dir, 'weights.bin'))).toEqual(await readFile(path.join(parentDir, 'weights.bin')));
    expect(await leftoverUploads(s)).toEqual([]);
  });

  it('refuses a selection with too few stored images, and an unknown model', async () => {
    const few = await s.request('POST', '/api/models/tiny-model/recalibrate', { json: { source: 'no-such-camera' } });
    expect(few.status).toBe(422);
    expect(few.json.error.message).toMatch(/need at least 50 distinct stored images/);
    expect((await s.request('POST', '/api/models/nope/recalibrate', { json: {} })).status).toBe(404);
  });
});

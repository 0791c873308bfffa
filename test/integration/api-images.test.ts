// POST/GET /api/images through the real app (in-process), real SQLite and a
// real small model; bad input of every kind gets a clear 4xx and stores nothing.
import { readFile } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countImages } from '../../server/db/images.js';
import { multipart, testServer, type TestServer } from '../server-helpers.js';

let s: TestServer;
const normal = () => readFile('fixtures/normal/normal_0150.png');
const anomalous = () => readFile('fixtures/anomalous/wrong_part_00.png');

async function upload(files: { filename: string; content: Buffer }[], source?: string, key?: string) {
  const m = multipart([...files.map((f) => ({ name: 'images', type: 'image/png', ...f })), ...(source ? [{ name: 'source', content: source }] : [])]);
  return s.request('POST', '/api/images', { body: m.body, headers: m.headers, key });
}

beforeAll(async () => {
  s = await testServer();
}, 120_000);
afterAll(() => s.close());

describe('POST /api/images', () => {
  it('scores every image, stores it and answers ids, scores, p-values and verdicts', async () => {
    const res = await upload([{ filename: 'a.png', content: await normal() }, { filename: 'b.png', content: await anomalous() }], 'line-1', s.keys.operator);
    expect(res.status).toBe(201);
    expect(res.json.results).toHaveLength(2);
    const [a, b] = res.json.results;
    expect(a.name).toBe('a.png');
    expect(a.image).toMatchObject({ source: 'line-1', originalName: 'a.png', modelId: 'tiny-model', format: 'png', width: 64, height: 64 });
    for (const k of ['kl', 'recon', 'elbo']) expect(typeof a.image.scores[k]).toBe('number');
    for (const k of ['kl', 'recon', 'elbo', 'combined']) expect(a.image.p[k]).toBeGreaterThan(0);
    expect(b.image.scores.recon).toBeGreaterThan(a.image.scores.recon);
    const stored = await s.request('GET', `/api/images/${b.image.id}`, { key: s.keys.viewer });
    expect(stored.status).toBe(200);
    expect(stored.json).toEqual(b.image);
  });

  it('serves the original, thumbnail, reconstruction and heatmap', async () => {
    const res = await upload([{ filename: 'c.png', content: await normal() }]);
    const { id } = res.json.results[0].image;
    for (const kind of ['original', 'thumbnail', 'reconstruction', 'heatmap']) {
      const f = await s.request('GET', `/api/images/${id}/${kind}`, { key: s.keys.viewer });
      expect(f.status).toBe(200);
      expect(f.headers['content-type']).toBe('image/png');
      const meta = await sharp(f.raw).metadata();
      expect(meta.width).toBeGreaterThan(0);
    }
    expect((await s.request('GET', `/api/images/${id}/secrets`)).status).toBe(404);
  });

  it('flags a covered lens (a uniform grey frame) as anomalous', async () => {
    const grey = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toBuffer();
    const res = await upload([{ filename: 'covered.png', content: grey }, { filename: 'fine.png', content: await normal() }]);
    expect(res.status).toBe(201);
    expect(res.json.results.map((r: any) => r.image.anomaly)).toEqual([true, false]);
  });

  it('draws a clean image dark and a defect bright on the heatmap scale fixed at calibration', async () => {
    const res = await upload([{ filename: 'clean.png', content: await normal() }, { filename: 'bad.png', content: await anomalous() }]);
    const brightness = async (id: number) => {
      const png = (await s.request('GET', `/api/images/${id}/heatmap`, { key: s.keys.viewer })).raw;
      const { data } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
      return { mean: data.reduce((a, b) => a + b, 0) / data.length, max: Math.max(...data) };
    };
    const [clean, bad] = [await brightness(res.json.results[0].image.id), await brightness(res.json.results[1].image.id)];
    expect(clean.mean).toBeLessThan(40);
    expect(bad.max).toBeGreaterThan(150);
    expect(bad.mean).toBeGreaterThan(clean.mean);
  });

  it('scores the good images of a batch and reports each bad one by name', async () => {
    const before = countImages(s.ctx.db);
    const res = await upload([
      { filename: 'good.png', content: await normal() },
      { filename: 'notes.txt', content: Buffer.from('not an image') },
      { filename: 'half.png', content: (await normal()).subarray(0, 300) },
      { filename: 'empty.png', content: Buffer.alloc(0) },
    ]);
    expect(res.status).toBe(201);
    expect(res.json.results.map((r: any) => r.error?.code ?? 'ok')).toEqual(['ok', 'unsupported_image', 'corrupt_image', 'empty_file']);
    expect(res.json.results[1].error.message).toMatch(/notes\.txt/);
    expect(countImages(s.ctx.db)).toBe(before + 1);
  });

  it('answers 415 for a single non-image and 422 for a single corrupt image, storing nothing', async () => {
    const before = countImages(s.ctx.db);
    const text = await upload([{ filename: 'x.txt', content: Buffer.from('hello') }]);
    expect(text.status).toBe(415);
    expect(text.json.error).toMatchObject({ code: 'unsupported_image', message: expect.stringContaining('x.txt') });
    const corrupt = await upload([{ filename: 'y.png', content: (await normal()).subarray(0, 100) }]);
    expect(corrupt.status).toBe(422);
    expect(countImages(s.ctx.db)).toBe(before);
  });

  it('refuses huge pixel dimensions (a decompression bomb) with 413', async () => {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(40000, 0);
    ihdr.writeUInt32BE(40000, 4);
    ihdr[8] = 8;
    const chunk = (type: string, data: Buffer) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(data.length);
      return Buffer.concat([len, Buffer.from(type), data, Buffer.alloc(4)]); // CRC ignored by the header check
    };
    const bomb = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(100))), chunk('IEND', Buffer.alloc(0))]);
    const res = await upload([{ filename: 'bomb.png', content: bomb }]);
    expect([413, 422]).toContain(res.status);
    expect(res.json.error.message).toMatch(/bomb\.png/);
  });

  it('refuses an oversized file and too many files with 413, storing nothing', async () => {
    const before = countImages(s.ctx.db);
    const big = await upload([{ filename: 'ok.png', content: await normal() }, { filename: 'big.png', content: Buffer.alloc(2 * 1024 * 1024, 1) }]);
    expect(big.status).toBe(413);
    expect(big.json.error).toMatchObject({ code: 'payload_too_large', message: expect.stringContaining('big.png') });
    const n = await normal();
    const many = await upload(Array.from({ length: 11 }, (_, i) => ({ filename: `${i}.png`, content: n })));
    expect(many.status).toBe(413);
    expect(many.json.error.message).toMatch(/too many files: at most 10/);
    expect(countImages(s.ctx.db)).toBe(before);
  });

  it('refuses requests that are not multipart, or have no images', async () => {
    const json = await s.request('POST', '/api/images', { json: { image: 'abc' } });
    expect(json.status).toBe(400);
    expect(json.json.error.message).toMatch(/multipart\/form-data/);
    const none = multipart([{ name: 'source', content: 'x' }]);
    const empty = await s.request('POST', '/api/images', { body: none.body, headers: none.headers });
    expect(empty.status).toBe(400);
    const wrongField = multipart([{ name: 'file', filename: 'a.png', content: await normal() }]);
    expect((await s.request('POST', '/api/images', { body: wrongField.body, headers: wrongField.headers })).status).toBe(400);
    const broken = await s.request('POST', '/api/images', { body: '--x\r\nnonsense', headers: { 'content-type': 'multipart/form-data; boundary=x' } });
    expect(broken.status).toBe(400);
  });
});

describe('GET /api/images', () => {
  it('lists newest first with cursor paging and filters', async () => {
    for (const src of ['cam-a', 'cam-b', 'cam-a']) await upload([{ filename: `${src}.png`, content: await normal() }], src);
    await upload([{ filename: 'bad.png', content: await anomalous() }], 'cam-a');
    const all = await s.request('GET', '/api/images?limit=2', { key: s.keys.viewer });
    expect(all.status).toBe(200);
    expect(all.json.images).toHaveLength(2);
    expect(all.json.images[0].id).toBeGreaterThan(all.json.images[1].id);
    const next = await s.request('GET', `/api/images?limit=2&cursor=${all.json.nextCursor}`);
    expect(next.json.images[0].id).toBeLessThan(all.json.images[1].id);
    const camA = await s.request('GET', '/api/images?source=cam-a&limit=100');
    expect(camA.json.images.length).toBe(3);
    expect(camA.json.images.every((i: any) => i.source === 'cam-a')).toBe(true);
    const anomalies = await s.request('GET', '/api/images?anomalous=true&limit=100');
    expect(anomalies.json.images.every((i: any) => i.anomaly)).toBe(true);
    const future = await s.request('GET', `/api/images?since=${new Date(Date.now() + 3600_000).toISOString()}`);
    expect(future.json.images).toEqual([]);
  });

  it('treats SQL metacharacters in filters as plain text', async () => {
    for (const evil of ["x' OR '1'='1", 'a"; DROP TABLE images; --', '%', '_']) {
      const res = await s.request('GET', `/api/images?source=${encodeURIComponent(evil)}`);
      expect(res.status).toBe(200);
      expect(res.json.images).toEqual([]);
    }
    expect(countImages(s.ctx.db)).toBeGreaterThan(0);
  });

  it('refuses malformed parameters with 400 and unknown ids with 404', async () => {
    expect((await s.request('GET', '/api/images?limit=0')).status).toBe(400);
    expect((await s.request('GET', '/api/images?limit=abc')).status).toBe(400);
    expect((await s.request('GET', '/api/images?since=yesterday-ish')).status).toBe(400);
    expect((await s.request('GET', '/api/images?anomalous=maybe')).status).toBe(400);
    const missing = await s.request('GET', '/api/images/999999');
    expect(missing.status).toBe(404);
    expect(missing.json).toEqual({ error: { code: 'not_found', message: 'no image 999999' } });
    expect((await s.request('GET', '/api/images/..%2F..%2Fetc%2Fpasswd')).status).toBe(404);
    expect((await s.request('GET', '/api/images/1/..%2F..%2Flatentwatch.db')).status).toBe(404);
    expect((await s.request('GET', '/api/nothing-here')).status).toBe(404);
  });

  it('answers 404 for file names that are Object.prototype members', async () => {
    const res = await upload([{ filename: 'p.png', content: await normal() }]);
    const { id } = res.json.results[0].image;
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const f = await s.request('GET', `/api/images/${id}/${name}`, { key: s.keys.viewer });
      expect(f.status, name).toBe(404);
      expect(f.json.error.code, name).toBe('not_found');
    }
  });
});

describe('without an active model', () => {
  it('answers 409 and stores nothing', async () => {
    const bare = await testServer({ model: false });
    try {
      const m = multipart([{ name: 'images', filename: 'a.png', content: await normal() }]);
      const res = await bare.request('POST', '/api/images', { body: m.body, headers: m.headers });
      expect(res.status).toBe(409);
      expect(res.json.error).toMatchObject({ code: 'no_active_model', message: expect.stringMatching(/no model is active/) });
      expect(countImages(bare.ctx.db)).toBe(0);
      const health = await bare.request('GET', '/api/health', { key: null });
      expect(health.json).toMatchObject({ status: 'ok', activeModel: null, backend: 'wasm', database: 'ok' });
    } finally {
      await bare.close();
    }
  });
});

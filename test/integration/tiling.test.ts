// Full-resolution tiling, end to end on real (small) training runs: on
// elongated 192x96 images a 1-pixel scratch is caught by a tiled model and
// missed by the whole-image path that squeezes the image into one square;
// the tiled model's map keeps the image's aspect ratio; the CLI picks tiling
// by itself for large images.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN_OPTIONS } from '../../server/services/fit.js';
import { initBackend } from '../../server/ml/backend.js';
import { disposeDetector, loadDetector, loadInput, scoreInput, scoreSet, type Detector } from '../../server/services/detector.js';
import { optionsForImages, trainModel } from '../../server/services/train-model.js';
import { mulberry32 } from '../../server/ml/random.js';
import type { Picture } from '../../server/ml/tiles.js';
import { tempDir } from '../helpers.js';
import { multipart, testServer } from '../server-helpers.js';

const W = 192;
const H = 96;

/** A smooth lit surface with a few soft spots; `scratch` adds a thin dark line. */
function surface(seed: number, scratch: boolean): Buffer {
  const rand = mulberry32(seed);
  const a = 0.45 + rand() * 0.1;
  const gx = (rand() - 0.5) * 0.2;
  const gy = (rand() - 0.5) * 0.2;
  const spots = Array.from({ length: 3 }, () => ({ x: rand() * W, y: rand() * H, r: 8 + rand() * 8, v: 0.15 + rand() * 0.1 }));
  const px = Buffer.alloc(W * H);
  const line = { horizontal: rand() < 0.5, at: 20 + Math.floor(rand() * (H - 40)), from: 20 + Math.floor(rand() * (W - 80)), len: 36 };
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let v = a + gx * (x / W - 0.5) + gy * (y / H - 0.5);
      for (const s of spots) v += s.v * Math.exp(-((x - s.x) ** 2 + (y - s.y) ** 2) / (2 * s.r * s.r));
      v += (rand() - 0.5) * 0.02;
      if (scratch) {
        const [u, w] = line.horizontal ? [x, y] : [y % H, x % H];
        if (w === line.at && u >= line.from && u < line.from + line.len) v -= 0.4;
      }
      px[y * W + x] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return px;
}

async function writeSet(dir: string, count: number, seed: number, scratch: boolean): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `${scratch ? 'scratch' : 'normal'}_${String(i).padStart(3, '0')}.png`);
    await writeFile(file, await sharp(surface(seed + i, scratch), { raw: { width: W, height: H, channels: 1 } }).png().toBuffer());
    files.push(file);
  }
  return files;
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let normals: string[];
let heldOut: string[];
let scratched: string[];
let tiled: Detector;
let whole: Detector;
const options = { ...DEFAULT_TRAIN_OPTIONS, size: 32, latent: 16, baseFilters: 16, epochs: 8, patience: 100, minValidation: 60 };

beforeAll(async () => {
  await initBackend('wasm');
  tmp = await tempDir();
  normals = await writeSet(await mk('train'), 160, 1000, false);
  heldOut = await writeSet(await mk('normal'), 20, 5000, false);
  scratched = await writeSet(await mk('scratch'), 20, 9000, true);
  const train = async (name: string, resolution: number | null) => {
    await trainModel({ files: normals, source: 'synthetic', outDir: path.join(tmp.dir, name), options: { ...options, resolution }, backend: 'wasm' });
    return loadDetector(path.join(tmp.dir, name));
  };
  tiled = await train('tiled', W);
  whole = await train('whole', null);
}, 600_000);

async function mk(name: string): Promise<string> {
  const dir = path.join(tmp.dir, name);
  await (await import('node:fs/promises')).mkdir(dir);
  return dir;
}

afterAll(async () => {
  if (tiled) disposeDetector(tiled);
  if (whole) disposeDetector(whole);
  await tmp?.cleanup();
});

async function flagged(d: Detector, files: string[]): Promise<number> {
  const { input } = await loadInput(d.meta.input, files);
  return scoreSet(d, input).filter((s) => s.anomaly).length;
}

describe('a tiled model', () => {
  it('records its tiling and calibrates on whole held-out images', () => {
    expect(tiled.meta.input).toEqual({ size: 32, channels: 1, resize: 'tiles', tiling: { resolution: W, stride: 16 } });
    expect(tiled.meta.calibration.n).toBe(tiled.meta.dataset.validation);
    expect(whole.meta.input.resize).toBe('fill');
  });

  it('catches a 1-pixel scratch that the whole-image path misses, without raising false alarms', async () => {
    const tiledCaught = await flagged(tiled, scratched);
    const wholeCaught = await flagged(whole, scratched);
    const tiledFalse = await flagged(tiled, heldOut);
    console.log(`scratches caught: tiled ${tiledCaught}/20, whole ${wholeCaught}/20; tiled false alarms ${tiledFalse}/20`);
    expect(tiledCaught).toBeGreaterThanOrEqual(15);
    expect(wholeCaught).toBeLessThanOrEqual(6);
    expect(tiledFalse).toBeLessThanOrEqual(3);
  });

  it('gives a map and a reconstruction with the image aspect ratio, brightest on the scratch', async () => {
    const { input } = await loadInput(tiled.meta.input, scratched.slice(0, 1));
    const out = scoreInput(tiled, input, { errorMaps: true, reconstructions: true });
    expect(out.errorMaps[0].length).toBe(W * H);
    expect(out.reconstructions[0].length).toBe(W * H);
    // The scratch's row or column holds the map's maximum.
    const map = out.errorMaps[0];
    let best = 0;
    for (let i = 1; i < map.length; i++) if (map[i] > map[best]) best = i;
    const scratchPx = surface(9000, true);
    const cleanPx = surface(9000, false);
    let near = false;
    for (let dy = -3; dy <= 3; dy++) {
      for (let dx = -3; dx <= 3; dx++) {
        const y = Math.floor(best / W) + dy;
        const x = (best % W) + dx;
        if (x >= 0 && x < W && y >= 0 && y < H && scratchPx[y * W + x] !== cleanPx[y * W + x]) near = true;
      }
    }
    expect(near).toBe(true);
  });
});

describe('the server with a tiled model active', () => {
  it('scores an upload in tiles and serves a heatmap and reconstruction with its aspect ratio', async () => {
    const s = await testServer({ model: false, models: [{ name: 'tiled', from: path.join(tmp.dir, 'tiled') }] });
    try {
      const { input } = await loadInput(tiled.meta.input, scratched);
      const caught = scoreSet(tiled, input).findIndex((r) => r.anomaly);
      expect(caught).toBeGreaterThanOrEqual(0);
      const m = multipart([
        { name: 'images', filename: 'scratch.png', type: 'image/png', content: await readFile(scratched[caught]) },
        { name: 'images', filename: 'clean.png', type: 'image/png', content: await readFile(heldOut[0]) },
      ]);
      const res = await s.request('POST', '/api/images', { body: m.body, headers: m.headers });
      expect(res.status).toBe(201);
      const [bad, good] = res.json.results.map((r: any) => r.image);
      expect(bad).toMatchObject({ anomaly: true, width: W, height: H, modelId: 'tiled' });
      // The same scores as batch scoring: the server stitches the same tiles.
      expect(bad.scores.recon).toBeCloseTo(scoreSet(tiled, [(input as Picture[])[caught]])[0].recon, 4);
      expect(good.scores.recon).toBeLessThan(bad.scores.recon);
      for (const kind of ['heatmap', 'reconstruction']) {
        const png = (await s.request('GET', `/api/images/${bad.id}/${kind}`, { key: s.keys.viewer })).raw;
        const meta = await sharp(png).metadata();
        expect(meta.width! / meta.height!).toBeCloseTo(W / H);
        expect(meta.height).toBeGreaterThanOrEqual(128);
      }
    } finally {
      await s.close();
    }
  }, 120_000);
});

describe('default options from the images', () => {
  it('tile images larger than 512 px or twice as long as wide, read square ones up to 512 px whole, and follow their colour', async () => {
    const d = { ...DEFAULT_TRAIN_OPTIONS };
    const auto = { channels: true, resolution: true };
    expect((await optionsForImages(normals, d, auto)).resolution).toBe(W);
    expect((await optionsForImages(normals, d, auto)).channels).toBe(1);
    const small = await mk('small');
    const colour: string[] = [];
    for (let i = 0; i < 3; i++) {
      const file = path.join(small, `c${i}.png`);
      await sharp({ create: { width: 48, height: 48, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toFile(file);
      colour.push(file);
    }
    const grey = async (name: string, width: number, height: number) => {
      const file = path.join(small, name);
      await sharp({ create: { width, height, channels: 3, background: { r: 90, g: 90, b: 90 } } }).png().toFile(file);
      return [file];
    };
    expect((await optionsForImages(await grey('cell.png', 300, 300), d, auto)).resolution).toBeNull();
    expect((await optionsForImages(await grey('frame.png', 1024, 1000), d, auto)).resolution).toBe(256);
    expect((await optionsForImages(await grey('strip.png', 500, 1250), d, auto)).resolution).toBe(256);
    const o = await optionsForImages(colour, d, auto);
    expect(o.resolution).toBeNull();
    expect(o.channels).toBe(3);
    // What the user chose stays.
    expect((await optionsForImages(colour, { ...d, channels: 1 }, { resolution: true })).channels).toBe(1);
  });
});

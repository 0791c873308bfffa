import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/domain/errors.js';
import { decodeImage } from '../../server/ml/images.js';
import { listImageFiles, loadImages } from '../../server/ml/dataset.js';
import { tempDir } from '../helpers.js';

const FIXTURE = 'fixtures/normal/normal_0000.png';

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A valid PNG header announcing width x height, with a tiny IDAT: a decompression bomb. */
function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1024))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function expectAppError(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe(code);
  expect((err as AppError).message).toMatch(message);
}

describe('decodeImage', () => {
  let png: Buffer;
  beforeAll(async () => {
    png = await readFile(FIXTURE);
  });

  it.each(['png', 'jpeg', 'webp', 'gif', 'tiff'] as const)('decodes %s to the model size in [0, 1]', async (format) => {
    const bytes = await sharp(png)[format]().toBuffer();
    const img = await decodeImage(bytes, { size: 32, channels: 1 }, `x.${format}`);
    expect(img.pixels.length).toBe(32 * 32);
    expect(img.width).toBe(64);
    expect(img.height).toBe(64);
    expect(Math.min(...img.pixels)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...img.pixels)).toBeLessThanOrEqual(1);
    expect(Math.max(...img.pixels)).toBeGreaterThan(0.5); // the bright part survives
  });

  it('converts grayscale to 3 channels and colour with alpha to 1', async () => {
    const rgb = await decodeImage(png, { size: 28, channels: 3 });
    expect(rgb.pixels.length).toBe(28 * 28 * 3);
    expect(rgb.pixels[0]).toBeCloseTo(rgb.pixels[1]);
    const rgba = await sharp({ create: { width: 40, height: 20, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0.5 } } }).png().toBuffer();
    const gray = await decodeImage(rgba, { size: 28, channels: 1 });
    expect(gray.pixels.length).toBe(28 * 28);
    expect(gray.width).toBe(40);
  });

  it('stretches a non-square image to the square input (fit: fill)', async () => {
    // Left half white, right half black, 80x20: stays left-white after resizing.
    const raw = Buffer.alloc(80 * 20);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw[y * 80 + x] = 255;
    const bytes = await sharp(raw, { raw: { width: 80, height: 20, channels: 1 } }).png().toBuffer();
    const img = await decodeImage(bytes, { size: 28, channels: 1 });
    expect(img.pixels[14 * 28 + 2]).toBeGreaterThan(0.9);
    expect(img.pixels[14 * 28 + 25]).toBeLessThan(0.1);
    expect(img.pixels[0]).toBeGreaterThan(0.9); // top row is image, not padding
  });

  it('refuses an empty file', async () => {
    await expectAppError(decodeImage(Buffer.alloc(0), { size: 28, channels: 1 }, 'empty.png'), 'empty_file', /empty\.png: the file is empty/);
  });

  it('refuses a file that is not an image', async () => {
    await expectAppError(decodeImage(Buffer.from('hello, I am text'), { size: 28, channels: 1 }, 'notes.txt'), 'unsupported_image', /notes\.txt: not a supported image/);
  });

  it('refuses a truncated PNG and a corrupt JPEG', async () => {
    await expectAppError(decodeImage(png.subarray(0, png.length >> 1), { size: 28, channels: 1 }, 'half.png'), 'corrupt_image', /half\.png/);
    const jpeg = await sharp(png).jpeg().toBuffer();
    const broken = Buffer.from(jpeg);
    broken.fill(0x00, 200, jpeg.length - 2);
    await expectAppError(decodeImage(broken.subarray(0, 400), { size: 28, channels: 1 }, 'cut.jpg'), 'corrupt_image', /cut\.jpg/);
  });

  it('refuses a decompression bomb by its header, before decoding pixels', async () => {
    await expectAppError(decodeImage(bombPng(30000, 30000), { size: 28, channels: 1 }, 'bomb.png'), 'image_too_large', /bomb\.png/);
    await expectAppError(decodeImage(await sharp(png).resize(200, 200).png().toBuffer(), { size: 28, channels: 1, maxPixels: 10_000 }, 'big.png'), 'image_too_large', /big\.png/);
  });
});

describe('listImageFiles and loadImages', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir());
    await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
    const png = await readFile(FIXTURE);
    await writeFile(path.join(dir, 'b.png'), png);
    await writeFile(path.join(dir, 'sub', 'a.PNG'), png);
    await writeFile(path.join(dir, 'sub', 'deeper', 'c.jpg'), await sharp(png).jpeg().toBuffer());
    await writeFile(path.join(dir, 'sub', 'broken.png'), png.subarray(0, 100));
    await writeFile(path.join(dir, 'sub', 'empty.webp'), Buffer.alloc(0));
    await writeFile(path.join(dir, 'readme.txt'), 'not an image');
  });
  afterAll(() => cleanup());

  it('walks directories recursively, keeps image extensions, sorts', async () => {
    const files = await listImageFiles([dir]);
    expect(files.map((f) => path.relative(dir, f))).toEqual(['b.png', 'sub/a.PNG', 'sub/broken.png', 'sub/deeper/c.jpg', 'sub/empty.webp']);
  });

  it('keeps an explicitly named file whatever its extension', async () => {
    expect(await listImageFiles([path.join(dir, 'readme.txt')])).toEqual([path.join(dir, 'readme.txt')]);
  });

  it('names a missing path', async () => {
    await expectAppError(listImageFiles([path.join(dir, 'nope')]), 'not_found', /nope: no such file or directory/);
  });

  it('loads the readable images and reports each unreadable one by name', async () => {
    const files = await listImageFiles([dir, path.join(dir, 'readme.txt')]);
    const loaded = await loadImages(files, { size: 28, channels: 1 });
    expect(loaded.set.count).toBe(3);
    expect(loaded.set.data.length).toBe(3 * 28 * 28);
    expect(loaded.files.map((f) => path.basename(f))).toEqual(['b.png', 'a.PNG', 'c.jpg']);
    expect(loaded.failures.map((f) => [path.basename(f.file), f.error.code])).toEqual([
      ['readme.txt', 'unsupported_image'],
      ['broken.png', 'corrupt_image'],
      ['empty.webp', 'empty_file'],
    ]);
  });
});

// Shared test helpers: temp dirs, tiny image sets and tiny models.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ImageSet } from '../server/ml/dataset.js';
import { mulberry32 } from '../server/ml/random.js';

export async function tempDir(prefix = 'latentwatch-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Blurry random blobs: cheap, learnable, deterministic. */
export function blobImages(count: number, size: number, channels: 1 | 3 = 1, seed = 1): ImageSet {
  const rand = mulberry32(seed);
  const p = size * size * channels;
  const data = new Float32Array(count * p);
  for (let n = 0; n < count; n++) {
    const cx = size / 2 + (rand() - 0.5) * 4;
    const cy = size / 2 + (rand() - 0.5) * 4;
    const r = size * (0.25 + rand() * 0.05);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const d = Math.hypot(x - cx, y - cy);
        const v = 1 / (1 + Math.exp((d - r) / 1.5));
        for (let c = 0; c < channels; c++) data[n * p + (y * size + x) * channels + c] = v * (0.8 + 0.1 * c);
      }
    }
  }
  return { data, count, size, channels };
}

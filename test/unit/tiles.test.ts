// Tile geometry and stitching: every pixel covered, overlaps averaged, the
// aspect ratio kept, and the worst region found wherever it lies.
import { describe, expect, it } from 'vitest';
import type { LocalMapStats } from '../../server/domain/types.js';
import { copyTile, stitch, tileGrid, tileOffsets, topMean, workingSize, worstRegionPixels, type Picture, type TileResult } from '../../server/ml/tiles.js';

const local: LocalMapStats = { sqScale: 1, dssimScale: 1, pixelMean: [], pixelStd: [], floor: 1, window: 3, topFraction: 0.01 };

function picture(cols: number, rows: number, channels: 1 | 3 = 1): Picture {
  const pixels = new Float32Array(cols * rows * channels);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i % 251) / 251;
  return { pixels, cols, rows, channels };
}

describe('workingSize', () => {
  it('scales the longer side to the resolution and keeps the aspect ratio', () => {
    expect(workingSize(1250, 500, 256, 64)).toEqual({ cols: 256, rows: 102 });
    expect(workingSize(460, 1130, 512, 64)).toEqual({ cols: 208, rows: 512 });
    expect(workingSize(300, 300, 256, 64)).toEqual({ cols: 256, rows: 256 });
  });

  it('never makes a side shorter than one tile', () => {
    expect(workingSize(2000, 100, 256, 64)).toEqual({ cols: 1280, rows: 64 });
    expect(workingSize(40, 30, 256, 64)).toEqual({ cols: 256, rows: 192 });
    expect(workingSize(30, 400, 128, 64)).toEqual({ cols: 64, rows: 853 });
  });
});

describe('tileOffsets and tileGrid', () => {
  it('step by the stride and end flush with the edge, without repeats', () => {
    expect(tileOffsets(256, 64, 32)).toEqual([0, 32, 64, 96, 128, 160, 192]);
    expect(tileOffsets(102, 64, 32)).toEqual([0, 32, 38]);
    expect(tileOffsets(64, 64, 32)).toEqual([0]);
    expect(() => tileOffsets(63, 64, 32)).toThrow(/shorter than a 64 px tile/);
  });

  it('cover every pixel of a picture', () => {
    for (const [cols, rows] of [[256, 102], [64, 64], [97, 211]]) {
      const covered = new Uint8Array(cols * rows);
      for (const { x, y } of tileGrid(cols, rows, 64, 32)) {
        for (let r = 0; r < 64; r++) for (let c = 0; c < 64; c++) covered[(y + r) * cols + x + c] = 1;
      }
      expect(covered.every((v) => v === 1)).toBe(true);
    }
  });
});

describe('stitch', () => {
  it('puts perfect tile reconstructions back together into the picture itself', () => {
    const p = picture(100, 70, 3);
    const size = 32;
    const grid = tileGrid(p.cols, p.rows, size, 16);
    const results: TileResult[] = grid.map(({ x, y }) => {
      const reconstruction = new Float32Array(size * size * 3);
      copyTile(p, x, y, size, reconstruction);
      return { raw: { kl: 10, recon: 0, elbo: 5 }, errorMap: new Float32Array(size * size), reconstruction };
    });
    const s = stitch(p.cols, p.rows, 3, size, grid, results, local);
    expect(s.reconstruction!.length).toBe(p.pixels.length);
    let worst = 0;
    for (let i = 0; i < p.pixels.length; i++) worst = Math.max(worst, Math.abs(s.reconstruction![i] - p.pixels[i]));
    expect(worst).toBeLessThan(1e-6);
    expect(s.raw.kl).toBeCloseTo(10);
    expect(s.raw.elbo).toBeCloseTo(5);
  });

  it('averages overlapping maps and scores the worst region wherever it lies', () => {
    const size = 32;
    const cols = 128;
    const rows = 64;
    const grid = tileGrid(cols, rows, size, 16);
    // Every tile sees 1 everywhere, except a hot 3x3 spot at picture pixel (100, 50).
    const results: TileResult[] = grid.map(({ x, y }) => {
      const map = new Float32Array(size * size).fill(1);
      for (let r = 49; r <= 51; r++) {
        for (let c = 99; c <= 101; c++) {
          if (r >= y && r < y + size && c >= x && c < x + size) map[(r - y) * size + (c - x)] = 50;
        }
      }
      return { raw: { kl: 1, recon: 0, elbo: 1 }, errorMap: map };
    });
    const s = stitch(cols, rows, 1, size, grid, results, local);
    expect(s.errorMap.length).toBe(cols * rows);
    expect(s.errorMap[0]).toBeCloseTo(1);
    expect(s.errorMap[50 * cols + 100]).toBeCloseTo(50);
    // The worst region is the 1 % of one tile (10 pixels): 9 hot ones and one at 1.
    expect(worstRegionPixels(local, size)).toBe(10);
    expect(s.raw.recon).toBeCloseTo((9 * 50 + 1) / 10);
    expect(s.reconstruction).toBeUndefined();
  });
});

describe('topMean', () => {
  it('averages the k largest values', () => {
    expect(topMean(Float32Array.from([3, 1, 4, 1, 5, 9, 2, 6]), 3)).toBeCloseTo((9 + 6 + 5) / 3);
    expect(topMean(Float32Array.from([2, 7]), 10)).toBeCloseTo(4.5);
    expect(topMean(Float32Array.from([2, 7]), 0)).toBe(7);
  });
});

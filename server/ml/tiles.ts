// Full-resolution scoring in tiles. Inspection images are often large and not
// square (a 500x1250 strip); squeezed into one 64 px square, a thin crack or
// a 10-pixel pit vanishes before the model sees it. A tiled model instead
// works on the image resized to a chosen working resolution (its longer
// side), aspect ratio kept, cut into overlapping tiles of the model's input
// size. Each tile gets its own local error map; the maps are stitched into
// one full-image map (overlaps averaged), which is both the heatmap and what
// the recon score is read from: the mean of its worst region, a region the
// size of the worst 1 % of one tile, wherever it lies.
//
// kl and elbo are averaged over tiles: they describe the image as a whole
// (a blank frame has a low KL in every tile).
import type { LocalMapStats, RawScores } from '../domain/types.js';
import type { ImageSet } from './dataset.js';

/** One image at the working resolution: cols x rows x channels, row-major, in [0, 1]. */
export interface Picture {
  pixels: Float32Array;
  cols: number;
  rows: number;
  channels: 1 | 3;
}

/** How a tiled model cuts images: stored in the model's meta.json. */
export interface Tiling {
  /** Longer side of the working resolution, in pixels. */
  resolution: number;
  /** Step between tiles; half the tile side, so every pixel is seen by up to four tiles. */
  stride: number;
}

export function defaultStride(size: number): number {
  return Math.max(1, Math.floor(size / 2));
}

/**
 * The working size of a width x height image: the longer side scaled to
 * `resolution`, aspect ratio kept, and neither side below one tile.
 */
export function workingSize(width: number, height: number, resolution: number, size: number): { cols: number; rows: number } {
  let scale = resolution / Math.max(width, height);
  if (Math.min(width, height) * scale < size) scale = size / Math.min(width, height);
  return { cols: Math.max(size, Math.round(width * scale)), rows: Math.max(size, Math.round(height * scale)) };
}

/** Tile origins along one axis: every `stride`, and the last flush with the end. */
export function tileOffsets(length: number, size: number, stride: number): number[] {
  if (length < size) throw new Error(`an axis of ${length} px is shorter than a ${size} px tile`);
  const out: number[] = [];
  for (let o = 0; o + size < length; o += stride) out.push(o);
  out.push(length - size);
  return out;
}

export interface TileOrigin {
  x: number;
  y: number;
}

export function tileGrid(cols: number, rows: number, size: number, stride: number): TileOrigin[] {
  const xs = tileOffsets(cols, size, stride);
  return tileOffsets(rows, size, stride).flatMap((y) => xs.map((x) => ({ x, y })));
}

/** Copies the size x size tile at (x, y) of `p` into `out` at element `offset`. */
export function copyTile(p: Picture, x: number, y: number, size: number, out: Float32Array, offset = 0): void {
  const rowLen = size * p.channels;
  for (let r = 0; r < size; r++) {
    const from = ((y + r) * p.cols + x) * p.channels;
    out.set(p.pixels.subarray(from, from + rowLen), offset + r * rowLen);
  }
}

/** The tiles of `pictures` at the given origins, as one contiguous set. */
export function tileSet(pictures: readonly Picture[], tiles: readonly { picture: number; x: number; y: number }[], size: number, channels: 1 | 3): ImageSet {
  const p = size * size * channels;
  const data = new Float32Array(tiles.length * p);
  tiles.forEach((t, k) => copyTile(pictures[t.picture], t.x, t.y, size, data, k * p));
  return { data, count: tiles.length, size, channels };
}

/** Every grid tile of every picture, in picture order. */
export function allTiles(pictures: readonly Picture[], size: number, stride: number): { picture: number; x: number; y: number }[] {
  return pictures.flatMap((p, picture) => tileGrid(p.cols, p.rows, size, stride).map((o) => ({ picture, ...o })));
}

/** Mean of the k largest values (k at least 1, at most the length). */
export function topMean(values: Float32Array, k: number): number {
  const n = Math.max(1, Math.min(values.length, Math.round(k)));
  // A full sort of a copy: maps are at most a few hundred thousand pixels.
  const sorted = Float32Array.from(values).sort();
  let sum = 0;
  for (let i = sorted.length - n; i < sorted.length; i++) sum += sorted[i];
  return sum / n;
}

/** Pixels in the worst region the recon score averages: the worst `topFraction` of one tile. */
export function worstRegionPixels(local: LocalMapStats, size: number): number {
  return Math.max(1, Math.round(local.topFraction * size * size));
}

/** What scoring one tile gives: its raw scores, its local map and (optionally) its reconstruction. */
export interface TileResult {
  raw: RawScores;
  errorMap: Float32Array;
  reconstruction?: Float32Array;
}

export interface StitchedPicture {
  raw: RawScores;
  /** cols x rows. */
  errorMap: Float32Array;
  /** cols x rows x channels, when every tile brought its reconstruction. */
  reconstruction?: Float32Array;
}

/**
 * Joins the results of a picture's tiles (in the order of `tiles`) into the
 * full-image map and reconstruction, overlaps averaged, and the picture's scores.
 */
export function stitch(cols: number, rows: number, channels: 1 | 3, size: number, tiles: readonly TileOrigin[], results: readonly TileResult[], local: LocalMapStats): StitchedPicture {
  const map = new Float32Array(cols * rows);
  const cover = new Float32Array(cols * rows);
  const withRec = results.every((r) => r.reconstruction);
  const rec = withRec ? new Float32Array(cols * rows * channels) : undefined;
  let kl = 0;
  let elbo = 0;
  tiles.forEach(({ x, y }, t) => {
    const r = results[t];
    kl += r.raw.kl;
    elbo += r.raw.elbo;
    for (let i = 0; i < size; i++) {
      const row = (y + i) * cols + x;
      for (let j = 0; j < size; j++) {
        map[row + j] += r.errorMap[i * size + j];
        cover[row + j] += 1;
      }
      if (rec) {
        const src = r.reconstruction!.subarray(i * size * channels, (i + 1) * size * channels);
        const to = row * channels;
        for (let j = 0; j < src.length; j++) rec[to + j] += src[j];
      }
    }
  });
  for (let i = 0; i < map.length; i++) {
    map[i] /= cover[i];
    if (rec) for (let c = 0; c < channels; c++) rec[i * channels + c] /= cover[i];
  }
  const n = tiles.length;
  return {
    raw: { kl: kl / n, recon: topMean(map, worstRegionPixels(local, size)), elbo: elbo / n },
    errorMap: map,
    ...(rec ? { reconstruction: rec } : {}),
  };
}

// Turns model outputs into PNGs for people: reconstructions, thumbnails and
// error heatmaps on a fixed colour scale.
import sharp from 'sharp';

/** A perceptually ordered dark-to-bright ramp (close to matplotlib's "inferno"). */
const RAMP: [number, number, number][] = [
  [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164],
];

function rampColour(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [RAMP[i], RAMP[i + 1]];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/**
 * Per-pixel squared errors -> RGB PNG. `scale` is the calibration's
 * heatmapScale: the same error always gets the same colour, so a clean image
 * stays dark instead of being stretched to full range.
 */
export type HeatmapKind = 'squared' | 'local';

/**
 * Where on the colour ramp a map value sits. Squared errors: by their root,
 * scale at two thirds. Local maps (standard deviations from normal, the very
 * map the verdict scores): linear from 0, the recon threshold at two thirds,
 * so that what can raise an alert is orange to yellow and a normal image is dark.
 */
export function heatmapLevel(value: number, scale: number, kind: HeatmapKind): number {
  if (kind === 'local') return Math.max(0, value) / scale / 1.5;
  return Math.sqrt(Math.max(0, value) / scale) / 1.5;
}

/** Pixel grid of a map or image: size x size for whole-image models, the working size for tiled ones. */
export interface Grid {
  cols: number;
  rows: number;
}

/** Upscales small grids (nearest neighbour, so pixels stay visible) until the shorter side is at least `min`. */
export function viewGrid(g: Grid, min = 128): Grid {
  const k = Math.max(1, Math.ceil(min / Math.min(g.cols, g.rows)));
  return { cols: g.cols * k, rows: g.rows * k };
}

export async function heatmapPng(errors: Float32Array, grid: Grid, scale: number, kind: HeatmapKind = 'squared', out: Grid = grid): Promise<Buffer> {
  const rgb = Buffer.alloc(grid.cols * grid.rows * 3);
  for (let i = 0; i < errors.length; i++) {
    const [r, g, b] = rampColour(heatmapLevel(errors[i], scale, kind));
    rgb[i * 3] = r;
    rgb[i * 3 + 1] = g;
    rgb[i * 3 + 2] = b;
  }
  return sharp(rgb, { raw: { width: grid.cols, height: grid.rows, channels: 3 } }).resize(out.cols, out.rows, { kernel: 'nearest' }).png().toBuffer();
}

/** Pixels in [0, 1] (cols x rows x channels) -> PNG. */
export async function pixelsPng(pixels: Float32Array, grid: Grid, channels: 1 | 3, out: Grid = grid): Promise<Buffer> {
  const bytes = Buffer.alloc(pixels.length);
  for (let i = 0; i < pixels.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, pixels[i])) * 255);
  return sharp(bytes, { raw: { width: grid.cols, height: grid.rows, channels } }).resize(out.cols, out.rows, { kernel: 'nearest' }).png().toBuffer();
}

/** A small preview of the original upload, aspect ratio kept. */
export async function thumbnailPng(original: Uint8Array, side = 128): Promise<Buffer> {
  return sharp(original).rotate().resize(side, side, { fit: 'inside' }).png().toBuffer();
}

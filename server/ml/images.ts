// Image bytes -> Float32 pixels in [0, 1] at the model's size and channels.
// Aspect ratio: whole-image models stretch images to the square input
// ("fill"). A camera produces one aspect ratio, so training and scoring images
// are distorted identically, and no pixel is cropped away (a defect at the
// edge stays visible). Tiled models resize to their working resolution with
// the aspect ratio kept (see tiles.ts).
import sharp from 'sharp';
import { AppError } from '../domain/errors.js';
import { workingSize } from './tiles.js';

/**
 * Camera formats only. sharp can also rasterise SVG (and PDF, with some
 * builds); an SVG is a document that can carry script, not a photograph.
 */
export const ACCEPTED_FORMATS: ReadonlySet<string> = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff', 'heif']);

/** Decompression-bomb guard: refuse images above this many pixels (about 8k x 8k). */
export const DEFAULT_MAX_PIXELS = 64 * 1024 * 1024;

export interface DecodeOptions {
  size: number;
  channels: 1 | 3;
  maxPixels?: number;
  /** Tiled models: resize the longer side to this, aspect ratio kept, instead of size x size. */
  resolution?: number | null;
}

export interface DecodedImage {
  /** cols x rows x channels, row-major, values in [0, 1]. */
  pixels: Float32Array;
  /** Sides of \`pixels\`: size x size, or the working size of a tiled model. */
  cols: number;
  rows: number;
  /** Original dimensions and format, before resizing. */
  width: number;
  height: number;
  format: string;
}

function classify(err: unknown, name: string): AppError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/unsupported image format/i.test(msg)) {
    return new AppError('unsupported_image', `${name}: not a supported image (PNG, JPEG, WebP, GIF, TIFF or AVIF)`);
  }
  if (/pixel limit/i.test(msg)) {
    return new AppError('image_too_large', `${name}: image dimensions exceed the pixel limit`);
  }
  return new AppError('corrupt_image', `${name}: the image is corrupt or truncated (${msg.split('\n')[0]})`);
}

export async function decodeImage(bytes: Uint8Array, opts: DecodeOptions, name = 'image'): Promise<DecodedImage> {
  if (bytes.length === 0) throw new AppError('empty_file', `${name}: the file is empty`);
  const limitInputPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  try {
    const input = sharp(bytes, { limitInputPixels, failOn: 'warning' });
    const meta = await input.metadata();
    if (!ACCEPTED_FORMATS.has(meta.format ?? '')) {
      throw new AppError('unsupported_image', `${name}: ${meta.format ?? 'this'} is not a supported image format (PNG, JPEG, WebP, GIF, TIFF or AVIF)`);
    }
    const width = meta.autoOrient?.width ?? meta.width ?? 0;
    const height = meta.autoOrient?.height ?? meta.height ?? 0;
    if (width * height > limitInputPixels) {
      throw new AppError('image_too_large', `${name}: ${width}x${height} exceeds the limit of ${limitInputPixels} pixels`);
    }
    let pipeline = input.rotate().flatten({ background: '#000000' });
    pipeline = opts.channels === 1 ? pipeline.grayscale() : pipeline.toColourspace('srgb');
    const { cols, rows } = opts.resolution ? workingSize(width, height, opts.resolution, opts.size) : { cols: opts.size, rows: opts.size };
    const { data, info } = await pipeline
      .resize(cols, rows, { fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== opts.channels) {
      throw new Error(`decoded to ${info.channels} channels instead of ${opts.channels}`);
    }
    const pixels = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) pixels[i] = data[i] / 255;
    return { pixels, cols, rows, width, height, format: meta.format ?? 'unknown' };
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw classify(err, name);
  }
}

// Finding image files and loading them into one contiguous Float32Array, the
// layout training and batch scoring want (no per-image tensors).
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../domain/errors.js';
import { decodeImage, type DecodeOptions } from './images.js';

export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.avif']);

/** N images of size x size x channels, contiguous. */
export interface ImageSet {
  data: Float32Array;
  count: number;
  size: number;
  channels: 1 | 3;
}

export function pixelsPerImage(set: Pick<ImageSet, 'size' | 'channels'>): number {
  return set.size * set.size * set.channels;
}

/** The images at `indices`, copied into a new set. */
export function subset(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const p = pixelsPerImage(set);
  const data = new Float32Array(indices.length * p);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    data.set(set.data.subarray(i * p, (i + 1) * p), k * p);
  }
  return { data, count: indices.length, size: set.size, channels: set.channels };
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) await walk(full, out);
    else if (e.isFile() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) out.push(full);
  }
}

/**
 * Files named explicitly are kept whatever their extension (so a bad one gets
 * a clear error); directories contribute every image file under them,
 * recursively, sorted so that runs are reproducible.
 */
export async function listImageFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch {
      throw new AppError('not_found', `${p}: no such file or directory`);
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      await walk(p, found);
      files.push(...found.sort());
    } else {
      files.push(p);
    }
  }
  return files;
}

export interface LoadFailure {
  file: string;
  error: AppError;
}

export interface LoadedImages {
  set: ImageSet;
  /** The files in `set`, in order. */
  files: string[];
  failures: LoadFailure[];
}

/** Decodes files with bounded concurrency (sharp works on libuv threads). */
export async function loadImages(
  files: readonly string[],
  opts: DecodeOptions,
  onProgress?: (loaded: number, total: number) => void,
  concurrency = 4,
): Promise<LoadedImages> {
  const p = opts.size * opts.size * opts.channels;
  const decoded: (Float32Array | null)[] = new Array(files.length).fill(null);
  const failures: LoadFailure[] = [];
  let next = 0;
  let done = 0;
  async function worker(): Promise<void> {
    while (next < files.length) {
      const i = next++;
      try {
        const bytes = await readFile(files[i]);
        decoded[i] = (await decodeImage(bytes, opts, files[i])).pixels;
      } catch (err) {
        // Decoding errors are AppErrors already; anything else means the file could not be read.
        const error = err instanceof AppError ? err : new AppError('not_found', `${files[i]}: cannot be read (${(err as Error).message})`);
        failures.push({ file: files[i], error });
      }
      done++;
      onProgress?.(done, files.length);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  const ok = files.filter((_, i) => decoded[i] != null);
  const data = new Float32Array(ok.length * p);
  let k = 0;
  for (const px of decoded) if (px) data.set(px, p * k++);
  failures.sort((a, b) => a.file.localeCompare(b.file));
  return { set: { data, count: ok.length, size: opts.size, channels: opts.channels }, files: ok, failures };
}

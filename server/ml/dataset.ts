// Finding image files and loading them into one contiguous Float32Array, the
// layout training and batch scoring want (no per-image tensors).
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../domain/errors.js';
import { decodeImage, type DecodedImage, type DecodeOptions } from './images.js';
import type { Picture } from './tiles.js';

export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heif', '.heic']);

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

/**
 * Why a directory entry was left out of a listing:
 * - not_image: a file without an image extension (by the entry's name or, for
 *   a link, its target's name);
 * - broken_link: a symbolic link whose target does not exist;
 * - link_cycle: a link back to a directory that contains it (or a link chain
 *   that loops), which would otherwise be walked forever;
 * - duplicate_dir: a directory already walked by another path (two links to
 *   the same folder), so that its images are not listed twice;
 * - unreadable: an entry that could not be examined or a directory that could
 *   not be opened (permissions);
 * - not_a_file: a socket, FIFO or device.
 */
export type SkipReason = 'not_image' | 'broken_link' | 'link_cycle' | 'duplicate_dir' | 'unreadable' | 'not_a_file';

export interface SkippedEntry {
  path: string;
  reason: SkipReason;
}

export interface ImageListing {
  files: string[];
  /** Entries under the directories that were not listed, and why; sorted by path. */
  skipped: SkippedEntry[];
}

const REASON_LABELS: Record<SkipReason, [one: string, many: string]> = {
  not_image: ['not an image', 'not images'],
  broken_link: ['broken link', 'broken links'],
  link_cycle: ['link cycle', 'link cycles'],
  duplicate_dir: ['directory already listed', 'directories already listed'],
  unreadable: ['unreadable', 'unreadable'],
  not_a_file: ['not a regular file', 'not regular files'],
};

/** Counts of skipped entries by reason, most frequent first. */
export function countSkipped(skipped: readonly SkippedEntry[]): Partial<Record<SkipReason, number>> {
  const counts: Partial<Record<SkipReason, number>> = {};
  for (const s of skipped) counts[s.reason] = (counts[s.reason] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort((a, b) => b[1] - a[1]));
}

/** "skipped 3: 2 not images, 1 broken link", or '' when nothing was skipped. */
export function describeSkipped(skipped: readonly SkippedEntry[]): string {
  if (skipped.length === 0) return '';
  const parts = Object.entries(countSkipped(skipped)).map(([reason, n]) => `${n} ${REASON_LABELS[reason as SkipReason][n === 1 ? 0 : 1]}`);
  return `skipped ${skipped.length}: ${parts.join(', ')}`;
}

function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/**
 * Lists the image files under `dir`, following symbolic links to files and
 * to directories. `ancestors` holds the real paths of the directories being
 * walked (a link to one of them is a cycle); `visited` every directory walked
 * so far from the same starting point.
 */
async function walk(dir: string, out: string[], skipped: SkippedEntry[], ancestors: Set<string>, visited: Set<string>): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    skipped.push({ path: dir, reason: 'unreadable' });
    return;
  }
  // In name order, so that which of two links to one directory is walked does not depend on the file system.
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const full = path.join(dir, e.name);
    let isDirectory = e.isDirectory();
    let isFile = e.isFile();
    let imageName = isImageName(e.name);
    if (e.isSymbolicLink()) {
      try {
        const target = await stat(full); // follows the whole chain of links
        isDirectory = target.isDirectory();
        isFile = target.isFile();
        if (isFile && !imageName) imageName = isImageName(await realpath(full));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        skipped.push({ path: full, reason: code === 'ENOENT' || code === 'ENOTDIR' ? 'broken_link' : code === 'ELOOP' ? 'link_cycle' : 'unreadable' });
        continue;
      }
    }
    if (isDirectory) {
      let real: string;
      try {
        real = await realpath(full);
      } catch {
        skipped.push({ path: full, reason: 'unreadable' });
        continue;
      }
      if (ancestors.has(real)) skipped.push({ path: full, reason: 'link_cycle' });
      else if (visited.has(real)) skipped.push({ path: full, reason: 'duplicate_dir' });
      else {
        visited.add(real);
        ancestors.add(real);
        await walk(full, out, skipped, ancestors, visited);
        ancestors.delete(real);
      }
    } else if (isFile) {
      if (imageName) out.push(full);
      else skipped.push({ path: full, reason: 'not_image' });
    } else {
      skipped.push({ path: full, reason: 'not_a_file' });
    }
  }
}

const byPath = (a: SkippedEntry, b: SkippedEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/**
 * Files named explicitly are kept whatever their extension (so a bad one gets
 * a clear error); directories contribute every image file under them,
 * recursively and through symbolic links, sorted so that runs are
 * reproducible. What a directory holds besides images is in `skipped`.
 */
export async function scanImageFiles(paths: readonly string[]): Promise<ImageListing> {
  const files: string[] = [];
  const skipped: SkippedEntry[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch {
      throw new AppError('not_found', `${p}: no such file or directory`);
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      const left: SkippedEntry[] = [];
      const real = await realpath(p);
      await walk(p, found, left, new Set([real]), new Set([real]));
      files.push(...found.sort());
      skipped.push(...left.sort(byPath));
    } else {
      files.push(p);
    }
  }
  return { files, skipped };
}

/** scanImageFiles without the account of what was skipped. */
export async function listImageFiles(paths: readonly string[]): Promise<string[]> {
  return (await scanImageFiles(paths)).files;
}

/**
 * The images to train on in `dir`, refusing a directory with none and saying
 * what it held instead (`source` names the directory in the message).
 */
export async function listTrainingImages(dir: string, source = dir): Promise<ImageListing> {
  const listing = await scanImageFiles([dir]);
  if (listing.files.length === 0) {
    const why = describeSkipped(listing.skipped);
    throw new AppError('not_enough_images', `${source}: no image files found${why ? ` (${why})` : ''}`);
  }
  return listing;
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

/** Decodes files with bounded concurrency (sharp works on libuv threads), in input order. */
async function decodeFiles(
  files: readonly string[],
  opts: DecodeOptions,
  onProgress?: (loaded: number, total: number) => void,
  concurrency = 4,
): Promise<{ decoded: (DecodedImage | null)[]; failures: LoadFailure[] }> {
  const decoded: (DecodedImage | null)[] = new Array(files.length).fill(null);
  const failures: LoadFailure[] = [];
  let next = 0;
  let done = 0;
  async function worker(): Promise<void> {
    while (next < files.length) {
      const i = next++;
      try {
        const bytes = await readFile(files[i]);
        decoded[i] = await decodeImage(bytes, opts, files[i]);
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
  failures.sort((a, b) => a.file.localeCompare(b.file));
  return { decoded, failures };
}

/** Decodes files at the model's square input into one contiguous set. */
export async function loadImages(
  files: readonly string[],
  opts: DecodeOptions,
  onProgress?: (loaded: number, total: number) => void,
  concurrency = 4,
): Promise<LoadedImages> {
  const { decoded, failures } = await decodeFiles(files, { ...opts, resolution: null }, onProgress, concurrency);
  const p = opts.size * opts.size * opts.channels;
  const ok = files.filter((_, i) => decoded[i] != null);
  const data = new Float32Array(ok.length * p);
  let k = 0;
  for (const img of decoded) if (img) data.set(img.pixels, p * k++);
  return { set: { data, count: ok.length, size: opts.size, channels: opts.channels }, files: ok, failures };
}

export interface LoadedPictures {
  pictures: Picture[];
  /** The files in `pictures`, in order. */
  files: string[];
  failures: LoadFailure[];
}

/** Decodes files at a tiled model's working resolution (opts.resolution), aspect ratio kept. */
export async function loadPictures(
  files: readonly string[],
  opts: DecodeOptions & { resolution: number },
  onProgress?: (loaded: number, total: number) => void,
  concurrency = 4,
): Promise<LoadedPictures> {
  const { decoded, failures } = await decodeFiles(files, opts, onProgress, concurrency);
  const pictures: Picture[] = [];
  const ok: string[] = [];
  decoded.forEach((img, i) => {
    if (!img) return;
    pictures.push({ pixels: img.pixels, cols: img.cols, rows: img.rows, channels: opts.channels });
    ok.push(files[i]);
  });
  return { pictures, files: ok, failures };
}

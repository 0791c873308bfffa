// A look at a folder of training images before training, so that the defaults
// fit the images (their size, shape and colour) instead of the other way round.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';

export interface FolderShape {
  /** Images that could be read, of those sampled. */
  sampled: number;
  /** Median width and height of the sampled images (after EXIF rotation). */
  width: number;
  height: number;
  /** Any sampled image has colour (channels that differ), not only grey stored as RGB. */
  colour: boolean;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)];
}

/** Largest difference between colour channels of a small copy, in 0..255 levels. */
async function colourSpread(bytes: Buffer): Promise<number> {
  const { data } = await sharp(bytes).rotate().flatten({ background: '#000000' }).toColourspace('srgb').resize(32, 32, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  let spread = 0;
  for (let i = 0; i + 2 < data.length; i += 3) {
    spread = Math.max(spread, Math.abs(data[i] - data[i + 1]), Math.abs(data[i + 1] - data[i + 2]), Math.abs(data[i] - data[i + 2]));
  }
  return spread;
}

/**
 * Reads up to `sample` files spread evenly over the list. Unreadable files are
 * skipped here; loading reports them with their reasons.
 */
export async function probeImages(files: readonly string[], sample = 24): Promise<FolderShape> {
  const step = Math.max(1, files.length / sample);
  const picked = Array.from({ length: Math.min(sample, files.length) }, (_, i) => files[Math.floor(i * step)]);
  const widths: number[] = [];
  const heights: number[] = [];
  let colour = false;
  for (const file of picked) {
    try {
      const bytes = await readFile(file);
      const meta = await sharp(bytes).metadata();
      widths.push(meta.autoOrient?.width ?? meta.width ?? 0);
      heights.push(meta.autoOrient?.height ?? meta.height ?? 0);
      // JPEG noise makes grey images differ by a level or two; real colour differs by far more.
      if (!colour && (meta.channels ?? 1) >= 3) colour = (await colourSpread(bytes)) > 12;
    } catch {
      // Left for loading to report.
    }
  }
  return { sampled: widths.length, width: median(widths), height: median(heights), colour };
}

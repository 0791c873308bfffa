// Reads Fashion-MNIST from the IDX files of Debian's dataset-fashion-mnist.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { ImageSet } from '../server/ml/dataset.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

async function readIdx(file: string): Promise<{ dims: number[]; data: Uint8Array }> {
  let buf = await readFile(file);
  if (file.endsWith('.gz')) buf = gunzipSync(buf);
  const magic = buf.readUInt32BE(0);
  if (magic >> 8 !== 0x08) throw new Error(`${file}: not an unsigned-byte IDX file`);
  const rank = magic & 0xff;
  const dims = Array.from({ length: rank }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + 4 + 4 * rank, dims.reduce((a, b) => a * b)) };
}

export interface LabelledImages {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

export async function loadSplit(split: 'train' | 't10k', dir = FASHION_MNIST_DIR): Promise<LabelledImages> {
  const images = await readIdx(path.join(dir, `${split}-images-idx3-ubyte.gz`));
  const labels = await readIdx(path.join(dir, `${split}-labels-idx1-ubyte.gz`));
  return { images: images.data, labels: labels.data, count: labels.dims[0] };
}

/** The images whose label satisfies `keep`, as a 28x28x1 set scaled to [0, 1]. */
export function select(src: LabelledImages, keep: (label: number) => boolean): ImageSet {
  const p = 28 * 28;
  const idx: number[] = [];
  for (let i = 0; i < src.count; i++) if (keep(src.labels[i])) idx.push(i);
  const data = new Float32Array(idx.length * p);
  idx.forEach((i, k) => {
    for (let j = 0; j < p; j++) data[k * p + j] = src.images[i * p + j] / 255;
  });
  return { data, count: idx.length, size: 28, channels: 1 };
}

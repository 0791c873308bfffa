// Rough memory a training run will need, so that options which cannot fit are
// refused with a clear message before a worker dies inside wasm. Estimates
// err on the high side; they bound, they do not predict.
import { filtersAt, levelSizes } from './vae.js';

export interface MemoryShape {
  size: number;
  channels: number;
  latent: number;
  baseFilters: number;
  batchSize: number;
}

/** Trainable parameters of the VAE built from these options. */
export function vaeParameters(o: MemoryShape): number {
  const sizes = levelSizes(o.size);
  const levels = sizes.length - 1;
  const top = sizes[levels];
  let n = 0;
  let cin = o.channels;
  for (let i = 0; i < levels; i++) {
    const f = filtersAt(i, o.baseFilters);
    n += 2 * 16 * cin * f; // encoder kernel and its mirror in the decoder
    cin = f;
  }
  // Biases: each encoder level's filters; the decoder's levels below the top, then the output channels.
  for (let i = 0; i < levels; i++) n += filtersAt(i, o.baseFilters);
  for (let i = 0; i < levels - 1; i++) n += filtersAt(i, o.baseFilters);
  n += o.channels;
  const flat = top * top * filtersAt(levels - 1, o.baseFilters);
  n += 2 * (flat * o.latent + o.latent); // mu, log sigma²
  n += o.latent * flat + flat; // decoder dense
  return n;
}

/** Floats of activations one image produces in the forward pass (encoder and decoder). */
export function activationsPerImage(o: MemoryShape): number {
  const sizes = levelSizes(o.size);
  let n = 2 * o.size * o.size * o.channels; // input and reconstruction
  for (let i = 1; i < sizes.length; i++) n += 2 * sizes[i] * sizes[i] * filtersAt(i - 1, o.baseFilters);
  return n;
}

/**
 * Bytes inside the TensorFlow.js backend for one training step: weights with
 * their gradients and two Adam moments, and the batch's activations kept for
 * the backward pass plus as much again for gradients and kernel temporaries.
 */
export function trainingStepBytes(o: MemoryShape): number {
  return 4 * (4 * vaeParameters(o) + 4 * o.batchSize * activationsPerImage(o));
}

/**
 * Peak bytes of the decoded training set (Float32 pixels): held twice, while
 * decoding (per-image arrays and the joined buffer) and while fitting (the
 * whole set and its train and validation copies).
 */
export function datasetBytes(o: Pick<MemoryShape, 'size' | 'channels'> & { resolution?: number | null }, images: number): number {
  // A tiled model holds each image at its working resolution (longer side = resolution).
  const side = o.resolution ?? o.size;
  return 2 * 4 * images * side * side * o.channels;
}

/** A wasm heap is at most 4 GiB; leave room for the allocator and the scoring path. */
export const MAX_STEP_BYTES = 2 * 1024 ** 3;
/** Decoded images live in the worker's memory for the whole run (peak, see datasetBytes). */
export const MAX_DATASET_BYTES = 8 * 1024 ** 3;

export const gib = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;

// The convolutional VAE as two Layers models over an options object.
// Encoder: strided 4x4 convolutions down to <= 8x8, then dense mu and log sigma².
// Decoder: dense back to that grid, 4x4 transposed convolutions up, sigmoid means.
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../domain/errors.js';

export interface VaeOptions {
  /** Square input side, 28 to 128, divisible by 4. */
  size: number;
  channels: 1 | 3;
  latent: number;
  /** Filters of the first convolution; doubles per level, capped at 8x. */
  baseFilters: number;
  seed: number;
}

export interface Vae {
  /** x -> [mu, logVar] */
  encoder: tf.LayersModel;
  /** z -> pixel means in [0, 1] */
  decoder: tf.LayersModel;
  /** Both, wired x -> [mu, logVar, decoder(mu)]: the unit that is saved and loaded. */
  model: tf.LayersModel;
}

export function validateVaeOptions(o: VaeOptions): void {
  const bad = (msg: string) => new AppError('invalid_option', msg);
  if (!Number.isInteger(o.size) || o.size < 28 || o.size > 128 || o.size % 4 !== 0) {
    throw bad(`--size must be an integer from 28 to 128 divisible by 4, got ${o.size}`);
  }
  if (o.channels !== 1 && o.channels !== 3) throw bad(`--channels must be 1 or 3, got ${o.channels}`);
  if (!Number.isInteger(o.latent) || o.latent < 1 || o.latent > 512) {
    throw bad(`--latent must be an integer from 1 to 512, got ${o.latent}`);
  }
  if (!Number.isInteger(o.baseFilters) || o.baseFilters < 4 || o.baseFilters > 128) {
    throw bad(`--filters must be an integer from 4 to 128, got ${o.baseFilters}`);
  }
}

/** Spatial sides from the input down: halve while even and above 8 (28 -> 14 -> 7). */
export function levelSizes(size: number): number[] {
  const sizes = [size];
  while (sizes[sizes.length - 1] % 2 === 0 && sizes[sizes.length - 1] > 8) {
    sizes.push(sizes[sizes.length - 1] / 2);
  }
  return sizes;
}

/** Filters of encoder level `level`: doubling per level, capped at 8x the base. */
export function filtersAt(level: number, base: number): number {
  return base * Math.min(2 ** level, 8);
}

export function createVae(o: VaeOptions): Vae {
  validateVaeOptions(o);
  let seed = o.seed;
  const init = () => tf.initializers.heNormal({ seed: seed++ });
  const glorot = () => tf.initializers.glorotUniform({ seed: seed++ });
  const sizes = levelSizes(o.size);
  const levels = sizes.length - 1;
  const top = sizes[levels];
  const topFilters = filtersAt(levels - 1, o.baseFilters);

  // Every resolution change is a 4x4, stride-2 convolution (or its transpose), ReLU.
  const strided = (filters: number, name: string) => ({ filters, kernelSize: 4, strides: 2, padding: 'same' as const, activation: 'relu' as const, kernelInitializer: init(), name });

  const x = tf.input({ shape: [o.size, o.size, o.channels], name: 'image' });
  let h: tf.SymbolicTensor = x;
  for (let i = 0; i < levels; i++) {
    h = tf.layers.conv2d(strided(filtersAt(i, o.baseFilters), `enc_conv${i}`)).apply(h) as tf.SymbolicTensor;
  }
  const flat = tf.layers.flatten({ name: 'enc_flatten' }).apply(h) as tf.SymbolicTensor;
  const mu = tf.layers
    .dense({ units: o.latent, kernelInitializer: glorot(), name: 'mu' })
    .apply(flat) as tf.SymbolicTensor;
  const logVar = tf.layers
    .dense({ units: o.latent, kernelInitializer: 'zeros', name: 'log_var' })
    .apply(flat) as tf.SymbolicTensor;
  const encoder = tf.model({ inputs: x, outputs: [mu, logVar], name: 'encoder' });

  const z = tf.input({ shape: [o.latent], name: 'z' });
  let g = tf.layers
    .dense({ units: top * top * topFilters, activation: 'relu', kernelInitializer: init(), name: 'dec_dense' })
    .apply(z) as tf.SymbolicTensor;
  g = tf.layers.reshape({ targetShape: [top, top, topFilters], name: 'dec_reshape' }).apply(g) as tf.SymbolicTensor;
  for (let i = levels - 2; i >= 0; i--) {
    g = tf.layers.conv2dTranspose(strided(filtersAt(i, o.baseFilters), `dec_deconv${i + 1}`)).apply(g) as tf.SymbolicTensor;
  }
  const means = tf.layers
    .conv2dTranspose({
      filters: o.channels,
      kernelSize: 4,
      strides: 2,
      padding: 'same',
      activation: 'sigmoid',
      kernelInitializer: glorot(),
      name: 'dec_out',
    })
    .apply(g) as tf.SymbolicTensor;
  const decoder = tf.model({ inputs: z, outputs: means, name: 'decoder' });

  return { encoder, decoder, model: wire(encoder, decoder, o) };
}

function wire(encoder: tf.LayersModel, decoder: tf.LayersModel, o: VaeOptions): tf.LayersModel {
  const x = tf.input({ shape: [o.size, o.size, o.channels], name: 'input' });
  const [mu, logVar] = encoder.apply(x) as tf.SymbolicTensor[];
  const xHat = decoder.apply(mu) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: [mu, logVar, xHat], name: 'vae' });
}

/**
 * x -> [mu, logVar, decoder(mu)] for inference, in one pass over the whole
 * batch. `model.predict` gives the same numbers but runs a nested model once
 * per output it feeds (the encoder twice) and splits batches into 32s: the
 * encoder is over half of a scoring pass.
 */
export function forward(vae: Vae, x: tf.Tensor4D): [tf.Tensor2D, tf.Tensor2D, tf.Tensor4D] {
  const [mu, logVar] = vae.encoder.apply(x, { training: false }) as tf.Tensor2D[];
  return [mu, logVar, vae.decoder.apply(mu, { training: false }) as tf.Tensor4D];
}

/** Recovers encoder and decoder from a loaded `model` (see model-store.ts). */
export function vaeFromModel(model: tf.LayersModel): Vae {
  const encoder = model.getLayer('encoder') as unknown as tf.LayersModel;
  const decoder = model.getLayer('decoder') as unknown as tf.LayersModel;
  return { encoder, decoder, model };
}

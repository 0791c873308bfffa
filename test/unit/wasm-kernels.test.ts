import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it, beforeAll } from 'vitest';
import { registerWasmConvKernels, useBackpropFilter, useBackpropInput, useStockBatchMatMul, type BackpropFilterVariant, type BackpropInputVariant } from '../../server/ml/wasm-kernels.js';
import { mulberry32 } from '../../server/ml/random.js';

interface Case {
  n: number; h: number; w: number; cin: number; cout: number;
  k: number; stride: number; pad: 'same' | 'valid';
}

const cases: Case[] = [];
for (const stride of [1, 2]) {
  for (const pad of ['same', 'valid'] as const) {
    for (const k of [1, 3]) {
      for (const [cin, cout] of [[1, 4], [3, 8], [8, 5]]) {
        cases.push({ n: 2, h: stride === 2 ? 9 : 7, w: 8, cin, cout, k, stride, pad });
      }
    }
  }
}
// A 4x4 kernel with stride 2 (the decoder's upsampling shape), at the model's
// sides (28 -> 14 -> 7), odd and non-square sides, and 'valid'.
cases.push({ n: 3, h: 8, w: 8, cin: 6, cout: 4, k: 4, stride: 2, pad: 'same' });
cases.push({ n: 2, h: 14, w: 14, cin: 8, cout: 16, k: 4, stride: 2, pad: 'same' });
cases.push({ n: 2, h: 28, w: 28, cin: 1, cout: 8, k: 4, stride: 2, pad: 'same' });
// The first layer at 64 px: the matrix-product filter gradient sums over chunks of images (2 + 1).
cases.push({ n: 3, h: 64, w: 64, cin: 1, cout: 32, k: 4, stride: 2, pad: 'same' });
cases.push({ n: 2, h: 7, w: 9, cin: 3, cout: 5, k: 4, stride: 2, pad: 'same' });
cases.push({ n: 2, h: 9, w: 10, cin: 5, cout: 3, k: 4, stride: 2, pad: 'valid' });
cases.push({ n: 1, h: 8, w: 7, cin: 20, cout: 17, k: 2, stride: 2, pad: 'valid' });
// Stride 3: phases with different tap counts, and phases no tap reaches (k < stride).
cases.push({ n: 2, h: 10, w: 11, cin: 3, cout: 4, k: 5, stride: 3, pad: 'same' });
cases.push({ n: 2, h: 11, w: 10, cin: 4, cout: 3, k: 2, stride: 3, pad: 'valid' });

function randomArray(size: number, rand: () => number): Float32Array {
  const a = new Float32Array(size);
  for (let i = 0; i < size; i++) a[i] = rand() * 2 - 1;
  return a;
}

/** dx and dW of sum(conv2d(x, W) * dy) on the current backend. */
function gradients(c: Case, x: Float32Array, wt: Float32Array, dyData: Float32Array) {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, [c.n, c.h, c.w, c.cin]);
    const ft = tf.tensor4d(wt, [c.k, c.k, c.cin, c.cout]);
    const outShape = tf.conv2d(xt, ft, c.stride, c.pad).shape;
    const dy = tf.tensor4d(dyData.subarray(0, outShape.reduce((a, b) => a * b)), outShape);
    const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.conv2d(a, b, c.stride, c.pad).mul(dy).sum();
    const [dx, dw] = tf.grads(f as (...args: tf.Tensor[]) => tf.Scalar)([xt, ft]);
    // conv2dTranspose is Conv2DBackpropInput run forward (the decoder's path).
    const tr = tf.conv2dTranspose(dy, ft, [c.n, c.h, c.w, c.cin], c.stride, c.pad);
    return [dx, dw, tr].map((t) => Float32Array.from(t.dataSync()));
  });
}

function maxRelativeError(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let err = 0;
  for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
  return err / Math.max(scale, 1e-12);
}

describe('wasm convolution gradient kernels', () => {
  beforeAll(async () => {
    registerWasmConvKernels();
  });

  it.each(cases)(
    'match cpu gradients: n=$n $h x $w cin=$cin cout=$cout k=$k stride=$stride $pad',
    async (c) => {
      const rand = mulberry32(c.h * 100 + c.k * 10 + c.cin + c.stride + (c.pad === 'same' ? 7 : 0));
      const x = randomArray(c.n * c.h * c.w * c.cin, rand);
      const wt = randomArray(c.k * c.k * c.cin * c.cout, rand);
      const dy = randomArray(c.n * c.h * c.w * c.cout, rand);

      await tf.setBackend('cpu');
      const expected = gradients(c, x, wt, dy);
      await tf.setBackend('wasm');
      // The default (sub-pixel) Conv2DBackpropInput and the zero-insertion one kept for A/B
      // benchmarks; both Conv2DBackpropFilter paths ('auto', the default, picks per shape).
      const variants: [BackpropInputVariant, BackpropFilterVariant][] = [['zero-insertion', 'gemm'], ['sub-pixel', 'dilated-conv'], ['sub-pixel', 'auto']];
      for (const [input, filter] of variants) {
        useBackpropInput(input);
        useBackpropFilter(filter);
        const before = tf.memory().numTensors;
        const actual = gradients(c, x, wt, dy);
        expect(tf.memory().numTensors).toBe(before);
        for (let i = 0; i < 3; i++) {
          expect(actual[i].length).toBe(expected[i].length);
          expect(maxRelativeError(actual[i], expected[i]), `${input}/${filter} output ${i}`).toBeLessThanOrEqual(1e-4);
        }
      }
    },
  );
});

describe('wasm BatchMatMul with transposed operands', () => {
  beforeAll(async () => {
    registerWasmConvKernels();
  });

  const shapes: { a: number[]; b: number[]; ta: boolean; tb: boolean }[] = [
    { a: [64, 300], b: [64, 32], ta: true, tb: false }, // dense dW = xᵀ·dy
    { a: [64, 32], b: [300, 32], ta: false, tb: true }, // dense dx = dy·Wᵀ
    { a: [37, 5], b: [3, 37], ta: true, tb: true },
    { a: [3, 7, 5], b: [3, 7, 4], ta: true, tb: false },
    { a: [1, 6, 9], b: [2, 4, 9], ta: false, tb: true }, // broadcast batch
    { a: [6, 9], b: [9, 4], ta: false, tb: false },
  ];

  it.each(shapes)('matches cpu: a=$a b=$b transposeA=$ta transposeB=$tb', async (c) => {
    const rand = mulberry32(c.a.length * 31 + c.a[0]);
    const a = randomArray(c.a.reduce((x, y) => x * y), rand);
    const b = randomArray(c.b.reduce((x, y) => x * y), rand);
    const run = () => tf.tidy(() => Float32Array.from(tf.matMul(tf.tensor(a, c.a), tf.tensor(b, c.b), c.ta, c.tb).dataSync()));
    await tf.setBackend('cpu');
    const expected = run();
    await tf.setBackend('wasm');
    for (const stock of [true, false]) {
      useStockBatchMatMul(stock);
      const before = tf.memory().numTensors;
      const actual = run();
      expect(tf.memory().numTensors).toBe(before);
      expect(actual.length).toBe(expected.length);
      expect(maxRelativeError(actual, expected), stock ? 'stock' : 'wrapper').toBeLessThanOrEqual(1e-5);
    }
  });

  it('gives the dense layer gradients of the cpu backend', async () => {
    const rand = mulberry32(7);
    const x = randomArray(16 * 50, rand);
    const w = randomArray(50 * 8, rand);
    const run = () => tf.tidy(() => {
      const f = (xt: tf.Tensor, wt: tf.Tensor) => tf.matMul(xt, wt).square().sum() as tf.Scalar;
      return tf.grads(f)([tf.tensor2d(x, [16, 50]), tf.tensor2d(w, [50, 8])]).map((g) => Float32Array.from(g.dataSync()));
    });
    await tf.setBackend('cpu');
    const expected = run();
    await tf.setBackend('wasm');
    const actual = run();
    for (let i = 0; i < 2; i++) expect(maxRelativeError(actual[i], expected[i])).toBeLessThanOrEqual(1e-5);
  });
});

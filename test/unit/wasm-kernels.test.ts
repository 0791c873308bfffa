import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it, beforeAll } from 'vitest';
import { registerWasmConvKernels } from '../../server/ml/wasm-kernels.js';
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
// A 4x4 kernel with stride 2 (the decoder's upsampling shape).
cases.push({ n: 3, h: 8, w: 8, cin: 6, cout: 4, k: 4, stride: 2, pad: 'same' });

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
      const before = tf.memory().numTensors;
      const actual = gradients(c, x, wt, dy);
      expect(tf.memory().numTensors).toBe(before);
      for (let i = 0; i < 3; i++) {
        expect(actual[i].length).toBe(expected[i].length);
        expect(maxRelativeError(actual[i], expected[i])).toBeLessThanOrEqual(1e-4);
      }
    },
  );
});

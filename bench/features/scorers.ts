// Anomaly scorers on frozen CNN patch features (bench/features.ts), fit on
// normal images only:
//   PatchBank - PatchCore-lite: a memory bank of training patch features
//               (random or greedy-coreset subsample), each test patch scored by
//               its nearest neighbour's distance.
//   PositionGaussian - PaDiM-lite: one Gaussian per grid position (mean and
//               full covariance + 0.01 I), each test patch scored by its
//               Mahalanobis distance.
// Both return a patch score map per image; imageScores turns it into the
// image scores compared (max, mean of the worst 1 %).
import * as tf from '@tensorflow/tfjs';
import type { FeatureBatch } from './backbone.js';

/** Image scores from one patch-score map. */
export function imageScores(map: Float32Array): { max: number; top1: number } {
  const sorted = Float32Array.from(map).sort();
  const k = Math.max(1, Math.round(0.01 * sorted.length));
  let s = 0;
  for (let i = sorted.length - k; i < sorted.length; i++) s += sorted[i];
  return { max: sorted[sorted.length - 1], top1: s / k };
}

/** Reservoir of training patches, a fixed number drawn at random from every image. */
export class PatchPool {
  rows: Float32Array;
  count = 0;
  constructor(readonly d: number, readonly perImage: number, capacity: number, private readonly rand: () => number) {
    this.rows = new Float32Array(capacity * d);
  }
  add(f: FeatureBatch): void {
    const hw = f.h * f.w;
    for (let n = 0; n < f.count; n++) {
      for (let k = 0; k < this.perImage; k++) {
        if ((this.count + 1) * this.d > this.rows.length) {
          const grown = new Float32Array(this.rows.length * 2);
          grown.set(this.rows);
          this.rows = grown;
        }
        const p = Math.floor(this.rand() * hw);
        this.rows.set(f.data.subarray((n * hw + p) * f.d, (n * hw + p + 1) * f.d), this.count * this.d);
        this.count++;
      }
    }
  }
}

/**
 * PatchCore's greedy coreset: repeatedly take the pool row farthest from
 * everything taken so far. Distances are measured after a seeded Gaussian
 * random projection to `projDims` (as PatchCore does) when d is larger.
 */
export function greedyCoreset(pool: PatchPool, m: number, rand: () => number, projDims = 128): Int32Array {
  const { d, count: n } = pool;
  if (m >= n) return Int32Array.from({ length: n }, (_, i) => i);
  let rows = pool.rows;
  let e = d;
  if (d > projDims) {
    e = projDims;
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const proj = new Float32Array(d * e).map(() => gauss() / Math.sqrt(e));
    rows = new Float32Array(n * e);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        const v = pool.rows[i * d + j];
        if (v === 0) continue;
        for (let k = 0; k < e; k++) rows[i * e + k] += v * proj[j * e + k];
      }
    }
  }
  const minD = new Float64Array(n).fill(Infinity);
  const chosen = new Int32Array(m);
  let c = Math.floor(rand() * n);
  for (let t = 0; t < m; t++) {
    chosen[t] = c;
    const o = c * e;
    let best = -1;
    let next = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      const q = i * e;
      for (let k = 0; k < e; k++) {
        const z = rows[q + k] - rows[o + k];
        s += z * z;
      }
      if (s < minD[i]) minD[i] = s;
      if (minD[i] > best) {
        best = minD[i];
        next = i;
      }
    }
    c = next;
  }
  return chosen;
}

export class PatchBank {
  /** [d + 1, size]: the bank transposed, times -2, with |b|^2 as the last row (tfjs wasm multiplies
   * 8-15x faster without transposeB, and one matMul then gives |b|^2 - 2 x.b). */
  private readonly aug: tf.Tensor2D;
  constructor(rows: Float32Array, readonly size: number, readonly d: number) {
    const t = new Float32Array((d + 1) * size);
    for (let i = 0; i < size; i++) {
      let sq = 0;
      for (let j = 0; j < d; j++) {
        const x = rows[i * d + j];
        t[j * size + i] = -2 * x;
        sq += x * x;
      }
      t[d * size + i] = sq;
    }
    this.aug = tf.tensor2d(t, [d + 1, size]);
  }
  static from(pool: PatchPool, indices: Int32Array): PatchBank {
    const rows = new Float32Array(indices.length * pool.d);
    indices.forEach((r, i) => rows.set(pool.rows.subarray(r * pool.d, (r + 1) * pool.d), i * pool.d));
    return new PatchBank(rows, indices.length, pool.d);
  }
  /** Nearest-neighbour distance of every patch of image n of f. */
  score(f: FeatureBatch, n: number): Float32Array {
    const hw = f.h * f.w;
    const d = f.d;
    const x = new Float32Array(hw * (d + 1));
    const sq = new Float32Array(hw);
    for (let p = 0; p < hw; p++) {
      const o = (n * hw + p) * d;
      let s = 0;
      for (let j = 0; j < d; j++) {
        const z = f.data[o + j];
        x[p * (d + 1) + j] = z;
        s += z * z;
      }
      x[p * (d + 1) + d] = 1;
      sq[p] = s;
    }
    const out = tf.tidy(() => tf.matMul(tf.tensor2d(x, [hw, d + 1]), this.aug).min(1));
    const m = out.dataSync() as Float32Array;
    out.dispose();
    for (let p = 0; p < hw; p++) m[p] = Math.sqrt(Math.max(0, m[p] + sq[p]));
    return m;
  }
  dispose(): void {
    this.aug.dispose();
  }
}

/** Per-position Gaussian over `keep` channels (all when null), fit incrementally, shifted for stability. */
export class PositionGaussian {
  private hw = 0;
  private n = 0;
  private shift!: Float64Array;
  private s1!: Float64Array;
  private s2!: Float64Array;
  private mean!: Float64Array;
  private chol!: Float64Array;
  readonly e: number;
  constructor(readonly d: number, private readonly keep: Int32Array | null, readonly eps = 0.01) {
    this.e = keep ? keep.length : d;
  }
  private pick(f: FeatureBatch, n: number, p: number, into: Float64Array): void {
    const o = (n * f.h * f.w + p) * f.d;
    if (this.keep) for (let j = 0; j < this.e; j++) into[j] = f.data[o + this.keep[j]];
    else for (let j = 0; j < this.e; j++) into[j] = f.data[o + j];
  }
  add(f: FeatureBatch): void {
    const e = this.e;
    if (this.n === 0) {
      this.hw = f.h * f.w;
      this.shift = new Float64Array(this.hw * e);
      this.s1 = new Float64Array(this.hw * e);
      this.s2 = new Float64Array(this.hw * e * e);
      const v = new Float64Array(e);
      for (let p = 0; p < this.hw; p++) {
        this.pick(f, 0, p, v);
        this.shift.set(v, p * e);
      }
    }
    const v = new Float64Array(e);
    for (let n = 0; n < f.count; n++) {
      for (let p = 0; p < this.hw; p++) {
        this.pick(f, n, p, v);
        for (let j = 0; j < e; j++) v[j] -= this.shift[p * e + j];
        const o1 = p * e;
        const o2 = p * e * e;
        for (let i = 0; i < e; i++) {
          const vi = v[i];
          this.s1[o1 + i] += vi;
          const r = o2 + i * e;
          for (let j = i; j < e; j++) this.s2[r + j] += vi * v[j];
        }
      }
      this.n++;
    }
  }
  /** Means and Cholesky factors of the covariances. */
  finish(): void {
    const { e, n, hw } = this;
    this.mean = new Float64Array(hw * e);
    this.chol = new Float64Array(hw * e * e);
    const c = new Float64Array(e * e);
    for (let p = 0; p < hw; p++) {
      const m = this.s1.subarray(p * e, (p + 1) * e).map((s) => s / n);
      for (let i = 0; i < e; i++) {
        this.mean[p * e + i] = m[i] + this.shift[p * e + i];
        for (let j = i; j < e; j++) {
          // Unbiased covariance, as PaDiM (np.cov).
          const v = (this.s2[p * e * e + i * e + j] - n * m[i] * m[j]) / (n - 1) + (i === j ? this.eps : 0);
          c[i * e + j] = v;
          c[j * e + i] = v;
        }
      }
      const L = this.chol.subarray(p * e * e, (p + 1) * e * e);
      for (let i = 0; i < e; i++) {
        for (let j = 0; j <= i; j++) {
          let s = c[i * e + j];
          for (let k = 0; k < j; k++) s -= L[i * e + k] * L[j * e + k];
          L[i * e + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / L[j * e + j];
        }
      }
    }
    this.s2 = new Float64Array(0);
  }
  /** Mahalanobis distance of every patch of image n of f. */
  score(f: FeatureBatch, n: number): Float32Array {
    const { e, hw } = this;
    const out = new Float32Array(hw);
    const v = new Float64Array(e);
    const y = new Float64Array(e);
    for (let p = 0; p < hw; p++) {
      this.pick(f, n, p, v);
      const L = this.chol.subarray(p * e * e, (p + 1) * e * e);
      let q = 0;
      for (let i = 0; i < e; i++) {
        let s = v[i] - this.mean[p * e + i];
        for (let k = 0; k < i; k++) s -= L[i * e + k] * y[k];
        y[i] = s / L[i * e + i];
        q += y[i] * y[i];
      }
      out[p] = Math.sqrt(q);
    }
    return out;
  }
  /** Bytes the fitted model holds (means and Cholesky factors, float64). */
  get bytes(): number {
    return (this.mean.length + this.chol.length) * 8;
  }
}

/**
 * DFR-lite: an autoencoder on patch feature vectors (1x1 convolutions, i.e.
 * dense layers per position: d -> d/2 -> d/4 -> d/2 -> d), trained on the
 * training patch pool with channels standardised; a patch's score is its
 * squared reconstruction error.
 */
export class FeatureAutoencoder {
  private readonly model: tf.Sequential;
  private readonly mean: Float32Array;
  private readonly std: Float32Array;
  constructor(readonly d: number, seed: number) {
    const init = (s: number) => tf.initializers.glorotUniform({ seed: seed + s });
    this.model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [d], units: Math.round(d / 2), activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.dense({ units: Math.round(d / 4), activation: 'relu', kernelInitializer: init(2) }),
        tf.layers.dense({ units: Math.round(d / 2), activation: 'relu', kernelInitializer: init(3) }),
        tf.layers.dense({ units: d, kernelInitializer: init(4) }),
      ],
    });
    this.mean = new Float32Array(d);
    this.std = new Float32Array(d).fill(1);
  }
  async fit(pool: PatchPool, epochs: number, batchSize = 256): Promise<number> {
    const { d, count: n } = pool;
    for (let j = 0; j < d; j++) {
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        const v = pool.rows[i * d + j];
        s += v;
        s2 += v * v;
      }
      this.mean[j] = s / n;
      this.std[j] = Math.sqrt(Math.max(s2 / n - (s / n) ** 2, 1e-6));
    }
    const x = tf.tensor2d(this.standardise(pool.rows.subarray(0, n * d), n), [n, d]);
    this.model.compile({ optimizer: tf.train.adam(1e-3), loss: 'meanSquaredError' });
    const h = await this.model.fit(x, x, { epochs, batchSize, shuffle: true, verbose: 0 });
    x.dispose();
    return (h.history.loss as number[]).at(-1)!;
  }
  private standardise(rows: Float32Array, n: number): Float32Array {
    const out = new Float32Array(n * this.d);
    for (let i = 0; i < n; i++) for (let j = 0; j < this.d; j++) out[i * this.d + j] = (rows[i * this.d + j] - this.mean[j]) / this.std[j];
    return out;
  }
  score(f: FeatureBatch, n: number): Float32Array {
    const hw = f.h * f.w;
    const out = tf.tidy(() => {
      const x = tf.tensor2d(this.standardise(f.data.subarray(n * hw * f.d, (n + 1) * hw * f.d), hw), [hw, f.d]);
      return (this.model.predict(x) as tf.Tensor2D).sub(x).square().sum(1);
    });
    const data = out.dataSync() as Float32Array;
    out.dispose();
    return data;
  }
}

// A frozen, ImageNet-pretrained MobileNetV2 as a patch-feature extractor, for
// the feature-space detection benchmark (bench/features.ts).
//
// The weights come from the npm package nsfwjs (MIT), which ships a Keras
// MobileNetV2 (alpha 1.0, 224x224, keras 2.2.4, weights uint8-quantised) as
// browserify bundles: dist/models/mobilenet_v2/model.min.js exports the
// model.json object and group1-shard1of1.min.js the weight shard as a base64
// string. Its layer config marks every layer up to block_10 `trainable: false`
// (frozen ImageNet weights); blocks 11-16 and the head were fine-tuned on NSFW
// classes and are not used here. A plain model.json + .bin shards folder works
// too. Nothing is downloaded: tf.io.fromMemory on the files read from disk.
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../server/ml/dataset.js';

export const DEFAULT_WEIGHTS = '/work/features-deps/node_modules/nsfwjs/dist/models/mobilenet_v2';

export interface WeightsInfo {
  dir: string;
  format: 'nsfwjs-bundle' | 'model.json';
  /** Weight bytes of the layers kept (as stored: quantised) and of the whole file. */
  bytes: number;
  totalBytes: number;
  layers: number;
  lastLayer: string;
  /** Kept layers marked trainable in the stored config (fine-tuned, not ImageNet); none expected. */
  thawed: string[];
  quantization: string[];
}

/** Reads model.json + shards (or nsfwjs's JS bundles of them) from `dir`; fails clearly when absent. */
export async function loadBackbone(dir: string, size: number, lastLayer = 'block_10_project_BN'): Promise<{ model: tf.LayersModel; info: WeightsInfo }> {
  if (!existsSync(dir)) {
    throw new Error(
      `feature weights not found at ${dir}. Install them outside the repository:\n` +
        `  mkdir -p /work/features-deps && cd /work/features-deps && npm init -y && npm install nsfwjs --ignore-scripts\n` +
        `then pass --weights <node_modules/nsfwjs/dist/models/mobilenet_v2> or set LATENTWATCH_FEATURE_WEIGHTS.`,
    );
  }
  let modelJson: { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
  let shard: (p: string) => Promise<Uint8Array>;
  let format: WeightsInfo['format'];
  if (existsSync(path.join(dir, 'model.json'))) {
    format = 'model.json';
    modelJson = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    shard = async (p) => new Uint8Array(await readFile(path.join(dir, p)));
  } else if (existsSync(path.join(dir, 'model.min.js'))) {
    format = 'nsfwjs-bundle';
    const require = createRequire(path.join(dir, 'model.min.js'));
    const unwrap = (m: unknown) => ((m as { default?: unknown }).default ?? m);
    modelJson = unwrap(require(path.join(dir, 'model.min.js'))) as typeof modelJson;
    shard = async (p) => {
      const b64 = unwrap(require(path.join(dir, `${p}.min.js`)));
      if (typeof b64 !== 'string') throw new Error(`${dir}/${p}.min.js does not export a base64 string`);
      return new Uint8Array(Buffer.from(b64, 'base64'));
    };
  } else {
    throw new Error(`${dir} holds neither model.json nor nsfwjs's model.min.js (files: ${(await readdir(dir)).join(', ')})`);
  }
  // Keep the layers up to `lastLayer` only (the frozen ImageNet part), with their
  // weights, and let the input be any square size.
  const topology = structuredClone(modelJson.modelTopology) as {
    model_config: { config: { layers: { name: string; class_name: string; config: Record<string, unknown> }[]; output_layers: unknown[] } };
  };
  const layers = topology.model_config.config.layers;
  const last = layers.findIndex((l) => l.name === lastLayer);
  if (last < 0) throw new Error(`no layer ${lastLayer} in ${dir}`);
  const kept = layers.slice(0, last + 1);
  const thawed = kept.filter((l) => l.config.trainable === true).map((l) => l.name);
  kept[0].config.batch_input_shape = [null, size, size, 3];
  topology.model_config.config.layers = kept;
  topology.model_config.config.output_layers = [[lastLayer, 0, 0]];
  const keptNames = new Set(kept.map((l) => l.name));
  const bytesPer: Record<string, number> = { uint8: 1, uint16: 2, float16: 2, float32: 4, int32: 4 };
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  let totalBytes = 0;
  for (const group of modelJson.weightsManifest) {
    const shards: Uint8Array[] = [];
    for (const p of group.paths) shards.push(await shard(p));
    const data = new Uint8Array(shards.reduce((a, b) => a + b.length, 0));
    let o = 0;
    for (const b of shards) {
      data.set(b, o);
      o += b.length;
    }
    totalBytes += data.length;
    o = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1) * bytesPer[w.quantization?.dtype ?? w.dtype];
      if (keptNames.has(w.name.split('/')[0])) {
        weightSpecs.push(w);
        parts.push(data.subarray(o, o + n));
      }
      o += n;
    }
    if (o !== data.length) throw new Error(`weight manifest of ${dir} does not match its shards (${o} != ${data.length} bytes)`);
  }
  const bytes = parts.reduce((a, b) => a + b.length, 0);
  const weightData = new Uint8Array(bytes);
  let o = 0;
  for (const p of parts) {
    weightData.set(p, o);
    o += p.length;
  }
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs, weightData: weightData.buffer }));
  const quantization = [...new Set(weightSpecs.map((w) => w.quantization?.dtype ?? w.dtype))];
  return { model, info: { dir, format, bytes, totalBytes, layers: kept.length, lastLayer, thawed, quantization } };
}

export type Normalisation = 'imagenet' | 'unit';

export interface ExtractorOptions {
  /** Layer names whose outputs are concatenated, finest first (the first sets the grid). */
  layers: string[];
  /** Square input side fed to the network. */
  size: number;
  /** imagenet: pixels to [-1, 1] as Keras's MobileNetV2 was trained; unit: [0, 1] as nsfwjs feeds it. */
  norm: Normalisation;
  /** Average-pool each map over k x k neighbours (stride 1) before concatenating; 1 = off. */
  pool: number;
  /** Keep this many randomly chosen channels of the concatenation (PaDiM's reduction); 0 = all. */
  dims: number;
  seed: number;
}

export interface FeatureBatch {
  /** [count, h, w, d] row-major. */
  data: Float32Array;
  count: number;
  h: number;
  w: number;
  d: number;
}

export class Extractor {
  readonly net: tf.LayersModel;
  readonly channels: number[];
  private readonly keep: Int32Array | null;
  readonly d: number;

  constructor(backbone: tf.LayersModel, readonly o: ExtractorOptions) {
    const outputs = o.layers.map((name) => {
      const layer = backbone.layers.find((l) => l.name === name);
      if (!layer) throw new Error(`no layer ${name} in the backbone`);
      return layer.output as tf.SymbolicTensor;
    });
    this.net = tf.model({ inputs: backbone.inputs, outputs });
    this.channels = outputs.map((t) => t.shape[3] as number);
    const total = this.channels.reduce((a, b) => a + b, 0);
    if (o.dims > 0 && o.dims < total) {
      // Seeded choice of channels, kept in ascending order.
      let s = o.seed >>> 0;
      const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
      const idx = Array.from({ length: total }, (_, i) => i);
      for (let i = total - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [idx[i], idx[j]] = [idx[j], idx[i]];
      }
      this.keep = Int32Array.from(idx.slice(0, o.dims).sort((a, b) => a - b));
      this.d = o.dims;
    } else {
      this.keep = null;
      this.d = total;
    }
  }

  /** Features of images [0, 1] (1 or 3 channels, any square size: resized to o.size). */
  extract(set: ImageSet): FeatureBatch {
    const out = tf.tidy(() => {
      let x = tf.tensor4d(set.data, [set.count, set.size, set.size, set.channels]);
      if (set.channels === 1) x = tf.tile(x, [1, 1, 1, 3]);
      if (set.size !== this.o.size) x = tf.image.resizeBilinear(x, [this.o.size, this.o.size]);
      x = this.o.norm === 'imagenet' ? x.mul(2).sub(1) : x;
      let maps = this.net.predict(x) as tf.Tensor4D | tf.Tensor4D[];
      if (!Array.isArray(maps)) maps = [maps];
      const [h, w] = [maps[0].shape[1], maps[0].shape[2]];
      const aligned = maps.map((m) => {
        let y = m;
        if (this.o.pool > 1) y = tf.avgPool(y, this.o.pool, 1, 'same');
        if (y.shape[1] !== h) y = tf.image.resizeBilinear(y, [h, w]);
        return y;
      });
      let f = aligned.length > 1 ? tf.concat(aligned, 3) : aligned[0];
      if (this.keep) f = tf.gather(f, tf.tensor1d(this.keep, 'int32'), 3);
      return f;
    });
    const [count, h, w, d] = out.shape;
    const data = out.dataSync() as Float32Array;
    out.dispose();
    return { data, count, h, w, d };
  }
}

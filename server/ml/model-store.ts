// models/<id>/{model.json, weights.bin, meta.json} (docs/architecture.md, Storage). Pure tfjs
// has no file:// handler, so artifacts go through withSaveHandler/fromMemory.
import * as tf from '@tensorflow/tfjs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../domain/errors.js';
import type { ModelMeta } from '../domain/types.js';
import { vaeFromModel, type Vae } from './vae.js';

const FORMAT = 'latentwatch-vae/1';

/** Write to a temporary sibling, then rename: a reader never sees half a file. */
async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

export async function saveModel(dir: string, vae: Vae, meta: ModelMeta): Promise<void> {
  await mkdir(dir, { recursive: true });
  await vae.model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData));
      await writeAtomic(path.join(dir, 'weights.bin'), weights);
      const modelJson = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeAtomic(path.join(dir, 'model.json'), JSON.stringify(modelJson));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  // meta.json last: its presence marks a complete model directory.
  await writeAtomic(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 1));
}

async function readPart(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(path.join(dir, name));
  } catch {
    throw new AppError('not_found', `${dir}: not a latentwatch model directory (${name} is missing)`);
  }
}

export async function loadModel(dir: string): Promise<{ vae: Vae; meta: ModelMeta }> {
  const [metaBytes, modelBytes, weights] = await Promise.all([
    readPart(dir, 'meta.json'),
    readPart(dir, 'model.json'),
    readPart(dir, 'weights.bin'),
  ]);
  let meta: ModelMeta;
  let modelJson: { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  try {
    meta = JSON.parse(metaBytes.toString('utf8'));
    modelJson = JSON.parse(modelBytes.toString('utf8'));
  } catch (err) {
    throw new AppError('model_invalid', `${dir}: model files are not valid JSON (${(err as Error).message})`);
  }
  if (meta.format !== FORMAT) {
    throw new AppError('model_invalid', `${dir}: unknown model format ${JSON.stringify(meta.format)}, expected ${FORMAT}`);
  }
  const weightSpecs = modelJson.weightsManifest.flatMap((g) => g.weights);
  const expectedBytes = weightSpecs.reduce((sum, w) => sum + 4 * w.shape.reduce((a, b) => a * b, 1), 0);
  // Checked before building the model: a failed load would leave its variables allocated.
  if (weights.byteLength !== expectedBytes || weightSpecs.some((w) => w.dtype !== 'float32')) {
    throw new AppError('model_invalid', `${dir}: weights.bin has ${weights.byteLength} bytes, model.json expects ${expectedBytes} of float32`);
  }
  try {
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: modelJson.modelTopology,
        weightSpecs,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
      }),
    );
    return { vae: vaeFromModel(model), meta };
  } catch (err) {
    throw new AppError('model_invalid', `${dir}: the model could not be loaded (${(err as Error).message})`);
  }
}

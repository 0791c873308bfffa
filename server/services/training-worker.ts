// Worker-thread entry for one training job: its own TensorFlow.js backend on
// its own core, so the server keeps serving. Talks to training-jobs.ts only
// through messages: progress events, then 'done' or 'error'.
import { parentPort, workerData } from 'node:worker_threads';
import { errorBody, isClientError } from '../domain/errors.js';
import type { TrainOptions } from '../domain/types.js';
import { initBackend, type BackendName } from '../ml/backend.js';
import { listTrainingImages } from '../ml/dataset.js';
import { inputCount, loadDetector, loadInput } from './detector.js';
import { recalibratedMeta, writeRecalibrated } from './recalibrate.js';
import { trainModel } from './train-model.js';

export interface WorkerInput {
  dataDir: string;
  source: string;
  outDir: string;
  options: TrainOptions;
  backend?: BackendName;
  /** Recalibrate this model on the images instead of training a new one. */
  parentDir?: string;
}

export type WorkerMessage =
  | { type: 'progress'; event: unknown }
  | { type: 'done'; dir: string; modelId: string; skipped: number }
  | { type: 'error'; error: { code: string; message: string }; stack?: string };

const port = parentPort!;
const input = workerData as WorkerInput;
const controller = new AbortController();
port.on('message', (m) => {
  if (m === 'cancel') controller.abort();
});

/** Same weights, a calibration from these images: a new version beside the parent. */
async function recalibrateModel(parentDir: string, files: string[]): Promise<string> {
  // A parent model that cannot load is the server's problem, whatever status its error carries.
  const detector = await loadDetector(parentDir).catch((err: unknown) => {
    throw new Error(`the model to recalibrate could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
  });
  try {
    const loaded = await loadInput(detector.meta.input, files, (loaded, total) => port.postMessage({ type: 'progress', event: { type: 'loading', loaded, total } } satisfies WorkerMessage));
    port.postMessage({ type: 'progress', event: { type: 'calibrating', images: inputCount(loaded.input) } } satisfies WorkerMessage);
    const { meta } = recalibratedMeta(detector, loaded.input, { outDir: input.outDir, source: input.source });
    await writeRecalibrated({ parentDir, outDir: input.outDir, source: input.source }, meta);
    return meta.id;
  } finally {
    detector.vae.model.dispose();
  }
}

try {
  const backend = await initBackend(input.backend);
  const { files } = await listTrainingImages(input.dataDir, input.source);
  if (input.parentDir) {
    const modelId = await recalibrateModel(input.parentDir, files);
    port.postMessage({ type: 'done', dir: input.outDir, modelId, skipped: 0 } satisfies WorkerMessage);
  } else {
    const { meta, failures } = await trainModel({
      files, source: input.source, outDir: input.outDir, options: input.options, backend: backend.name, signal: controller.signal,
      onProgress: (event) => port.postMessage({ type: 'progress', event } satisfies WorkerMessage),
    });
    port.postMessage({ type: 'done', dir: input.outDir, modelId: meta.id, skipped: failures.length } satisfies WorkerMessage);
  }
} catch (err) {
  // What users did wrong is theirs to read; anything else is ours: its text
  // (paths, internals) goes to the server log, the job shows a generic error.
  const message: WorkerMessage = isClientError(err)
    ? { type: 'error', error: errorBody(err) }
    : { type: 'error', error: { code: 'internal', message: 'training failed with an internal error (see the server log)' }, stack: err instanceof Error ? err.stack : String(err) };
  port.postMessage(message);
}
port.close();

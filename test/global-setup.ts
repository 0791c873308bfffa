// Trains the small shared test model once per run; server tests copy it.
import { rm } from 'node:fs/promises';
import { initBackend } from '../server/ml/backend.js';
import { TINY_MODEL_CACHE, trainTinyModelInto } from './server-helpers.js';

export default async function setup(): Promise<void> {
  await initBackend('wasm');
  await rm(TINY_MODEL_CACHE, { recursive: true, force: true });
  await trainTinyModelInto(TINY_MODEL_CACHE);
}

// Picks the fastest TensorFlow.js backend this machine can run (docs/architecture.md):
// native CUDA, native CPU, wasm (SIMD), then the pure-JS cpu backend.
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../domain/errors.js';
import { registerWasmConvKernels } from './wasm-kernels.js';

export const BACKENDS = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** tfjs backend name in use: 'tensorflow', 'wasm' or 'cpu'. */
  name: BackendName;
  /** Which package provides it, e.g. '@tensorflow/tfjs-node-gpu'. */
  provider: string;
  /** Why faster options were skipped (empty when the first choice loaded). */
  skipped: string[];
}

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

async function tryNative(skipped: string[]): Promise<BackendInfo | null> {
  for (const pkg of NATIVE_PACKAGES) {
    try {
      await import(pkg); // registers the 'tensorflow' backend as a side effect
      if (await tf.setBackend('tensorflow')) return { name: 'tensorflow', provider: pkg, skipped };
      skipped.push(`${pkg}: loaded but the backend did not initialise`);
    } catch (err) {
      skipped.push(`${pkg}: ${firstLine(err)}`);
    }
  }
  return null;
}

async function tryWasm(skipped: string[]): Promise<BackendInfo | null> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    registerWasmConvKernels();
    if (await tf.setBackend('wasm')) {
      return { name: 'wasm', provider: '@tensorflow/tfjs-backend-wasm', skipped };
    }
    skipped.push('@tensorflow/tfjs-backend-wasm: the backend did not initialise');
  } catch (err) {
    skipped.push(`@tensorflow/tfjs-backend-wasm: ${firstLine(err)}`);
  }
  return null;
}

async function tryCpu(skipped: string[]): Promise<BackendInfo | null> {
  return (await tf.setBackend('cpu'))
    ? { name: 'cpu', provider: '@tensorflow/tfjs-backend-cpu', skipped }
    : null;
}

function firstLine(err: unknown): string {
  return String(err instanceof Error ? err.message : err).split('\n')[0];
}

let selected: Promise<BackendInfo> | null = null;
let selectedFor: BackendName | undefined;

/**
 * Initialises TensorFlow.js once per process. `forced` (from
 * LATENTWATCH_BACKEND) insists on one backend and fails loudly without it.
 */
export function initBackend(forced?: BackendName): Promise<BackendInfo> {
  if (selected != null && selectedFor === forced) return selected;
  selectedFor = forced;
  selected = (async () => {
    const skipped: string[] = [];
    const order: Record<BackendName, (s: string[]) => Promise<BackendInfo | null>> = {
      tensorflow: tryNative,
      wasm: tryWasm,
      cpu: tryCpu,
    };
    const candidates = forced ? [forced] : BACKENDS;
    for (const name of candidates) {
      const info = await order[name](skipped);
      if (info) {
        await tf.ready();
        return info;
      }
    }
    const advice = forced === 'tensorflow'
      ? ': install @tensorflow/tfjs-node or -node-gpu (their install downloads libtensorflow) or unset LATENTWATCH_BACKEND'
      : forced ? ': unset LATENTWATCH_BACKEND to use the best available one' : '';
    throw new AppError('unavailable', `the ${forced ?? 'TensorFlow.js'} backend could not be initialised (${skipped.join('; ')})${advice}`);
  })();
  return selected;
}

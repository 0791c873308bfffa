// Configuration is read from the environment once, here, in two steps: raw
// strings, then a typed and validated Config. No other module reads process.env.
import { AppError } from './domain/errors.js';
import { BACKENDS, type BackendName } from './ml/backend.js';

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  modelsDir: string;
  adminKey?: string;
  /** Forced TensorFlow.js backend; undefined means the best available. */
  backend?: BackendName;
}

interface RawEnv {
  port?: string;
  host?: string;
  dataDir?: string;
  modelsDir?: string;
  adminKey?: string;
  backend?: string;
}

export function readEnv(env: Record<string, string | undefined>): RawEnv {
  return {
    port: env.LATENTWATCH_PORT,
    host: env.LATENTWATCH_HOST,
    dataDir: env.LATENTWATCH_DATA_DIR,
    modelsDir: env.LATENTWATCH_MODELS_DIR,
    adminKey: env.LATENTWATCH_ADMIN_KEY,
    backend: env.LATENTWATCH_BACKEND,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

export function buildConfig(raw: RawEnv): Config {
  const port = Number(nonEmpty(raw.port) ?? '8080');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AppError('invalid_option', `LATENTWATCH_PORT must be a port number (0-65535), got ${JSON.stringify(raw.port)}`);
  }
  const backend = nonEmpty(raw.backend);
  if (backend !== undefined && !(BACKENDS as readonly string[]).includes(backend)) {
    throw new AppError('invalid_option', `LATENTWATCH_BACKEND must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(backend)}`);
  }
  return {
    port,
    host: nonEmpty(raw.host) ?? '0.0.0.0',
    dataDir: nonEmpty(raw.dataDir) ?? './data',
    modelsDir: nonEmpty(raw.modelsDir) ?? './models',
    adminKey: nonEmpty(raw.adminKey),
    backend: backend as BackendName | undefined,
  };
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  return buildConfig(readEnv(env));
}

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
  /** Training from a server-side directory is only allowed inside this one. */
  datasetsDir: string;
  retentionDays: number;
  /** Per uploaded file, in bytes. */
  maxUploadBytes: number;
  /** Per request. */
  maxUploadFiles: number;
}

interface RawEnv {
  port?: string;
  host?: string;
  dataDir?: string;
  modelsDir?: string;
  adminKey?: string;
  backend?: string;
  datasetsDir?: string;
  retentionDays?: string;
  maxUploadMb?: string;
  maxUploadFiles?: string;
}

export function readEnv(env: Record<string, string | undefined>): RawEnv {
  return {
    port: env.LATENTWATCH_PORT,
    host: env.LATENTWATCH_HOST,
    dataDir: env.LATENTWATCH_DATA_DIR,
    modelsDir: env.LATENTWATCH_MODELS_DIR,
    adminKey: env.LATENTWATCH_ADMIN_KEY,
    backend: env.LATENTWATCH_BACKEND,
    datasetsDir: env.LATENTWATCH_DATASETS_DIR,
    retentionDays: env.LATENTWATCH_RETENTION_DAYS,
    maxUploadMb: env.LATENTWATCH_MAX_UPLOAD_MB,
    maxUploadFiles: env.LATENTWATCH_MAX_UPLOAD_FILES,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function positive(raw: string | undefined, name: string, fallback: number, integer = false): number {
  const v = Number(nonEmpty(raw) ?? fallback);
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new AppError('invalid_option', `${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`);
  }
  return v;
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
  const dataDir = nonEmpty(raw.dataDir) ?? './data';
  return {
    port,
    host: nonEmpty(raw.host) ?? '0.0.0.0',
    dataDir,
    modelsDir: nonEmpty(raw.modelsDir) ?? './models',
    adminKey: nonEmpty(raw.adminKey),
    backend: backend as BackendName | undefined,
    datasetsDir: nonEmpty(raw.datasetsDir) ?? './datasets',
    retentionDays: positive(raw.retentionDays, 'LATENTWATCH_RETENTION_DAYS', 30),
    maxUploadBytes: Math.round(positive(raw.maxUploadMb, 'LATENTWATCH_MAX_UPLOAD_MB', 20) * 1024 * 1024),
    maxUploadFiles: positive(raw.maxUploadFiles, 'LATENTWATCH_MAX_UPLOAD_FILES', 100, true),
  };
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  return buildConfig(readEnv(env));
}

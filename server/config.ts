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
  /** Total bytes of one multipart request (all files together). */
  maxRequestBytes: number;
  /** Files in one training upload. */
  maxTrainFiles: number;
  /** Total bytes of one training upload (streamed to disk, never held in memory). */
  maxTrainBytes: number;
  /**
   * Express "trust proxy": false, true, a hop count, or a list of addresses.
   * Set it behind a TLS-terminating proxy so the session cookie gets `Secure`.
   */
  trustProxy: boolean | number | string;
  /** Origins besides the server's own that may use a session cookie (CSRF check). */
  allowedOrigins: string[];
  /** Let webhooks reach loopback, private and link-local addresses (off: SSRF guard). */
  webhookAllowPrivate: boolean;
  /** Start with a new, empty database even though stored images exist beside none. */
  allowNewDatabase: boolean;
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
  maxRequestMb?: string;
  maxTrainFiles?: string;
  maxTrainMb?: string;
  trustProxy?: string;
  allowedOrigins?: string;
  webhookAllowPrivate?: string;
  allowNewDatabase?: string;
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
    maxRequestMb: env.LATENTWATCH_MAX_REQUEST_MB,
    maxTrainFiles: env.LATENTWATCH_MAX_TRAIN_FILES,
    maxTrainMb: env.LATENTWATCH_MAX_TRAIN_MB,
    trustProxy: env.LATENTWATCH_TRUST_PROXY,
    allowedOrigins: env.LATENTWATCH_ALLOWED_ORIGINS,
    webhookAllowPrivate: env.LATENTWATCH_WEBHOOK_ALLOW_PRIVATE,
    allowNewDatabase: env.LATENTWATCH_ALLOW_NEW_DATABASE,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function positive(raw: string | undefined, name: string, fallback: number, integer = false): number {
  const text = nonEmpty(raw);
  // Plain decimals only: Number() would read "0x10" as 16.
  const v = text === undefined ? fallback : /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new AppError('invalid_option', `${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

function flag(raw: string | undefined, name: string, fallback: boolean): boolean {
  const v = nonEmpty(raw)?.toLowerCase();
  if (v === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new AppError('invalid_option', `${name} must be true or false, got ${JSON.stringify(raw)}`);
}

function trustProxyFrom(raw: string | undefined): boolean | number | string {
  const v = nonEmpty(raw);
  if (v === undefined || v === 'false' || v === '0') return false;
  if (v === 'true') return true;
  if (/^\d+$/.test(v)) return Number(v);
  return v; // addresses or subnets, as express understands them ("loopback", "10.0.0.0/8, 127.0.0.1")
}

function originsFrom(raw: string | undefined): string[] {
  const list = (nonEmpty(raw) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return list.map((o) => {
    let url: URL;
    try {
      url = new URL(o);
    } catch {
      throw new AppError('invalid_option', `LATENTWATCH_ALLOWED_ORIGINS: ${JSON.stringify(o)} is not an origin like https://monitor.example.com`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AppError('invalid_option', `LATENTWATCH_ALLOWED_ORIGINS: ${JSON.stringify(o)} must be http(s)`);
    return url.origin;
  });
}

/** Shorter keys are guessable; generated keys are 46 characters. */
export const MIN_ADMIN_KEY_LENGTH = 24;

export function buildConfig(raw: RawEnv): Config {
  const portText = nonEmpty(raw.port) ?? '8080';
  const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AppError('invalid_option', `LATENTWATCH_PORT must be a port number (0-65535), got ${JSON.stringify(raw.port)}`);
  }
  const backend = nonEmpty(raw.backend);
  if (backend !== undefined && !(BACKENDS as readonly string[]).includes(backend)) {
    throw new AppError('invalid_option', `LATENTWATCH_BACKEND must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(backend)}`);
  }
  const dataDir = nonEmpty(raw.dataDir) ?? './data';
  const adminKey = nonEmpty(raw.adminKey);
  if (adminKey !== undefined && (adminKey.length < MIN_ADMIN_KEY_LENGTH || /\s/.test(adminKey))) {
    throw new AppError('invalid_option', `LATENTWATCH_ADMIN_KEY must be at least ${MIN_ADMIN_KEY_LENGTH} characters without spaces (got ${adminKey.length}); leave it unset to have one generated`);
  }
  const mb = (v: number) => Math.round(v * 1024 * 1024);
  return {
    port,
    host: nonEmpty(raw.host) ?? '0.0.0.0',
    dataDir,
    modelsDir: nonEmpty(raw.modelsDir) ?? './models',
    adminKey,
    backend: backend as BackendName | undefined,
    datasetsDir: nonEmpty(raw.datasetsDir) ?? './datasets',
    retentionDays: positive(raw.retentionDays, 'LATENTWATCH_RETENTION_DAYS', 30),
    maxUploadBytes: mb(positive(raw.maxUploadMb, 'LATENTWATCH_MAX_UPLOAD_MB', 20)),
    maxUploadFiles: positive(raw.maxUploadFiles, 'LATENTWATCH_MAX_UPLOAD_FILES', 100, true),
    maxRequestBytes: mb(positive(raw.maxRequestMb, 'LATENTWATCH_MAX_REQUEST_MB', 200)),
    maxTrainFiles: positive(raw.maxTrainFiles, 'LATENTWATCH_MAX_TRAIN_FILES', 20_000, true),
    maxTrainBytes: mb(positive(raw.maxTrainMb, 'LATENTWATCH_MAX_TRAIN_MB', 2048)),
    trustProxy: trustProxyFrom(raw.trustProxy),
    allowedOrigins: originsFrom(raw.allowedOrigins),
    webhookAllowPrivate: flag(raw.webhookAllowPrivate, 'LATENTWATCH_WEBHOOK_ALLOW_PRIVATE', false),
    allowNewDatabase: flag(raw.allowNewDatabase, 'LATENTWATCH_ALLOW_NEW_DATABASE', false),
  };
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  return buildConfig(readEnv(env));
}

// Reading request parameters with clear 400s instead of silent coercion.
import { AppError } from '../domain/errors.js';

const bad = (msg: string) => new AppError('bad_request', msg);

export function intParam(v: unknown, name: string, o: { min?: number; max?: number; fallback?: number } = {}): number {
  if (v === undefined || v === '') {
    if (o.fallback !== undefined) return o.fallback;
    throw bad(`${name} is required`);
  }
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw bad(`${name} must be an integer, got ${JSON.stringify(v)}`);
  if (o.min !== undefined && n < o.min) throw bad(`${name} must be at least ${o.min}, got ${n}`);
  if (o.max !== undefined && n > o.max) throw bad(`${name} must be at most ${o.max}, got ${n}`);
  return n;
}

/** Plain decimal notation only: Number() would also take "0x10", "0b1", " 12 " and "". */
export const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function numParam(v: unknown, name: string, o: { min?: number; max?: number; exclusiveMin?: boolean } = {}): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && DECIMAL.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw bad(`${name} must be a number, got ${JSON.stringify(v)}`);
  if (o.min !== undefined && (o.exclusiveMin ? n <= o.min : n < o.min)) throw bad(`${name} must be ${o.exclusiveMin ? 'above' : 'at least'} ${o.min}, got ${n}`);
  if (o.max !== undefined && n > o.max) throw bad(`${name} must be at most ${o.max}, got ${n}`);
  return n;
}

export function strParam(v: unknown, name: string, o: { max?: number; optional?: boolean } = {}): string | undefined {
  if (v === undefined || v === null || v === '') {
    if (o.optional) return undefined;
    throw bad(`${name} is required`);
  }
  if (typeof v !== 'string') throw bad(`${name} must be a string`);
  if (v.length > (o.max ?? 200)) throw bad(`${name} must be at most ${o.max ?? 200} characters`);
  if (/[\u0000-\u001f]/.test(v)) throw bad(`${name} must not contain control characters`);
  return v;
}

export function boolParam(v: unknown, name: string, fallback: boolean): boolean {
  if (v === undefined || v === '') return fallback;
  if (v === true || v === 'true' || v === '1') return true;
  if (v === false || v === 'false' || v === '0') return false;
  throw bad(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

/** An ISO time or milliseconds since the epoch. */
export function timeParam(v: unknown, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const s = String(v);
  const t = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  if (!Number.isFinite(t)) throw bad(`${name} must be an ISO date-time or epoch milliseconds, got ${JSON.stringify(v)}`);
  return t;
}

export function idParam(v: unknown, name = 'id'): number {
  const s = String(v ?? '');
  if (!/^\d{1,15}$/.test(s)) throw new AppError('not_found', `no ${name.replace(/ id$/, '')} ${JSON.stringify(s)}`);
  return Number(s);
}

export function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw bad('send a JSON object body with Content-Type: application/json');
  }
  return body as Record<string, unknown>;
}

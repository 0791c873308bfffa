// CSV export of stored image results. Rows are read in keyset pages and
// written as the socket drains, so an export of any size holds one page in
// memory, and the database connection is never held between pages (other
// requests keep working while a large export streams).
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { listImages, type ImageFilter, type ImageRow } from '../db/images.js';
import type { Db } from '../db/open.js';

const PAGE = 1000;

export const CSV_COLUMNS = [
  'id', 'received_at', 'source', 'original_name', 'model_id', 'anomaly',
  'kl', 'recon', 'elbo', 'p_kl', 'p_recon', 'p_elbo', 'p_combined',
  'pct_kl', 'pct_recon', 'pct_elbo', 'width', 'height', 'format', 'bytes', 'sha256',
] as const;

/**
 * One CSV field (RFC 4180). Text that a spreadsheet would run as a formula
 * (a camera name starting with "=", "+", "-", "@", tab or CR) is prefixed
 * with an apostrophe: source and file names come from clients.
 */
export function csvField(v: string | number): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csvRow(r: ImageRow): string {
  return CSV_COLUMNS.map((c) => {
    if (c === 'received_at') return new Date(r.received_at).toISOString();
    if (c === 'anomaly') return r.anomaly === 1 ? 'true' : 'false';
    return csvField(r[c]);
  }).join(',') + '\r\n';
}

/** Writes every image matching the filter (newest first) as CSV; returns the row count. */
export async function writeImagesCsv(db: Db, filter: Omit<ImageFilter, 'limit' | 'before'>, out: Writable, signal?: AbortSignal): Promise<number> {
  let rows = 0;
  if (!out.write(CSV_COLUMNS.join(',') + '\r\n')) await once(out, 'drain', { signal });
  let before: number | undefined;
  for (;;) {
    const page = listImages(db, { ...filter, before, limit: PAGE });
    if (page.length === 0) break;
    if (!out.write(page.map(csvRow).join(''))) await once(out, 'drain', { signal });
    rows += page.length;
    if (page.length < PAGE) break;
    before = page[page.length - 1].id;
  }
  return rows;
}

// GET /api/images as CSV: the whole filtered history, streamed in pages with
// bounded buffering, safe to open in a spreadsheet.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertImage, type NewImage } from '../../server/db/images.js';
import { CSV_COLUMNS, csvField, writeImagesCsv } from '../../server/services/image-export.js';
import { testServer, type TestServer } from '../server-helpers.js';

const ROWS = 100_000;
const T0 = Date.parse('2026-12-01T00:00:00Z');
let s: TestServer;
let modelId: string;

function row(i: number): NewImage {
  const source = i === 7 ? '=HYPERLINK("http://x")' : `line${(i % 3) + 1}-cam`;
  return {
    received_at: T0 + i * 2_600, source, original_name: i === 11 ? 'a, "quoted"\nname.png' : `frame_${i}.png`,
    sha256: 'ab'.repeat(32), format: 'png', width: 64, height: 64, bytes: 1234, model_id: modelId,
    kl: 100 + (i % 7), recon: 1 + (i % 5) / 10, elbo: 500, p_kl: 0.5, p_recon: i % 20 === 0 ? 0.001 : 0.4, p_elbo: 0.5,
    p_combined: i % 20 === 0 ? 0.001 : 0.4, pct_kl: 50, pct_recon: 50, pct_elbo: 50, anomaly: i % 20 === 0 ? 1 : 0,
    original_path: 'x', thumbnail_path: 'x', reconstruction_path: 'x', heatmap_path: 'x',
  };
}

/** Minimal RFC 4180 reader for the test: fields may be quoted and hold commas, quotes and newlines. */
function parseCsv(text: string): string[][] {
  const out: string[][] = [];
  let rowFields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { rowFields.push(field); field = ''; }
    else if (c === '\r' && text[i + 1] === '\n') { rowFields.push(field); out.push(rowFields); rowFields = []; field = ''; i++; }
    else field += c;
  }
  return out;
}

beforeAll(async () => {
  s = await testServer();
  modelId = (s.ctx.db.prepare('SELECT id FROM models LIMIT 1').get() as { id: string }).id;
  const insert = s.ctx.db.transaction(() => { for (let i = 0; i < ROWS; i++) insertImage(s.ctx.db, row(i)); });
  insert();
}, 120_000);
afterAll(() => s.close());

describe('GET /api/images as CSV', () => {
  it(`exports all ${ROWS.toLocaleString('en')} stored results, newest first, as an attachment`, async () => {
    const res = await s.request('GET', '/api/images?format=csv', { key: s.keys.viewer });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/csv/);
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="latentwatch-images.csv"/);
    const rows = parseCsv(res.raw.toString('utf8'));
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows.length).toBe(ROWS + 1);
    const ids = rows.slice(1).map((r) => Number(r[0]));
    expect(ids[0]).toBe(ROWS);
    expect(ids.at(-1)).toBe(1);
    expect(new Set(ids).size).toBe(ROWS); // no page boundary repeats or drops a row
    const last = rows.at(-1)!;
    expect(last[1]).toBe(new Date(T0).toISOString());
    expect(last[CSV_COLUMNS.indexOf('anomaly')]).toBe('true');
  }, 120_000);

  it('applies the list filters (source, verdict, time range, name) and the Accept header', async () => {
    const from = new Date(T0 + 1000 * 2_600).toISOString();
    const until = new Date(T0 + 2000 * 2_600).toISOString();
    const q = `/api/images?source=line2-cam&anomalous=true&since=${from}&until=${until}`;
    const res = await s.request('GET', q, { key: s.keys.viewer, headers: { accept: 'text/csv' } });
    expect(res.status).toBe(200);
    const rows = parseCsv(res.raw.toString('utf8')).slice(1);
    const expected = Array.from({ length: 1000 }, (_, k) => 1000 + k).filter((i) => i % 3 === 1 && i % 20 === 0);
    expect(rows.map((r) => r[CSV_COLUMNS.indexOf('original_name')]).sort()).toEqual(expected.map((i) => `frame_${i}.png`).sort());

    const byName = parseCsv((await s.request('GET', '/api/images?format=csv&name=frame_4242.', { key: s.keys.viewer })).raw.toString('utf8'));
    expect(byName.slice(1).map((r) => r[CSV_COLUMNS.indexOf('original_name')])).toEqual(['frame_4242.png']);
    // JSON stays the default, with the same name filter.
    const json = await s.request('GET', '/api/images?name=frame_4242.&limit=5', { key: s.keys.viewer });
    expect(json.json.images.map((i: any) => i.originalName)).toEqual(['frame_4242.png']);
  }, 60_000);

  it('quotes commas, quotes and newlines, and defuses names a spreadsheet would run as formulas', async () => {
    const rows = parseCsv((await s.request('GET', '/api/images?format=csv&until=' + (T0 + 20 * 2_600), { key: s.keys.viewer })).raw.toString('utf8'));
    const byId = new Map(rows.slice(1).map((r) => [Number(r[0]), r]));
    expect(byId.get(12)![CSV_COLUMNS.indexOf('original_name')]).toBe('a, "quoted"\nname.png');
    expect(byId.get(8)![CSV_COLUMNS.indexOf('source')]).toBe(`'=HYPERLINK("http://x")`);
    expect(csvField('-1+1')).toBe("'-1+1");
    expect(csvField(Number.NaN)).toBe('');
  }, 60_000);

  it('refuses an unknown format and needs a key', async () => {
    const bad = await s.request('GET', '/api/images?format=xml', { key: s.keys.viewer });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/format must be csv or json/);
    expect((await s.request('GET', '/api/images?format=csv', { key: null })).status).toBe(401);
  });

  it('never buffers more than about one page, however slow the reader', async () => {
    let maxQueued = 0;
    let bytes = 0;
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        setImmediate(done); // a reader that takes a turn of the event loop per chunk
      },
    });
    // The queue only grows on a write: measure it right after each one.
    const origWrite = slow.write.bind(slow);
    slow.write = ((chunk: any, ...rest: any[]) => {
      const ok = origWrite(chunk, ...rest);
      maxQueued = Math.max(maxQueued, slow.writableLength);
      return ok;
    }) as typeof slow.write;
    const n = await writeImagesCsv(s.ctx.db, {}, slow);
    expect(n).toBe(ROWS);
    expect(bytes).toBeGreaterThan(ROWS * 100);
    // One page of 1,000 rows is about 200 KB; the whole export is about 20 MB.
    expect(maxQueued).toBeLessThan(400 * 1024);
    expect(maxQueued).toBeLessThan(bytes / 20);
  }, 60_000);
});

describe('GET /api/stats over a long history', () => {
  it(`counts and bins every one of ${ROWS.toLocaleString('en')} images, not a capped sample`, async () => {
    const res = await s.request('GET', '/api/stats?hours=720&bins=20', { key: s.keys.viewer });
    expect(res.status).toBe(200);
    expect(res.json.images).toBe(ROWS);
    expect(res.json.anomalies).toBe(ROWS / 20);
    for (const ch of ['kl', 'recon', 'elbo']) {
      const h = res.json.channels[ch];
      expect(h.recent.reduce((a: number, b: number) => a + b, 0)).toBe(ROWS);
      expect(h.lo).toBeLessThanOrEqual(ch === 'kl' ? 100 : ch === 'recon' ? 1 : 500);
    }
    // recon takes five values equally often: five bins hold a fifth each (the range's top lands in the last bin).
    const recon = res.json.channels.recon;
    const filled = recon.recent.filter((n: number) => n > 0);
    expect(filled.reduce((a: number, b: number) => a + b, 0)).toBe(ROWS);
    expect(Math.max(...filled)).toBeLessThanOrEqual(ROWS / 5 + 1);
  }, 60_000);
});

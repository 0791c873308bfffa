// SIGTERM: the server stops accepting, finishes the requests in flight, closes
// the database and exits 0; what it answered is stored.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, trainTinyModel } from '../server-helpers.js';
import { spawnServer } from '../server-process.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-shutdown-'));
  await trainTinyModel(path.join(dir, 'models', 'tiny'));
}, 120_000);
afterAll(() => cleanup());

describe('graceful shutdown', () => {
  it('answers the upload in flight, then exits 0 with the database closed cleanly', async () => {
    const { child, url: base, exited } = await spawnServer({
      LATENTWATCH_DATA_DIR: path.join(dir, 'data'), LATENTWATCH_MODELS_DIR: path.join(dir, 'models'), LATENTWATCH_ADMIN_KEY: ADMIN_KEY,
    });
    const form = new FormData();
    const png = await readFile('fixtures/normal/normal_0100.png');
    for (let i = 0; i < 8; i++) form.append('images', new Blob([png]), `img-${i}.png`);
    const inFlight = fetch(`${base}/api/images`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: form });
    await new Promise((r) => setTimeout(r, 30)); // the request has reached the server
    child.kill('SIGTERM');
    const res = await inFlight;
    expect(res.status).toBe(201);
    const ids = ((await res.json()) as { results: { image: { id: number } }[] }).results.map((r) => r.image.id);
    expect(ids).toHaveLength(8);
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/api/health`)).rejects.toThrow(); // no longer accepting
    const db = new Database(path.join(dir, 'data', 'latentwatch.db'), { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM images').get() as { n: number }).n).toBe(8);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });
});

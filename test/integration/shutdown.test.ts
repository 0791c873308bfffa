// SIGTERM: the server stops accepting, finishes the requests in flight, closes
// the database and exits 0; what it answered is stored.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, trainTinyModel } from '../server-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-shutdown-'));
  await trainTinyModel(path.join(dir, 'models', 'tiny'));
}, 120_000);
afterAll(() => cleanup());

describe('graceful shutdown', () => {
  it('answers the upload in flight, then exits 0 with the database closed cleanly', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const child = spawn(process.execPath, ['dist/server/main.js'], {
      env: { ...process.env, LATENTWATCH_PORT: String(port), LATENTWATCH_HOST: '127.0.0.1', LATENTWATCH_DATA_DIR: path.join(dir, 'data'), LATENTWATCH_MODELS_DIR: path.join(dir, 'models'), LATENTWATCH_ADMIN_KEY: ADMIN_KEY, LATENTWATCH_BACKEND: 'wasm' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/api/health`)).ok) break;
      } catch {
        // not up yet
      }
      if (i > 300) throw new Error('server did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
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

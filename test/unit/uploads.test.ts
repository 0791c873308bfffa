// Multipart parsing to disk against a real HTTP server on loopback: every
// way a request can be refused answers (none hangs), leaves no folder behind,
// and a failing disk is the server's error, not the client's.
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Request } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../server/domain/errors.js';
import { parseMultipartToDir } from '../../server/http/uploads.js';
import { tempDir } from '../helpers.js';
import { multipart, type Part } from '../server-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let server: http.Server;
let url: string;
let extension = (_name: string) => '.png';
let n = 0;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-uploads-'));
  server = http.createServer((req, res) => {
    const target = path.join(dir, `up-${n++}`);
    const limits = { field: 'images', maxFileBytes: 1000, maxFiles: 2, maxTotalBytes: 1500 };
    parseMultipartToDir(req as Request, limits, target, extension).then(
      (r) => res.end(JSON.stringify({ status: 201, files: r.files.length })),
      (err) => res.end(JSON.stringify({ status: err instanceof AppError ? err.status : 500, code: err instanceof AppError ? err.code : (err as NodeJS.ErrnoException).code, target })),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await cleanup();
});

async function send(parts: Part[]): Promise<{ status: number; code?: string; target?: string; files?: number }> {
  const m = multipart(parts);
  const res = await fetch(url, { method: 'POST', headers: m.headers, body: new Uint8Array(m.body), signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as never;
}

const file = (i: number, bytes = 100): Part => ({ name: 'images', filename: `f${i}.png`, content: Buffer.alloc(bytes, i) });

describe('parseMultipartToDir', () => {
  it('stores files within the limits', async () => {
    expect(await send([file(1), file(2)])).toMatchObject({ status: 201, files: 2 });
  });

  it('answers too many files with 413 and removes the folder, without hanging', async () => {
    const r = await send([file(1), file(2), file(3)]);
    expect(r.status).toBe(413);
    expect(existsSync(r.target!)).toBe(false);
  });

  it('answers a file in the wrong field after a good one with 400 and removes the folder', async () => {
    const r = await send([file(1), { ...file(2), name: 'other' }]);
    expect(r).toMatchObject({ status: 400, code: 'bad_request' });
    expect(existsSync(r.target!)).toBe(false);
  });

  it('answers an oversized file and an oversized request with 413', async () => {
    expect((await send([file(1, 2000)])).status).toBe(413);
    expect((await send([file(1, 900), file(2, 900)])).status).toBe(413);
  });

  it('reports a failing disk as its own error (a 500 upstream), not as the client\'s bad request', async () => {
    extension = () => '/missing-folder/x.png';
    try {
      const r = await send([file(1)]);
      expect(r.status).toBe(500);
      expect(r.code).toBe('ENOENT');
      expect(existsSync(r.target!)).toBe(false);
    } finally {
      extension = () => '.png';
    }
  });
});

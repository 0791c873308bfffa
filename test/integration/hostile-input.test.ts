// Hostile and malformed requests against a real server process: a body cut
// off mid-file, a lying Content-Length, an SVG with script, oversized
// requests, lenient numbers, non-ASCII names. Each gets a clear 4xx, stores
// nothing, and the server stays up.
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { multipart, trainTinyModel, ADMIN_KEY } from '../server-helpers.js';
import { spawnServer, type ServerProcess } from '../server-process.js';

let server: ServerProcess;
let dir: string;
let cleanup: () => Promise<void>;
const auth = { authorization: `Bearer ${ADMIN_KEY}` };

const normal = () => readFile('fixtures/normal/normal_0150.png');

const SVG = Buffer.from(
  `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/>` +
    `<script>fetch('/api/keys',{method:'POST',headers:{'content-type':'application/json'},body:'{"name":"x","role":"admin"}'})</script></svg>`,
);

/** Writes raw bytes to the server and returns what it answers (or '' if it closes first). */
function rawRequest(head: string, body: Buffer, endAfterMs = 200): Promise<string> {
  const { port } = new URL(server.url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('error', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.write(head);
    socket.write(body);
    // A client that stops sending and half-closes: the body is truncated.
    setTimeout(() => socket.end(), endAfterMs);
  });
}

async function expectAlive(): Promise<void> {
  const res = await fetch(`${server.url}/api/health`);
  expect(res.status).toBe(200);
  expect(server.child.exitCode).toBeNull();
}

async function imageCount(): Promise<number> {
  const res = await fetch(`${server.url}/api/images?limit=500`, { headers: auth });
  return ((await res.json()) as { images: unknown[] }).images.length;
}

async function postImages(m: { body: Buffer; headers: Record<string, string> }): Promise<Response> {
  return fetch(`${server.url}/api/images`, { method: 'POST', headers: { ...auth, ...m.headers }, body: new Uint8Array(m.body) });
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-hostile-'));
  await trainTinyModel(path.join(dir, 'models', 'tiny'));
  server = await spawnServer({
    LATENTWATCH_DATA_DIR: path.join(dir, 'data'),
    LATENTWATCH_MODELS_DIR: path.join(dir, 'models'),
    LATENTWATCH_ADMIN_KEY: ADMIN_KEY,
    LATENTWATCH_DATASETS_DIR: 'fixtures',
    LATENTWATCH_MAX_UPLOAD_MB: '1',
    LATENTWATCH_MAX_REQUEST_MB: '1.5',
  });
}, 120_000);

afterAll(async () => {
  server?.child.kill('SIGKILL');
  await server?.exited;
  await cleanup();
});

describe('a multipart body that ends early', () => {
  const truncated = Buffer.from('--B\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\nContent-Type: image/png\r\n\r\nabc');

  for (const route of ['/api/images', '/api/models/train']) {
    it(`answers 400 on ${route} and the server stays up`, async () => {
      const head =
        `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_KEY}\r\n` +
        `Content-Type: multipart/form-data; boundary=B\r\nContent-Length: ${truncated.length}\r\nConnection: close\r\n\r\n`;
      const answer = await rawRequest(head, truncated);
      expect(answer).toMatch(/^HTTP\/1\.1 400/);
      expect(answer).toContain('"code":"bad_request"');
      await expectAlive();
    });

    it(`survives a Content-Length longer than the body on ${route}`, async () => {
      const head =
        `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_KEY}\r\n` +
        `Content-Type: multipart/form-data; boundary=B\r\nContent-Length: ${truncated.length + 5000}\r\n\r\n`;
      await rawRequest(head, truncated, 300);
      await expectAlive();
    });
  }

  it('leaves no half-received training upload on disk', async () => {
    const uploads = path.join(dir, 'data', 'uploads');
    const left = async () => (await readdir(uploads).catch(() => [] as string[])).filter((n) => n.startsWith('train-'));
    // A cut-off request is cleaned up once the server notices the client is gone.
    for (let i = 0; i < 50 && (await left()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await left()).toEqual([]);
  });
});

describe('formats that are not camera images', () => {
  it('refuses an SVG with 415 and stores nothing', async () => {
    const before = await imageCount();
    const res = await postImages(multipart([{ name: 'images', filename: 'x.svg', type: 'image/svg+xml', content: SVG }]));
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unsupported_image');
    expect(await imageCount()).toBe(before);
  });
});

describe('what the server sends back', () => {
  it('sends security headers on API answers, errors and the dashboard', async () => {
    for (const url of ['/api/health', '/api/nope', '/']) {
      const res = await fetch(`${server.url}${url}`);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    }
  });

  it('serves an original as a sandboxed attachment, keeping a non-ASCII name intact', async () => {
    const name = '漢字-Grüße.png';
    const res = await postImages(multipart([{ name: 'images', filename: name, type: 'image/png', content: await normal() }]));
    expect(res.status).toBe(201);
    const image = ((await res.json()) as { results: { image: { id: number; originalName: string } }[] }).results[0].image;
    expect(image.originalName).toBe(name);
    const original = await fetch(`${server.url}/api/images/${image.id}/original`, { headers: auth });
    expect(original.status).toBe(200);
    expect(original.headers.get('content-disposition')).toBe(`attachment; filename="__-Gr__e.png"; filename*=UTF-8''${encodeURIComponent(name)}`);
    expect(original.headers.get('content-security-policy')).toContain('sandbox');
  });
});

describe('requests over the size limits', () => {
  it('refuses a request whose files together exceed the per-request limit, storing none of them', async () => {
    const before = await imageCount();
    // Each file is within the 1 MB per-file limit; together they pass 1.5 MB.
    const big = Buffer.alloc(700 * 1024, 7);
    const files = [0, 1, 2].map((i) => ({ name: 'images', filename: `f${i}.png`, type: 'image/png', content: big }));
    const res = await postImages(multipart(files));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/per request/);
    expect(await imageCount()).toBe(before);
    await expectAlive();
  });

  it('refuses training options that cannot fit in memory before any work starts', async () => {
    const res = await fetch(`${server.url}/api/models/train`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ directory: 'normal', size: 128, channels: 3, filters: 128, latent: 512, batch: 4096 }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/GiB per training step/);
    const jobs = (await (await fetch(`${server.url}/api/jobs`, { headers: auth })).json()) as { jobs: unknown[] };
    expect(jobs.jobs).toEqual([]);
  });
});

describe('numbers', () => {
  it('refuses hexadecimal and other non-decimal spellings', async () => {
    for (const value of ['0x10', '0b1', ' 12', '']) {
      const res = await fetch(`${server.url}/api/rules`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'r', channel: 'recon', threshold: { kind: 'absolute', value } }),
      });
      expect(res.status, value).toBe(400);
    }
  });
});

// Memory of the server under large uploads: a real server process with the
// demo model, one request of N large images (19 MB noise PNGs, inside the
// per-file limit), its answer, and the server's resident memory before,
// at peak (sampled every 50 ms) and after. Loopback only.
//
//   node dist/bench/upload-memory.js [--files 10] [--server dist/server/main.js]
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { tempDir } from '../test/helpers.js';
import { spawnServer } from '../test/server-process.js';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({ options: { files: { type: 'string', default: '10' }, server: { type: 'string' }, tag: { type: 'string' } } });
const files = Number(v.files);
const KEY = 'lw_bench_admin_key_0123456789abcdef';

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

// 2500 x 2500 RGB noise: about 18.8 MB as PNG (noise does not compress).
const side = 2500;
const noise = Buffer.alloc(side * side * 3);
for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
const png = await sharp(noise, { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();

const { dir, cleanup } = await tempDir('latentwatch-upload-memory-');
const server = await spawnServer(
  { LATENTWATCH_DATA_DIR: path.join(dir, 'data'), LATENTWATCH_MODELS_DIR: path.resolve('models'), LATENTWATCH_ADMIN_KEY: KEY, LATENTWATCH_MAX_UPLOAD_MB: '20' },
  120_000,
  v.server,
);
const pid = server.child.pid!;
try {
  const before = await rssMiB(pid);
  let peak = before;
  const sampler = setInterval(() => void rssMiB(pid).then((r) => (peak = Math.max(peak, r)), () => {}), 50);
  const form = new FormData();
  for (let i = 0; i < files; i++) form.append('images', new Blob([new Uint8Array(png)], { type: 'image/png' }), `noise-${i}.png`);
  const started = performance.now();
  const res = await fetch(`${server.url}/api/images`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: form });
  const body = (await res.json()) as { error?: { code: string } };
  const seconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 2000)); // let the allocator settle
  clearInterval(sampler);
  const after = await rssMiB(pid);
  const result = { files, fileMB: png.length / 1024 / 1024, status: res.status, error: body.error?.code ?? null, seconds, rssMiB: { before, peak, after } };
  console.log(JSON.stringify(result));
  await writeResult(`upload-memory-${v.tag ?? files}`, { benchmark: 'server memory under one large upload', date: new Date().toISOString(), machine: machine(), ...result });
} finally {
  server.child.kill('SIGTERM');
  await server.exited;
  await cleanup();
}

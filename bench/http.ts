// Scoring over HTTP against the real server in a child process: images/s and
// upload latency with 1 and 8 concurrent clients, and /api/health latency
// while a training job runs. Writes bench/results/http.json.
//
//   npm run bench:http -- --model models/demo --seconds 20
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { machine, writeResult } from './results-file.js';

const { values: v } = parseArgs({ options: { model: { type: 'string' }, seconds: { type: 'string' } } });
const modelDir = path.resolve(v.model ?? 'models/demo');
const seconds = Number(v.seconds ?? 20);
const KEY = 'lw_bench_admin_key';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summary(latencies: number[], images: number, wallSeconds: number) {
  const s = [...latencies].sort((a, b) => a - b);
  return { requests: s.length, images, imagesPerSecond: images / wallSeconds, p50ms: percentile(s, 0.5), p99ms: percentile(s, 0.99), maxms: s[s.length - 1] };
}

const work = await mkdtemp(path.join(os.tmpdir(), 'latentwatch-bench-'));
await cp(modelDir, path.join(work, 'models', path.basename(modelDir)), { recursive: true });
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const child = spawn(process.execPath, ['dist/server/main.js'], {
  env: { ...process.env, LATENTWATCH_PORT: String(port), LATENTWATCH_HOST: '127.0.0.1', LATENTWATCH_DATA_DIR: path.join(work, 'data'),
    LATENTWATCH_MODELS_DIR: path.join(work, 'models'), LATENTWATCH_ADMIN_KEY: KEY, LATENTWATCH_DATASETS_DIR: 'fixtures' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const auth = { authorization: `Bearer ${KEY}` };

try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/api/health`)).ok) break;
    } catch {
      // not up yet
    }
    if (i > 300) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const files = (await readdir('fixtures/normal')).slice(0, 64);
  const images = await Promise.all(files.map((f) => readFile(path.join('fixtures/normal', f))));

  async function uploadLoop(clients: number, perRequest: number) {
    const latencies: number[] = [];
    let sent = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(Array.from({ length: clients }, async (_, c) => {
      for (let i = c; performance.now() < deadline; i += clients) {
        const form = new FormData();
        for (let k = 0; k < perRequest; k++) form.append('images', new Blob([images[(i * perRequest + k) % images.length]], { type: 'image/png' }), `img-${i}-${k}.png`);
        const t = performance.now();
        const res = await fetch(`${base}/api/images`, { method: 'POST', headers: auth, body: form });
        if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
        latencies.push(performance.now() - t);
        sent += perRequest;
      }
    }));
    return summary(latencies, sent, (performance.now() - started) / 1000);
  }

  async function healthLoop(ms: number) {
    const latencies: number[] = [];
    const deadline = performance.now() + ms;
    while (performance.now() < deadline) {
      const t = performance.now();
      await (await fetch(`${base}/api/health`)).json();
      latencies.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 20));
    }
    return summary(latencies, 0, ms / 1000);
  }

  await uploadLoop(1, 1); // warm-up
  const results: Record<string, unknown> = {};
  results.oneClient = await uploadLoop(1, 1);
  console.log('1 client, 1 image/request', results.oneClient);
  results.eightClients = await uploadLoop(8, 1);
  console.log('8 clients, 1 image/request', results.eightClients);
  results.healthIdle = await healthLoop(5000);
  console.log('/api/health idle', results.healthIdle);
  const job = await (await fetch(`${base}/api/models/train`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ directory: 'normal', size: 64, epochs: 50, patience: 1000 }) })).json();
  await new Promise((r) => setTimeout(r, 3000)); // let the worker load images and start
  results.healthDuringTraining = await healthLoop(seconds * 1000);
  const progress = await (await fetch(`${base}/api/jobs/${job.id}`, { headers: auth })).json();
  results.trainingJob = { status: progress.status, epochsDone: progress.curves.length, lastProgress: progress.progress?.type };
  console.log('/api/health during training', results.healthDuringTraining, results.trainingJob);
  await fetch(`${base}/api/jobs/${job.id}/cancel`, { method: 'POST', headers: auth });
  const file = await writeResult('http', { benchmark: 'http scoring', date: new Date().toISOString(), machine: machine(), model: path.basename(modelDir), secondsPerMeasurement: seconds, ...results });
  console.error(`wrote ${file}`);
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await rm(work, { recursive: true, force: true });
}

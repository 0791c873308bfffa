// GET /metrics on a real server (ephemeral port): real uploads, rules, a
// WebSocket client, webhook deliveries and a training job, read back by
// parsing the Prometheus text format.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildConfig } from '../../server/config.js';
import { silentLoggers } from '../../server/logger.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { createApiKey } from '../../server/services/auth.js';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, trainTinyModel } from '../server-helpers.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (format 0.0.4). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample of `name` whose labels include `labels`; undefined if none. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

let dir: string;
let cleanup: () => Promise<void>;
let server: RunningServer;
let viewer: string;
let receiver: http.Server;
let receiverPort: number;
const received: unknown[] = [];
const NORMAL = 'fixtures/normal/normal_0300.png';
const BAD = 'fixtures/anomalous/wrong_part_01.png';

async function scrape(key: string | null = viewer): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${server.url}/metrics`, { headers: key === null ? {} : { authorization: `Bearer ${key}` } });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}
const samples = async () => parse((await scrape()).text);

async function api(method: string, url: string, json?: unknown): Promise<any> {
  const res = await fetch(server.url + url, {
    method, headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function upload(files: { file: string; name?: string }[], source: string): Promise<any[]> {
  const form = new FormData();
  for (const f of files) form.append('images', new Blob([await readFile(f.file)]), f.name ?? path.basename(f.file));
  form.append('source', source);
  const res = await fetch(`${server.url}/api/images`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: form });
  const body = (await res.json()) as any;
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body.results;
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-metrics-'));
  await trainTinyModel(path.join(dir, 'models', 'tiny'));
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.statusCode = req.url === '/broken' ? 400 : 204;
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  receiverPort = (receiver.address() as AddressInfo).port;
  server = await startServer(
    buildConfig({
      port: '0', host: '127.0.0.1', dataDir: path.join(dir, 'data'), modelsDir: path.join(dir, 'models'), adminKey: ADMIN_KEY,
      backend: 'wasm', datasetsDir: 'fixtures', webhookAllowPrivate: 'true',
    }),
    { log: silentLoggers(), webhookOptions: { maxAttempts: 1, baseDelayMs: 10, timeoutMs: 2000, maxQueue: 10 } },
  );
  viewer = createApiKey(server.ctx.db, 'prometheus', 'viewer', Date.now()).key;
}, 120_000);

afterAll(async () => {
  await server?.close();
  await new Promise((r) => receiver?.close(r));
  await cleanup();
});

describe('GET /metrics', () => {
  it('needs a viewer key, like every other read', async () => {
    const none = await scrape(null);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.text).error.code).toBe('unauthorized');
    expect((await scrape('lw_not_a_real_key_000000000000')).status).toBe(401);
    const ok = await scrape();
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('reports the process, the active model, empty queues and no clients before any work', async () => {
    const s = await samples();
    expect(value(s, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(value(s, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(value(s, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(value(s, 'latentwatch_active_model_info', { model: 'tiny-model', backend: 'wasm', size: '28', channels: '1' })).toBe(1);
    for (const queue of ['scoring', 'training', 'webhooks']) expect(value(s, 'latentwatch_queue_depth', { queue })).toBe(0);
    expect(value(s, 'latentwatch_websocket_clients')).toBe(0);
    expect(value(s, 'latentwatch_scoring_duration_seconds_count')).toBe(0);
    expect(s.filter((x) => x.name === 'latentwatch_images_scored_total')).toEqual([]);
  });

  it('counts images per source and verdict, rejected files, and times each upload request', async () => {
    const first = await upload([{ file: NORMAL }, { file: NORMAL }], 'line1-cam');
    const second = await upload([{ file: BAD }, { file: 'fixtures/README.md', name: 'notes.png' }], 'line2-cam');
    const verdicts = (results: any[]) => results.filter((r) => r.image).map((r) => (r.image.anomaly ? 'anomaly' : 'normal'));
    const s = await samples();
    for (const [source, results] of [['line1-cam', first], ['line2-cam', second]] as const) {
      for (const verdict of ['normal', 'anomaly']) {
        const n = verdicts(results).filter((v) => v === verdict).length;
        expect(value(s, 'latentwatch_images_scored_total', { source, verdict }) ?? 0, `${source} ${verdict}`).toBe(n);
      }
    }
    expect(value(s, 'latentwatch_images_scored_total', { source: 'line2-cam', verdict: 'anomaly' })).toBe(1);
    expect(value(s, 'latentwatch_images_rejected_total', { source: 'line2-cam', code: second[1].error.code })).toBe(1);
    expect(value(s, 'latentwatch_scoring_duration_seconds_count')).toBe(2);
    expect(value(s, 'latentwatch_scoring_duration_seconds_sum')).toBeGreaterThan(0);
    expect(value(s, 'latentwatch_scoring_duration_seconds_bucket', { le: '+Inf' })).toBe(2);
  });

  it('shows alert instances by source and state, and webhook deliveries by outcome', async () => {
    const normalRecon = (await upload([{ file: NORMAL }], 'line1-cam'))[0].image.scores.recon;
    const badRecon = (await upload([{ file: BAD }], 'line1-cam'))[0].image.scores.recon;
    const threshold = { kind: 'absolute', value: (normalRecon + badRecon) / 2 };
    const hooked = await api('POST', '/api/rules', { name: 'every camera', channel: 'recon', threshold, webhookUrl: `http://127.0.0.1:${receiverPort}/hook` });
    expect(hooked.status).toBe(201);
    const broken = await api('POST', '/api/rules', { name: 'line2 broken hook', channel: 'recon', source: 'line2-cam', threshold, webhookUrl: `http://127.0.0.1:${receiverPort}/broken` });
    expect(broken.status).toBe(201);
    await upload([{ file: NORMAL }], 'line1-cam');
    await upload([{ file: BAD }], 'line2-cam'); // fires both rules' line2-cam instances
    for (let i = 0; i < 200 && (server.ctx.webhooks.depth > 0 || received.length < 2); i++) await new Promise((r) => setTimeout(r, 10));
    const s = await samples();
    expect(value(s, 'latentwatch_alert_instances', { source: 'line1-cam', state: 'normal' })).toBe(1);
    expect(value(s, 'latentwatch_alert_instances', { source: 'line2-cam', state: 'firing' })).toBe(2);
    expect(value(s, 'latentwatch_alert_instances', { source: 'line1-cam', state: 'firing' })).toBeUndefined();
    expect(value(s, 'latentwatch_webhook_deliveries_total', { outcome: 'delivered' })).toBe(1);
    expect(value(s, 'latentwatch_webhook_deliveries_total', { outcome: 'failed' })).toBe(1);
    expect(value(s, 'latentwatch_webhook_deliveries_total', { outcome: 'dropped' })).toBe(0);
    expect(received).toContainEqual(expect.objectContaining({ alert: expect.objectContaining({ source: 'line2-cam', state: 'firing' }) }));

    // A deleted rule's instances are gone from the gauge.
    expect((await api('DELETE', `/api/rules/${broken.body.id}`)).status).toBe(204);
    expect(value(await samples(), 'latentwatch_alert_instances', { source: 'line2-cam', state: 'firing' })).toBe(1);
  });

  it('counts connected WebSocket clients', async () => {
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/ws`, { headers: { authorization: `Bearer ${viewer}` } });
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    try {
      expect(value(await samples(), 'latentwatch_websocket_clients')).toBe(1);
    } finally {
      await new Promise((r) => (ws.once('close', r), ws.close()));
    }
    for (let i = 0; i < 100 && value(await samples(), 'latentwatch_websocket_clients') !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(value(await samples(), 'latentwatch_websocket_clients')).toBe(0);
  });

  it('counts finished training runs by kind and outcome, and the training queue', async () => {
    const options = { directory: 'normal', size: 28, latent: 4, filters: 8, epochs: 500, patience: 1000, batch: 16 };
    const running = await api('POST', '/api/models/train', options);
    const queued = await api('POST', '/api/models/train', options);
    expect([running.status, queued.status]).toEqual([202, 202]);
    expect(value(await samples(), 'latentwatch_queue_depth', { queue: 'training' })).toBe(2);
    expect((await api('POST', `/api/jobs/${queued.body.id}/cancel`)).body.status).toBe('cancelled');
    const s = await samples();
    expect(value(s, 'latentwatch_training_runs_total', { kind: 'train', outcome: 'cancelled' })).toBe(1);
    expect(value(s, 'latentwatch_queue_depth', { queue: 'training' })).toBe(1);
    // The running job ends with the server (closing terminates its worker).
  });
});

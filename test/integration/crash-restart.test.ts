// A hard stop mid-run loses nothing that was acknowledged: the real server
// (dist/server/main.js, as `npm start` runs it) takes concurrent uploads with
// an alert rule in place, is SIGKILLed while requests are still in flight,
// and is started again on the same data directory. Every image answered with
// 201, every alert change in those answers, and every event a dashboard was
// sent before the crash must still be there, identical.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mulberry32 } from '../../server/ml/random.js';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, trainTinyModel } from '../server-helpers.js';
import { spawnServer, type ServerProcess } from '../server-process.js';

const MAIN = path.resolve('dist/server/main.js');
const AUTH = { authorization: `Bearer ${ADMIN_KEY}` };

type Running = ServerProcess;

interface Event {
  id: number;
  at: number;
  type: string;
  payload: any;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let cleanup: () => Promise<void>;
let dataDir: string;
let modelsDir: string;
const children: ChildProcess[] = [];
const sockets: WebSocket[] = [];

async function startChild(): Promise<Running> {
  const running = await spawnServer({
    LATENTWATCH_DATA_DIR: dataDir, LATENTWATCH_MODELS_DIR: modelsDir,
    LATENTWATCH_ADMIN_KEY: ADMIN_KEY, LATENTWATCH_DATASETS_DIR: path.join(dir, 'datasets'),
  });
  children.push(running.child);
  return running;
}

async function api(url: string, method = 'GET', json?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method,
    headers: { ...AUTH, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: json === undefined ? undefined : JSON.stringify(json),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const bytesOf = new Map<string, Buffer>();
async function fixture(file: string): Promise<Buffer> {
  let b = bytesOf.get(path.basename(file));
  if (!b) bytesOf.set(path.basename(file), (b = await readFile(file)));
  return b;
}

/** POST /api/images; resolves with the parsed 201 body, throws on anything else (connection errors included). */
async function upload(url: string, files: string[]): Promise<{ results: any[] }> {
  const form = new FormData();
  for (const f of files) form.append('images', new Blob([new Uint8Array(await fixture(f))], { type: 'image/png' }), path.basename(f));
  const res = await fetch(`${url}/api/images`, { method: 'POST', headers: AUTH, body: form, signal: AbortSignal.timeout(30_000) });
  const body = (await res.json()) as { results: any[] };
  if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** Connects with ?since=; `events` fills as messages arrive. */
function subscribe(url: string, since?: number): Promise<{ ws: WebSocket; hello: any; events: Event[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws${since === undefined ? '' : `?since=${since}`}`, { headers: AUTH });
    sockets.push(ws);
    const events: Event[] = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'hello') resolve({ ws, hello: m, events });
      else events.push(m as Event);
    });
    ws.on('error', reject);
  });
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

const NORMALS = Array.from({ length: 100 }, (_, i) => `fixtures/normal/normal_${String(300 + i).padStart(4, '0')}.png`);
const ANOMALOUS = ['wrong_part', 'deformed', 'crack', 'missing_hole', 'extra_hole'].flatMap((k) =>
  Array.from({ length: 10 }, (_, i) => `fixtures/anomalous/${k}_${String(i).padStart(2, '0')}.png`),
);

// What the crashed server acknowledged.
const ackedImages = new Map<number, any>(); // image id -> image view from the 201
const ackedAlerts: any[] = []; // alert.changed payloads from the 201s
let liveEvents: Event[] = []; // what a dashboard was sent before the crash
let inFlightAtKill = 0;
let failedAfterKill = 0;
let killSignal: number | string | null = null;
let ruleId = 0;
let activeModel: string | null = null;
let restarted: Running;

function ack(body: { results: any[] }): void {
  for (const r of body.results) {
    if (!r.image) continue;
    ackedImages.set(r.image.id, r.image);
    ackedAlerts.push(...r.alerts);
  }
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npx tsc -p tsconfig.json first`);
  ({ dir, cleanup } = await tempDir('latentwatch-crash-'));
  dataDir = path.join(dir, 'data');
  modelsDir = path.join(dir, 'models');
  await trainTinyModel(path.join(modelsDir, 'tiny'));

  const first = await startChild();
  activeModel = (await api(`${first.url}/api/health`)).body.activeModel;
  // A rule that fires on anomalous parts: a recon threshold halfway between a normal and a wrong part.
  const probe = await upload(first.url, [NORMALS[0], ANOMALOUS[0]]);
  ack(probe);
  const [normal, anomalous] = probe.results.map((r) => r.image.scores.recon as number);
  expect(anomalous, 'a wrong part should reconstruct worse than a normal part').toBeGreaterThan(normal);
  const rule = await api(`${first.url}/api/rules`, 'POST', { name: 'recon high', channel: 'recon', threshold: { kind: 'absolute', value: (normal + anomalous) / 2 } });
  expect(rule.status).toBe(201);
  ruleId = rule.body.id;

  const live = await subscribe(first.url);
  liveEvents = live.events;

  // Four concurrent clients, one to three images a request, about a third anomalous.
  const rand = mulberry32(7);
  const pick = () => (rand() < 0.35 ? ANOMALOUS[Math.floor(rand() * ANOMALOUS.length)] : NORMALS[1 + Math.floor(rand() * (NORMALS.length - 1))]);
  let killed = false;
  let inFlight = 0;
  const worker = async () => {
    while (!killed) {
      const files = Array.from({ length: 1 + Math.floor(rand() * 3) }, pick);
      inFlight++;
      try {
        const body = await upload(first.url, files);
        ack(body);
      } catch (err) {
        if (!killed) throw err; // before the kill every upload must succeed
        failedAfterKill++;
        return;
      } finally {
        inFlight--;
      }
      if (!killed && ackedImages.size >= 40) {
        killed = true;
        inFlightAtKill = inFlight;
        first.child.kill('SIGKILL');
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  killSignal = await first.exited;
  live.ws.terminate();

  restarted = await startChild();
}, 180_000);

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
  await cleanup?.();
});

describe('SIGKILL mid-run, then restart on the same data directory', () => {
  it('was really killed with uploads in flight', () => {
    expect(killSignal).toBe('SIGKILL');
    // Requests were in flight when it died (some may still have had their answer
    // on the wire: those count as acknowledged; the rest failed).
    expect(inFlightAtKill, `${failedAfterKill} uploads failed after the kill`).toBeGreaterThan(0);
    expect(ackedImages.size).toBeGreaterThanOrEqual(40);
    expect(ackedAlerts.length, 'the rule should have changed state at least once').toBeGreaterThan(0);
  });

  it('comes back healthy with the database intact', async () => {
    const health = await api(`${restarted.url}/api/health`);
    expect(health.status).toBe(200);
    expect(activeModel).toEqual(expect.any(String));
    expect(health.body).toMatchObject({ status: 'ok', database: 'ok', activeModel });
  });

  it('still has every acknowledged image, with the same scores and its files', async () => {
    for (const [id, image] of ackedImages) {
      const res = await api(`${restarted.url}/api/images/${id}`);
      expect(res.status, `image ${id}`).toBe(200);
      expect(res.body.scores).toEqual(image.scores);
      expect(res.body).toEqual(image);
      const original = await fetch(`${restarted.url}${image.urls.original}`, { headers: AUTH });
      expect(original.status, `image ${id} original`).toBe(200);
      expect(Buffer.from(await original.arrayBuffer()).equals(bytesOf.get(image.originalName)!), `image ${id} original bytes`).toBe(true);
      for (const kind of ['thumbnail', 'reconstruction', 'heatmap'] as const) {
        const f = await fetch(`${restarted.url}${image.urls[kind]}`, { headers: AUTH });
        expect(f.status, `image ${id} ${kind}`).toBe(200);
        await f.arrayBuffer();
      }
    }
  });

  it('still has every acknowledged alert change', async () => {
    const listed = await api(`${restarted.url}/api/alerts?limit=500`);
    expect(listed.status).toBe(200);
    const listedIds = new Set(listed.body.alerts.map((a: any) => a.id));
    for (const change of ackedAlerts) {
      expect(change.rule.id).toBe(ruleId);
      expect(listedIds.has(change.alert.id), `alert ${change.alert.id} listed`).toBe(true);
      const res = await api(`${restarted.url}/api/alerts/${change.alert.id}`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: change.alert.id, ruleId, firstImageId: change.alert.firstImageId, startedAt: change.alert.startedAt });
      expect(res.body.transitions).toContainEqual(
        expect.objectContaining({ from_state: change.transition.from, to_state: change.transition.to, image_id: change.imageId, value: change.value }),
      );
    }
  });

  it('replays every acknowledged event to a dashboard connecting with ?since=0', async () => {
    const { ws, hello, events } = await subscribe(restarted.url, 0);
    await until(() => events.length > 0 && events[events.length - 1].id >= hello.lastEventId, 10_000, 'the full replay');
    ws.close();
    const ids = events.map((e) => e.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]);
    expect(ids[ids.length - 1]).toBe(hello.lastEventId);

    const scored = new Map(events.filter((e) => e.type === 'image.scored').map((e) => [e.payload.id as number, e.payload]));
    for (const [id, image] of ackedImages) expect(scored.get(id), `image.scored for image ${id}`).toEqual(image);
    const changes = events.filter((e) => e.type === 'alert.changed').map((e) => e.payload);
    for (const change of ackedAlerts) expect(changes).toContainEqual(change);

    // Everything a live dashboard was sent before the crash is stored, unchanged.
    expect(liveEvents.length).toBeGreaterThan(0);
    const byId = new Map(events.map((e) => [e.id, e]));
    for (const e of liveEvents) expect(byId.get(e.id), `event ${e.id}`).toEqual(e);

    // Images and their events commit together: no stored image lacks its event.
    const stored = await api(`${restarted.url}/api/images?limit=500`);
    expect(stored.body.images.length).toBeGreaterThanOrEqual(ackedImages.size);
    for (const image of stored.body.images) expect(scored.get(image.id), `image.scored for stored image ${image.id}`).toEqual(image);
  });

  it('goes on scoring and alerting after the restart', async () => {
    const { events } = await subscribe(restarted.url);
    // The probe normal (below the threshold) clears whatever state the rule was left in; the probe wrong part fires it.
    const clear = await upload(restarted.url, [NORMALS[0]]);
    const fire = await upload(restarted.url, [ANOMALOUS[0]]);
    const ids = [...clear.results, ...fire.results].map((r) => r.image.id as number);
    for (const id of ids) expect(ackedImages.has(id), `image id ${id} reused`).toBe(false);
    expect(ids[1]).toBeGreaterThan(ids[0]);
    expect(fire.results[0].alerts).toEqual([expect.objectContaining({ rule: expect.objectContaining({ id: ruleId }), transition: { from: expect.any(String), to: 'firing' } })]);
    const alertId = fire.results[0].alerts[0].alert.id;
    for (const change of ackedAlerts) expect(alertId).toBeGreaterThan(change.alert.id);
    await until(
      () => ids.every((id) => events.some((e) => e.type === 'image.scored' && e.payload.id === id)) && events.some((e) => e.type === 'alert.changed' && e.payload.alert.id === alertId),
      10_000,
      'live events after the restart',
    );
  });
});

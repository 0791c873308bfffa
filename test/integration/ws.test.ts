// /ws end to end: a real server on an ephemeral port, real `ws` clients and,
// where a misbehaving peer is needed, a hand-written WebSocket handshake on a
// raw TCP socket (it never answers pings, or never reads).
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildConfig } from '../../server/config.js';
import { createLoggers, silentLoggers, type LogSink } from '../../server/logger.js';
import { startServer, type RunningServer } from '../../server/main.js';
import type { WsOptions } from '../../server/ws/server.js';
import { tempDir } from '../helpers.js';
import { ADMIN_KEY, trainTinyModel } from '../server-helpers.js';

interface Msg {
  type: string;
  id?: number;
  at?: number;
  payload?: any;
  [k: string]: any;
}

/** A `ws` client that keeps every message, in arrival order, and can wait for one. */
class Client {
  readonly messages: Msg[] = [];
  private waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  closed = false;
  closeCode: number | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Msg;
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(m)) return true;
        w.resolve(m);
        return false;
      });
    });
    ws.on('close', (code) => {
      this.closed = true;
      this.closeCode = code;
    });
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const client = new Client(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    });
  }

  get events(): Msg[] {
    return this.messages.filter((m) => typeof m.id === 'number');
  }

  /** The first message (already received or still to come) matching pred. */
  waitFor(pred: (m: Msg) => boolean, timeoutMs = 10_000, what = 'a message'): Promise<Msg> {
    const have = this.messages.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages.map((m) => [m.type, m.id]))}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  }

  close(): Promise<void> {
    if (this.closed || this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** The HTTP status a refused upgrade answered with. */
function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? -1);
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('error', () => {});
  });
}

/** A WebSocket handshake written by hand; resolves once the 101 is read. */
function rawUpgrade(port: number, key: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) {
        socket.destroy();
        reject(new Error(`handshake refused: ${head.slice(0, end)}`));
        return;
      }
      resolve(socket);
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(
        'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          `Authorization: Bearer ${key}\r\n\r\n`,
      );
    });
  });
}

async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const NORMAL = (i: number) => `fixtures/normal/normal_${String(300 + (i % 100)).padStart(4, '0')}.png`;

let dir: string;
let cleanup: () => Promise<void>;
let modelsDir: string;
const servers: RunningServer[] = [];
const clients: Client[] = [];
const rawSockets: net.Socket[] = [];

async function serve(name: string, ws: WsOptions = {}, log = silentLoggers(), env: Record<string, string> = {}): Promise<RunningServer> {
  const s = await startServer(
    buildConfig({ port: '0', host: '127.0.0.1', dataDir: path.join(dir, name), modelsDir, adminKey: ADMIN_KEY, backend: 'wasm', ...env }),
    { log, ws },
  );
  servers.push(s);
  return s;
}

async function connect(s: RunningServer, query = '', headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}` }): Promise<Client> {
  const c = await Client.open(`${s.url.replace(/^http/, 'ws')}/ws${query}`, headers);
  clients.push(c);
  return c;
}

async function api(s: RunningServer, method: string, url: string, json?: unknown, key: string = ADMIN_KEY): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(s.url + url, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(json !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function upload(s: RunningServer, files: string[]): Promise<any[]> {
  const form = new FormData();
  for (const f of files) form.append('images', new Blob([await readFile(f)], { type: 'image/png' }), path.basename(f));
  const res = await fetch(s.url + '/api/images', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: form });
  const body = (await res.json()) as any;
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body.results;
}

async function health(s: RunningServer): Promise<any> {
  return (await fetch(s.url + '/api/health')).json();
}

function expectIncreasing(ids: number[]): void {
  for (let i = 1; i < ids.length; i++) expect(ids[i], `event ids ${ids.join(',')}`).toBeGreaterThan(ids[i - 1]);
}

let main: RunningServer;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('latentwatch-ws-'));
  modelsDir = path.join(dir, 'models');
  await trainTinyModel(path.join(modelsDir, 'tiny'));
  main = await serve('main');
}, 120_000);

afterAll(async () => {
  for (const s of rawSockets) s.destroy();
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await Promise.all(servers.map((s) => s.close()));
  await cleanup();
});

describe('/ws authentication', () => {
  it('refuses an upgrade without a key, with a wrong key, and on another path', async () => {
    const ws = main.url.replace(/^http/, 'ws');
    expect(await refusedStatus(`${ws}/ws`)).toBe(401);
    expect(await refusedStatus(`${ws}/ws`, { authorization: 'Bearer lw_not_a_real_key' })).toBe(401);
    expect(await refusedStatus(`${ws}/ws`, { cookie: 'lw_session=not-a-session' })).toBe(401);
    expect(await refusedStatus(`${ws}/nope`, { authorization: `Bearer ${ADMIN_KEY}` })).toBe(404);
    expect((await health(main)).websocketClients).toBe(0);
  });

  it('greets a bearer-key client with hello, then streams image.scored events', async () => {
    const c = await connect(main);
    const hello = await c.waitFor(() => true, 5000, 'hello');
    expect(c.messages[0]).toBe(hello);
    expect(hello).toMatchObject({ type: 'hello', role: 'admin', lastEventId: expect.any(Number) });

    const [first] = await upload(main, [NORMAL(0)]);
    const e1 = await c.waitFor((m) => m.type === 'image.scored' && m.payload.id === first.image.id, 10_000, 'image.scored');
    expect(e1).toMatchObject({ id: expect.any(Number), at: expect.any(Number), type: 'image.scored' });
    expect(e1.id).toBeGreaterThan(hello.lastEventId);
    expect(e1.payload).toMatchObject({ id: first.image.id, scores: first.image.scores, p: first.image.p, anomaly: first.image.anomaly });
    expect(e1.payload).toEqual(first.image);

    const [second] = await upload(main, [NORMAL(1)]);
    const e2 = await c.waitFor((m) => m.type === 'image.scored' && m.payload.id === second.image.id, 10_000, 'second image.scored');
    expect(e2.id).toBeGreaterThan(e1.id!);
    expect(c.messages.filter((m) => m.type === 'hello')).toHaveLength(1);
    await c.close();
  });

  it('accepts the dashboard session cookie, and a viewer key', async () => {
    const res = await fetch(main.url + '/api/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: ADMIN_KEY }) });
    expect(res.status).toBe(201);
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
    expect(cookie).toMatch(/^lw_session=.+/);
    // Browsers send Origin on every WebSocket upgrade; the dashboard's is the server's own.
    const bySession = await connect(main, '', { cookie, origin: main.url });
    expect(await bySession.waitFor((m) => m.type === 'hello')).toMatchObject({ role: 'admin' });

    const created = await api(main, 'POST', '/api/keys', { name: 'ws viewer', role: 'viewer' });
    expect(created.status).toBe(201);
    const viewer = await connect(main, '', { authorization: `Bearer ${created.body.key}` });
    expect(await viewer.waitFor((m) => m.type === 'hello')).toMatchObject({ role: 'viewer' });

    const [r] = await upload(main, [NORMAL(2)]);
    for (const c of [bySession, viewer]) await c.waitFor((m) => m.type === 'image.scored' && m.payload.id === r.image.id, 10_000, 'image.scored');
    await Promise.all([bySession.close(), viewer.close()]);
  });
});

/** Signs in with a key and returns the session cookie. */
async function signIn(s: RunningServer, key: string): Promise<string> {
  const res = await fetch(s.url + '/api/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key }) });
  expect(res.status).toBe(201);
  return (res.headers.get('set-cookie') ?? '').split(';')[0];
}

describe('/ws cross-site hijacking', () => {
  it('refuses a cookie upgrade from another origin on the same host, or with no Origin; accepts its own and listed ones', async () => {
    const s = await serve('origins', {}, silentLoggers(), { allowedOrigins: 'https://ops.example.com' });
    const ws = s.url.replace(/^http/, 'ws');
    const cookie = await signIn(s, ADMIN_KEY);
    const otherPort = `http://127.0.0.1:${Number(new URL(s.url).port) + 1}`;
    expect(await refusedStatus(`${ws}/ws`, { cookie, origin: otherPort })).toBe(403);
    expect(await refusedStatus(`${ws}/ws`, { cookie, origin: 'null' })).toBe(403);
    expect(await refusedStatus(`${ws}/ws`, { cookie })).toBe(403);
    expect(s.ws.clientCount()).toBe(0);

    for (const origin of [s.url, 'https://ops.example.com']) {
      const c = await connect(s, '', { cookie, origin });
      expect(await c.waitFor((m) => m.type === 'hello')).toMatchObject({ role: 'admin' });
      await c.close();
    }
    // X-Forwarded-Proto/Host count only behind a trusted proxy, as for the API.
    const proxied = { cookie, origin: 'https://monitor.example.com', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'monitor.example.com' };
    expect(await refusedStatus(`${ws}/ws`, proxied)).toBe(403);
    const behindProxy = await serve('origins-proxied', {}, silentLoggers(), { trustProxy: 'loopback' });
    const c = await connect(behindProxy, '', { ...proxied, cookie: await signIn(behindProxy, ADMIN_KEY) });
    await c.waitFor((m) => m.type === 'hello');
    await c.close();

    // A bearer key cannot be sent by a page on another origin, so it is not checked.
    const byKey = await connect(s, '', { authorization: `Bearer ${ADMIN_KEY}`, origin: otherPort });
    await byKey.waitFor((m) => m.type === 'hello');
    await byKey.close();
  });

  it('limits failed bearer keys on the upgrade like on the API (429)', async () => {
    const s = await serve('limit');
    const ws = s.url.replace(/^http/, 'ws');
    for (let i = 0; i < 10; i++) expect(await refusedStatus(`${ws}/ws`, { authorization: `Bearer lw_guess_${i}` })).toBe(401);
    expect(await refusedStatus(`${ws}/ws`, { authorization: `Bearer ${ADMIN_KEY}` })).toBe(429);
  });
});

describe('/ws revocation', () => {
  it('closes the sockets of a revoked key (its own and its sessions), and of a signed-out session, at once', async () => {
    const s = await serve('revoke');
    const created = await api(s, 'POST', '/api/keys', { name: 'to revoke', role: 'viewer' });
    expect(created.status).toBe(201);
    const viewerCookie = await signIn(s, created.body.key);
    const adminCookie = await signIn(s, ADMIN_KEY);
    const byKey = await connect(s, '', { authorization: `Bearer ${created.body.key}` });
    const bySession = await connect(s, '', { cookie: viewerCookie, origin: s.url });
    const admin = await connect(s, '', { cookie: adminCookie, origin: s.url });
    const bystander = await connect(s);
    for (const c of [byKey, bySession, admin, bystander]) await c.waitFor((m) => m.type === 'hello');

    expect((await api(s, 'DELETE', `/api/keys/${created.body.id}`)).status).toBe(204);
    await until(() => byKey.closed && bySession.closed, 2000, 'the revoked key sockets to close');
    expect(byKey.closeCode).toBe(1008);
    expect(admin.closed || bystander.closed).toBe(false);

    // Nothing reaches them any more; the others still get events.
    const e = s.ctx.bus.publish('training.progress', { n: 1 });
    await bystander.waitFor((m) => m.id === e.id);
    await admin.waitFor((m) => m.id === e.id);
    expect([...byKey.events, ...bySession.events].some((m) => m.id === e.id)).toBe(false);

    // Signing out ends that session's socket; the bearer-key socket stays.
    const out = await fetch(s.url + '/api/session', { method: 'DELETE', headers: { cookie: adminCookie, origin: s.url } });
    expect(out.status).toBe(204);
    await until(() => admin.closed, 2000, 'the signed-out session socket to close');
    expect(bystander.closed).toBe(false);
    expect(s.ws.clientCount()).toBe(1);
    await bystander.close();
  });
});

describe('/ws events', () => {
  it('pushes alert.changed when a rule fires', async () => {
    const c = await connect(main);
    await c.waitFor((m) => m.type === 'hello');
    // The tiny model (3 epochs) does not always put a wrong part above its 1%
    // false-alarm level, so the threshold sits between a normal and this part.
    const [probe, normal] = await upload(main, ['fixtures/anomalous/wrong_part_00.png', NORMAL(99)]);
    const anomalousRecon = probe.image.scores.recon as number;
    const normalRecon = normal.image.scores.recon as number;
    expect(anomalousRecon, 'a wrong part should reconstruct worse than a normal part').toBeGreaterThan(normalRecon);
    const threshold = { kind: 'absolute', value: (anomalousRecon + normalRecon) / 2 };
    const rule = await api(main, 'POST', '/api/rules', { name: 'recon high', channel: 'recon', threshold });
    expect(rule.status).toBe(201);
    try {
      const [r] = await upload(main, ['fixtures/anomalous/wrong_part_00.png']);
      expect(r.image.scores.recon).toBe(anomalousRecon);
      expect(r.alerts).toHaveLength(1);
      const scored = await c.waitFor((m) => m.type === 'image.scored' && m.payload.id === r.image.id);
      const alert = await c.waitFor((m) => m.type === 'alert.changed' && m.payload.imageId === r.image.id, 10_000, 'alert.changed');
      expect(alert.id).toBeGreaterThan(scored.id!);
      expect(alert.payload).toMatchObject({
        transition: { from: 'normal', to: 'firing' },
        rule: { id: rule.body.id, name: 'recon high', channel: 'recon' },
        alert: { ruleId: rule.body.id, state: 'firing', firstImageId: r.image.id },
      });
      expect(alert.payload).toEqual(r.alerts[0]);
    } finally {
      expect((await api(main, 'DELETE', `/api/rules/${rule.body.id}`)).status).toBe(204);
      await c.close();
    }
  });

  it('backfills what a reconnecting client missed (?since=), then goes live, with no gap and no duplicate', async () => {
    // An observer that stays connected sees the whole stream.
    const observer = await connect(main);
    await observer.waitFor((m) => m.type === 'hello');
    const a = await connect(main);
    await a.waitFor((m) => m.type === 'hello');
    const [r0] = await upload(main, [NORMAL(3)]);
    const seen = await a.waitFor((m) => m.type === 'image.scored' && m.payload.id === r0.image.id);
    const lastId = a.events[a.events.length - 1].id!;
    expect(lastId).toBe(seen.id);
    await a.close();

    const missed: number[] = [];
    for (let i = 0; i < 3; i++) missed.push((await upload(main, [NORMAL(4 + i)]))[0].image.id);
    await observer.waitFor((m) => m.type === 'image.scored' && m.payload.id === missed[2]);

    const b = await connect(main, `?since=${lastId}`);
    const hello = await b.waitFor((m) => m.type === 'hello');
    expect(hello).toMatchObject({ replayFrom: lastId });
    await b.waitFor((m) => m.type === 'image.scored' && m.payload.id === missed[2], 5000, 'backfilled events');
    const expected = observer.events.filter((e) => e.id! > lastId);
    expect(b.events.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    expect(b.events).toEqual(expected);
    expect(b.events[0].id).toBeGreaterThan(lastId);
    expect(b.events.filter((e) => e.type === 'image.scored').map((e) => e.payload.id)).toEqual(missed);

    // ...then live.
    const [live] = await upload(main, [NORMAL(7)]);
    await b.waitFor((m) => m.type === 'image.scored' && m.payload.id === live.image.id, 10_000, 'live event after backfill');
    await observer.waitFor((m) => m.type === 'image.scored' && m.payload.id === live.image.id);
    const ids = b.events.map((e) => e.id!);
    expectIncreasing(ids);
    expect(ids).toEqual(observer.events.filter((e) => e.id! > lastId).map((e) => e.id));

    // ?since=0 replays everything stored, oldest first.
    const all = await connect(main, '?since=0');
    const allHello = await all.waitFor((m) => m.type === 'hello');
    await all.waitFor((m) => m.id === allHello.lastEventId, 5000, 'the full replay');
    const replayed = all.events.map((e) => e.id!);
    expect(replayed).toEqual(Array.from({ length: allHello.lastEventId }, (_, i) => i + 1));
    expect(all.events[0].type).toBe('model.activated');
    for (const id of [r0.image.id, ...missed, live.image.id]) {
      expect(all.events.some((e) => e.type === 'image.scored' && e.payload.id === id)).toBe(true);
    }
    await Promise.all([observer.close(), b.close(), all.close()]);
  });

  it('delivers concurrent uploads in strictly increasing id order, each exactly once', async () => {
    const c = await connect(main);
    await c.waitFor((m) => m.type === 'hello');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => upload(main, [NORMAL(10 + i)])));
    const imageIds = results.map(([r]) => r.image.id as number);
    expect(new Set(imageIds).size).toBe(10);
    await until(() => imageIds.every((id) => c.events.some((e) => e.type === 'image.scored' && e.payload.id === id)), 10_000, 'all 10 image.scored events');
    await new Promise((r) => setTimeout(r, 100)); // nothing more should trickle in twice
    const scored = c.events.filter((e) => e.type === 'image.scored');
    expectIncreasing(c.events.map((e) => e.id!));
    expect(scored.map((e) => e.payload.id).sort((x, y) => x - y)).toEqual([...imageIds].sort((x, y) => x - y));
    // The stream's order is commit order: image ids (also assigned at commit) increase with event ids.
    expectIncreasing(scored.map((e) => e.payload.id));
    await c.close();
  });
});

describe('/ws liveness', () => {
  it('terminates a peer that never answers pings, and keeps one that does', async () => {
    const s = await serve('heartbeat', { heartbeatMs: 200 });
    const port = Number(new URL(s.url).port);
    const good = await connect(s);
    await good.waitFor((m) => m.type === 'hello');
    const dead = await rawUpgrade(port, ADMIN_KEY);
    rawSockets.push(dead);
    const started = Date.now();
    const closed = new Promise<number>((resolve) => dead.once('close', () => resolve(Date.now() - started)));
    dead.on('data', () => {}); // reads (pings included) but never answers
    dead.on('error', () => {});
    expect((await health(s)).websocketClients).toBe(2);

    const elapsed = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 2000))]);
    expect(elapsed, 'the server did not close the silent peer within 2 s').toBeGreaterThan(0);
    await until(async () => (await health(s)).websocketClients === 1, 2000, 'websocketClients back to 1');

    // The well-behaved client answers pings and survives several heartbeats.
    await new Promise((r) => setTimeout(r, 800));
    expect(good.closed).toBe(false);
    expect(good.ws.readyState).toBe(WebSocket.OPEN);
    expect((await health(s)).websocketClients).toBe(1);
    await good.close();
  });

  // Regression: the replay used to send the whole backlog in one synchronous
  // loop, so a healthy client asking for more than maxBufferedBytes of it was
  // dropped as "cannot keep up". The replay now waits for the socket to drain.
  it('replays a backlog larger than maxBufferedBytes to a client that reads', async () => {
    const s = await serve('backlog');
    const n = 20_000; // about 20 MB of events, each about 1 KB
    const pad = 'x'.repeat(1000);
    s.ctx.db.transaction(() => {
      for (let i = 0; i < n; i++) s.ctx.bus.record('training.progress', { n: i, pad });
    })();
    const c = await connect(s, '?since=0');
    const hello = await c.waitFor((m) => m.type === 'hello');
    await until(() => c.closed || c.events.length === hello.lastEventId, 30_000, 'the replay to finish or the socket to close');
    expect(c.closed, `dropped after ${c.events.length} of ${hello.lastEventId} events`).toBe(false);
    expect(c.events.map((e) => e.id)).toEqual(Array.from({ length: hello.lastEventId }, (_, i) => i + 1));
    await c.close();
  });

  it('drops a client that stops reading once its send buffer passes the limit, and not a client that keeps up', async () => {
    const records: { level: string; msg: string }[] = [];
    const sink: LogSink = (r) => records.push(r);
    const s = await serve('slow', { maxBufferedBytes: 64 * 1024 }, createLoggers(sink, 'warn'));
    const port = Number(new URL(s.url).port);
    const good = await connect(s);
    await good.waitFor((m) => m.type === 'hello');
    const stuck = await rawUpgrade(port, ADMIN_KEY);
    rawSockets.push(stuck);
    stuck.on('error', () => {});
    stuck.pause(); // never reads again: the kernel buffers fill, then the server's user-space buffer grows
    expect((await health(s)).websocketClients).toBe(2);

    // 1 MiB events, one at a time: the reader has drained each before the next is sent.
    const big = 'x'.repeat(1024 * 1024);
    let sent = 0;
    for (; sent < 48 && s.ws.clientCount() === 2; sent++) {
      const e = s.ctx.bus.publish('training.progress', { n: sent, big });
      await good.waitFor((m) => m.id === e.id, 10_000, `big event ${sent}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(sent, 'the stuck client was never dropped').toBeLessThan(48);
    await until(() => s.ws.clientCount() === 1, 2000, 'the stuck client to be dropped');
    expect((await health(s)).websocketClients).toBe(1);
    expect(records.some((r) => r.msg === 'dropping a client that cannot keep up')).toBe(true);
    expect(good.ws.readyState).toBe(WebSocket.OPEN);
    expect(good.events.filter((m) => m.type === 'training.progress').map((m) => m.payload.n)).toEqual(Array.from({ length: sent }, (_, i) => i));
    await good.close();
  });
});

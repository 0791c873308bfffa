// Webhooks must not become a way to reach the server's own network: private
// targets are refused when a rule is saved and again at delivery, redirects
// are not followed, and URLs are logged without credentials or query strings.
// Real listeners, loopback only.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoggers, silentLoggers } from '../../server/logger.js';
import { WebhookSender } from '../../server/services/webhooks.js';
import { insertRule } from '../../server/db/alerts.js';
import { multipart, testServer, type TestServer } from '../server-helpers.js';

interface Listener {
  server: http.Server;
  port: number;
  hits: { method: string; url: string; body: string }[];
}

/** A loopback listener that records each request and answers with `respond`. */
async function listen(respond: (res: http.ServerResponse) => void): Promise<Listener> {
  const hits: Listener['hits'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      hits.push({ method: req.method ?? '', url: req.url ?? '', body });
      respond(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as AddressInfo).port, hits };
}
const stop = (l: Listener) => new Promise<void>((r) => l.server.close(() => r()));

/** Waits (bounded) until the sender has nothing left to do. */
async function settle(sender: WebhookSender, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (sender.depth > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 30));
}

const FAST = { maxAttempts: 3, baseDelayMs: 10, timeoutMs: 1000, maxQueue: 10 };

describe('webhook delivery refuses private targets', () => {
  let target: Listener;
  let redirector: Listener;
  beforeAll(async () => {
    target = await listen((res) => res.writeHead(204).end());
    redirector = await listen((res) => res.writeHead(307, { location: `http://127.0.0.1:${target.port}/internal` }).end());
  });
  afterAll(async () => {
    await stop(target);
    await stop(redirector);
  });

  it('does not deliver to loopback in any notation, nor to a name resolving there, unless allowed', async () => {
    target.hits.length = 0;
    const sender = new WebhookSender(silentLoggers().webhooks, FAST);
    const urls = [
      `http://127.0.0.1:${target.port}/a`,
      `http://0x7f000001:${target.port}/b`,
      `http://2130706433:${target.port}/c`,
      `http://127.1:${target.port}/d`,
      `http://localhost:${target.port}/e`, // a name: refused on what DNS returns
    ];
    for (const url of urls) sender.enqueue(url, { secret: 'internal' });
    await settle(sender);
    expect(target.hits).toEqual([]);
    expect(sender.stats).toMatchObject({ delivered: 0, failed: urls.length });
    sender.close();

    const allowed = new WebhookSender(silentLoggers().webhooks, { ...FAST, allowPrivate: true });
    allowed.enqueue(`http://localhost:${target.port}/ok`, { n: 1 });
    await settle(allowed);
    expect(target.hits.map((h) => h.url)).toEqual(['/ok']);
    expect(allowed.stats).toMatchObject({ delivered: 1, failed: 0 });
    allowed.close();
  });

  it('treats a redirect as a failed delivery and never follows it', async () => {
    target.hits.length = 0;
    redirector.hits.length = 0;
    const sender = new WebhookSender(silentLoggers().webhooks, { ...FAST, allowPrivate: true });
    sender.enqueue(`http://127.0.0.1:${redirector.port}/hook`, { alert: 1 });
    await settle(sender);
    expect(redirector.hits).toHaveLength(1); // one attempt: retrying a redirect cannot help
    expect(target.hits).toEqual([]);
    expect(sender.stats).toMatchObject({ delivered: 0, failed: 1 });
    sender.close();
  });

  it('logs failed URLs without credentials or query string', async () => {
    const records: Record<string, unknown>[] = [];
    const log = createLoggers((r) => records.push(r), 'debug').webhooks;
    const sender = new WebhookSender(log, { ...FAST, maxAttempts: 1, allowPrivate: true });
    sender.enqueue('http://alice:hunter2@127.0.0.1:1/hook?token=s3cret#frag', { n: 1 });
    await settle(sender);
    expect(sender.stats.failed).toBe(1);
    const text = JSON.stringify(records);
    expect(text).not.toMatch(/hunter2|alice|s3cret|frag/);
    expect(records.find((r) => r.msg === 'webhook delivery failed')).toMatchObject({ url: 'http://127.0.0.1:1/hook' });
    sender.close();
  });
});

describe('webhook URLs on rules', () => {
  let s: TestServer;
  let open: TestServer;
  beforeAll(async () => {
    s = await testServer({ model: false });
    open = await testServer({ model: false, env: { webhookAllowPrivate: 'true' } });
  }, 120_000);
  afterAll(async () => {
    await s.close();
    await open.close();
  });
  const rule = (webhookUrl: string) => ({ name: 'hook', channel: 'kl', threshold: { kind: 'absolute', value: 1 }, webhookUrl });

  it('refuses private, loopback, link-local and similar targets in any notation with a clear 400', async () => {
    const refused = [
      'http://127.0.0.1/hook', 'http://0x7f000001/', 'http://2130706433/', 'http://0177.0.0.1/', 'http://127.1:8080/',
      'http://localhost:8080/api/keys', 'http://LOCALHOST./', 'http://a.localhost/',
      'http://0.0.0.0/', 'http://10.1.2.3/', 'http://172.16.0.1/', 'http://192.168.1.1/', 'http://100.64.0.1/',
      'http://169.254.169.254/latest/meta-data/', 'http://224.0.0.1/', 'http://255.255.255.255/',
      'http://[::1]/', 'http://[::]/', 'http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/', 'http://[fe80::1]/',
      'http://[fd00::1]/', 'http://[ff02::1]/', 'http://[64:ff9b::7f00:1]/', 'http://[2002:7f00:1::]/',
    ];
    for (const url of refused) {
      const res = await s.request('POST', '/api/rules', { json: rule(url) });
      expect(res.status, url).toBe(400);
      expect(res.json.error.message, url).toMatch(/must point at a public address: .* is .*LATENTWATCH_WEBHOOK_ALLOW_PRIVATE/);
    }
    const ok = await s.request('POST', '/api/rules', { json: rule('https://hooks.example.com/alerts?token=abc') });
    expect(ok.status).toBe(201);
    const put = await s.request('PUT', `/api/rules/${ok.json.id}`, { json: { webhookUrl: 'http://[::1]:3000/' } });
    expect(put.status).toBe(400);
    expect((await s.request('GET', `/api/rules/${ok.json.id}`)).json.webhookUrl).toBe('https://hooks.example.com/alerts?token=abc');
  });

  it('accepts private targets when the server allows them', async () => {
    const res = await open.request('POST', '/api/rules', { json: rule('http://127.0.0.1:9999/hook') });
    expect(res.status).toBe(201);
  });

  it('refuses URLs with credentials, even when private targets are allowed', async () => {
    for (const server of [s, open]) {
      const res = await server.request('POST', '/api/rules', { json: rule('https://user:pass@hooks.example.com/x') });
      expect(res.status).toBe(400);
      expect(res.json.error.message).toMatch(/must not contain credentials.*token in the URL path or query/);
    }
  });
});

describe('alert webhooks through the server', () => {
  let receiver: Listener;
  beforeAll(async () => {
    receiver = await listen((res) => res.writeHead(204).end());
  });
  afterAll(() => stop(receiver));

  async function fire(server: TestServer, source: string) {
    const m = multipart([{ name: 'images', filename: 'bad.png', content: await readFile('fixtures/anomalous/wrong_part_01.png') }, { name: 'source', content: source }]);
    const res = await server.request('POST', '/api/images', { body: m.body, headers: m.headers });
    expect(res.status).toBe(201);
    return res.json.results[0];
  }
  async function waitFor(n: number) {
    for (let i = 0; i < 200 && receiver.hits.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  }
  const rule = (url: string) => ({ name: 'hooked', channel: 'recon', source: 'cam-h', threshold: { kind: 'absolute', value: 0 }, webhookUrl: url });

  it('refuses at delivery a loopback URL stored before the policy existed (default config)', async () => {
    const s = await testServer();
    try {
      const url = `http://127.0.0.1:${receiver.port}/old`;
      insertRule(s.ctx.db, {
        name: 'old', channel: 'recon', source: 'cam-h', threshold: { kind: 'absolute', value: 0 }, pendingK: 1, pendingN: 1,
        recovery: null, clearAfter: 1, renotifySeconds: null, enabled: true, webhookUrl: url,
      }, Date.now());
      receiver.hits.length = 0;
      expect((await fire(s, 'cam-h')).alerts[0]).toMatchObject({ transition: { to: 'firing' }, notified: true });
      for (let i = 0; i < 200 && s.ctx.webhooks.depth > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(receiver.hits).toEqual([]);
      expect(s.ctx.webhooks.stats).toMatchObject({ delivered: 0, failed: 1 });
    } finally {
      await s.close();
    }
  });

  it('tells the receiver that a firing alert resolved when its rule is deleted (private targets allowed)', async () => {
    const s = await testServer({ env: { webhookAllowPrivate: 'true' } });
    try {
      receiver.hits.length = 0;
      const created = await s.request('POST', '/api/rules', { key: s.keys.operator, json: rule(`http://127.0.0.1:${receiver.port}/hook`) });
      expect(created.status).toBe(201);
      await fire(s, 'cam-h');
      await waitFor(1);
      expect((await s.request('DELETE', `/api/rules/${created.json.id}`, { key: s.keys.operator })).status).toBe(204);
      await waitFor(2);
      const bodies = receiver.hits.map((h) => JSON.parse(h.body));
      expect(bodies.map((b) => `${b.transition.from}->${b.transition.to}`)).toEqual(['normal->firing', 'firing->resolved']);
      expect(bodies[0]).toMatchObject({ alert: { state: 'firing', source: 'cam-h' } });
      expect(bodies[1]).toMatchObject({ alert: { state: 'resolved', source: 'cam-h' }, rule: { id: created.json.id }, notified: true, message: 'cam-h: rule deleted: resolved' });
    } finally {
      await s.close();
    }
  });
});

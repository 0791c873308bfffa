// Webhooks must not become a way to reach the server's own network: private
// targets are refused when a rule is saved and again at delivery, redirects
// are not followed, and URLs are logged without credentials or query strings.
// Real listeners, loopback only.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoggers, silentLoggers } from '../../server/logger.js';
import { WebhookSender } from '../../server/services/webhooks.js';

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

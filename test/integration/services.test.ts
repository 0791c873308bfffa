// Webhook delivery with retries against a real local receiver, and retention
// removing rows and files together.
import * as tf from '@tensorflow/tfjs';
import { access, readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countImages } from '../../server/db/images.js';
import { silentLoggers } from '../../server/logger.js';
import { WebhookSender } from '../../server/services/webhooks.js';
import { multipart, testServer, type TestServer } from '../server-helpers.js';

describe('WebhookSender', () => {
  let server: http.Server;
  let url: string;
  const received: { attempt: number; body: any }[] = [];
  let failuresLeft = 0;
  let status = 500;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        received.push({ attempt: received.length + 1, body: JSON.parse(data) });
        if (failuresLeft > 0) {
          failuresLeft--;
          res.writeHead(status).end();
        } else {
          res.writeHead(204).end();
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  // The receiver is on loopback, which senders refuse unless told otherwise
  // (see webhook-ssrf.test.ts): each sender here opts in with allowPrivate.

  async function settle(sender: WebhookSender, ms = 2000): Promise<void> {
    const until = Date.now() + ms;
    while (sender.depth > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 30));
  }

  it('retries 5xx with backoff until delivered', async () => {
    received.length = 0;
    failuresLeft = 2;
    status = 503;
    const sender = new WebhookSender(silentLoggers().webhooks, { maxAttempts: 5, baseDelayMs: 20, timeoutMs: 1000, maxQueue: 10, allowPrivate: true });
    sender.enqueue(url, { alert: 1 });
    expect(sender.depth).toBe(1); // enqueue returns at once: scoring never waits
    await settle(sender);
    expect(received.map((r) => r.body)).toEqual([{ alert: 1 }, { alert: 1 }, { alert: 1 }]);
    expect(sender.stats).toMatchObject({ delivered: 1, failed: 0 });
    sender.close();
  });

  it('gives up after the last attempt, and at once on a 4xx', async () => {
    received.length = 0;
    failuresLeft = 100;
    status = 500;
    const sender = new WebhookSender(silentLoggers().webhooks, { maxAttempts: 3, baseDelayMs: 10, timeoutMs: 1000, maxQueue: 10, allowPrivate: true });
    sender.enqueue(url, { n: 1 });
    await settle(sender);
    expect(received).toHaveLength(3);
    received.length = 0;
    status = 404;
    sender.enqueue(url, { n: 2 });
    await settle(sender);
    expect(received).toHaveLength(1);
    expect(sender.stats.failed).toBe(2);
    failuresLeft = 0;
    sender.close();
  });

  it('survives an unreachable receiver', async () => {
    const sender = new WebhookSender(silentLoggers().webhooks, { maxAttempts: 2, baseDelayMs: 10, timeoutMs: 500, maxQueue: 10, allowPrivate: true });
    sender.enqueue('http://127.0.0.1:1/nothing-listens-here', { n: 3 });
    await settle(sender);
    expect(sender.stats.failed).toBe(1);
    sender.close();
  });
});

describe('retention', () => {
  let s: TestServer;
  let now = Date.now();
  beforeAll(async () => {
    s = await testServer({ overrides: { clock: { now: () => now } }, env: { retentionDays: '7' } });
  }, 120_000);
  afterAll(() => s.close());

  async function upload(file: string) {
    const m = multipart([{ name: 'images', filename: 'x.png', content: await readFile(file) }]);
    return (await s.request('POST', '/api/images', { body: m.body, headers: m.headers })).json.results[0].image;
  }

  it('deletes old images with their files, keeping files a newer image still uses', async () => {
    const old = await upload('fixtures/normal/normal_0010.png');
    const shared = await upload('fixtures/normal/normal_0011.png');
    now += 8 * 24 * 3600 * 1000; // eight days later
    const again = await upload('fixtures/normal/normal_0011.png'); // same bytes as `shared`
    const files = (img: any) => ['original', 'thumbnail'].map((k) => s.ctx.db.prepare(`SELECT ${k}_path AS p FROM images WHERE id = ?`).get(img.id) as { p: string });
    const oldFiles = files(old).map((f) => s.ctx.files.absolute(f.p));
    const sharedFiles = files(shared).map((f) => s.ctx.files.absolute(f.p));

    const removed = await s.ctx.retention.runOnce();
    expect(removed.images).toBe(2);
    expect(countImages(s.ctx.db)).toBe(1);
    expect((await s.request('GET', `/api/images/${old.id}`)).status).toBe(404);
    for (const f of oldFiles) await expect(access(f)).rejects.toThrow();
    for (const f of sharedFiles) await expect(access(f)).resolves.toBeUndefined();
    expect((await s.request('GET', `/api/images/${again.id}/original`)).status).toBe(200);
  });
});

describe('model registry', () => {
  it('keeps one copy of a model in memory however often it is activated', async () => {
    const s = await testServer();
    try {
      await s.ctx.registry.active(); // loaded
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) expect((await s.request('POST', '/api/models/tiny-model/activate')).status).toBe(200);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await s.close();
    }
  });
});

// Outbound alert webhooks: a bounded queue drained in the background with
// retries and exponential backoff. Scoring only enqueues; it never waits.
//
// Delivery goes through node:http(s) rather than fetch so that the address
// policy (domain/net-policy.ts) applies to the addresses DNS returns at
// connect time, not just to the URL saved with the rule: a public name can be
// made to resolve to 127.0.0.1 later (DNS rebinding). Redirects are never
// followed, for the same reason: a 3xx is a failed delivery.
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { forbiddenAddressReason, redactUrl, webhookUrlProblem } from '../domain/net-policy.js';
import type { Logger } from '../logger.js';

interface Delivery {
  url: string;
  body: unknown;
  attempt: number;
}

export interface WebhookOptions {
  maxAttempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
  maxQueue?: number;
}

export interface WebhookSenderOptions extends WebhookOptions {
  /** Allow loopback, private and other non-public targets (config.webhookAllowPrivate). */
  allowPrivate?: boolean;
}

const DEFAULTS: Required<WebhookSenderOptions> = { maxAttempts: 5, baseDelayMs: 1000, timeoutMs: 5000, maxQueue: 1000, allowPrivate: false };

/** A delivery that retrying cannot fix. */
class FinalError extends Error {}

/** dns.lookup, refusing to hand a forbidden address to the socket. */
function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const bad = allowPrivate ? undefined : addresses.find((a) => forbiddenAddressReason(a.address) !== null);
      if (bad) {
        return callback(new FinalError(`${hostname} resolves to ${bad.address}, a ${forbiddenAddressReason(bad.address)} address: refused`), '', 0);
      }
      if (addresses.length === 0) return callback(new Error(`${hostname} has no addresses`), '', 0);
      if (options.all) (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      else callback(null, addresses[0].address, addresses[0].family);
    });
  };
}

export class WebhookSender {
  private readonly queue: Delivery[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private active = 0;
  private closed = false;
  readonly stats = { delivered: 0, failed: 0, dropped: 0 };
  private readonly o: Required<WebhookSenderOptions>;
  private readonly lookup: LookupFunction;
  // Our own agents: a pooled socket connected under one policy must never serve a sender with another.
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(private readonly log: Logger, options: WebhookSenderOptions = {}) {
    this.o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    this.lookup = guardedLookup(this.o.allowPrivate);
    this.agents = { http: new http.Agent({ keepAlive: false }), https: new https.Agent({ keepAlive: false }) };
  }

  enqueue(url: string, body: unknown): void {
    if (this.closed) return;
    if (this.queue.length >= this.o.maxQueue) {
      this.queue.shift();
      this.stats.dropped++;
      this.log.warn('webhook queue full: dropped the oldest delivery');
    }
    this.queue.push({ url, body, attempt: 0 });
    this.pump();
  }

  /** Deliveries not finished yet: queued, in flight, or waiting to retry. */
  get depth(): number {
    return this.queue.length + this.active + this.timers.size;
  }

  private pump(): void {
    while (this.active < 4 && this.queue.length > 0) {
      const d = this.queue.shift()!;
      this.active++;
      void this.send(d).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  /** One POST; resolves with the status, rejects on network errors and refused targets. */
  private post(d: Delivery): Promise<number> {
    // Rules are checked when saved; this catches URLs saved before that check,
    // and literal IPs, which node connects to without calling `lookup`.
    const problem = webhookUrlProblem(d.url, this.o.allowPrivate);
    if (problem !== null) return Promise.reject(new FinalError(problem));
    const url = new URL(d.url);
    const body = Buffer.from(JSON.stringify(d.body));
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = client.request(url, {
        method: 'POST',
        agent: url.protocol === 'https:' ? this.agents.https : this.agents.http,
        lookup: this.lookup,
        headers: { 'content-type': 'application/json', 'content-length': body.length, 'user-agent': 'latentwatch' },
        signal: AbortSignal.timeout(this.o.timeoutMs),
      }, (res) => {
        res.resume(); // the answer's body is not used; drain it so the socket closes
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  private async send(d: Delivery): Promise<void> {
    d.attempt++;
    try {
      const status = await this.post(d);
      if (status >= 200 && status < 300) {
        this.stats.delivered++;
        return;
      }
      // Redirects are not followed (they could lead anywhere, body and all).
      if (status >= 300 && status < 400) throw new FinalError(`HTTP ${status}: redirects are not followed`);
      // 4xx other than 408/429 will not get better by retrying.
      if (status < 500 && status !== 408 && status !== 429) throw new FinalError(`HTTP ${status}`);
      throw new Error(`HTTP ${status}`);
    } catch (err) {
      const final = err instanceof FinalError || d.attempt >= this.o.maxAttempts;
      if (final || this.closed) {
        this.stats.failed++;
        this.log.warn('webhook delivery failed', { url: redactUrl(d.url), attempts: d.attempt, error: (err as Error).message });
        return;
      }
      const delay = this.o.baseDelayMs * 2 ** (d.attempt - 1);
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (!this.closed) {
          this.queue.unshift(d);
          this.pump();
        }
      }, delay);
      this.timers.add(t);
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

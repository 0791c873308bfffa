// Outbound alert webhooks: a bounded queue drained in the background with
// retries and exponential backoff. Scoring only enqueues; it never waits.
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

export class WebhookSender {
  private readonly queue: Delivery[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private active = 0;
  private closed = false;
  readonly stats = { delivered: 0, failed: 0, dropped: 0 };

  constructor(private readonly log: Logger, private readonly o: Required<WebhookOptions> = { maxAttempts: 5, baseDelayMs: 1000, timeoutMs: 5000, maxQueue: 1000 }) {}

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

  private async send(d: Delivery): Promise<void> {
    d.attempt++;
    try {
      const res = await fetch(d.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'latentwatch' },
        body: JSON.stringify(d.body),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      if (res.ok) {
        this.stats.delivered++;
        return;
      }
      // 4xx other than 408/429 will not get better by retrying.
      if (res.status < 500 && res.status !== 408 && res.status !== 429) throw Object.assign(new Error(`HTTP ${res.status}`), { final: true });
      throw new Error(`HTTP ${res.status}`);
    } catch (err) {
      const final = (err as { final?: boolean }).final === true || d.attempt >= this.o.maxAttempts;
      if (final || this.closed) {
        this.stats.failed++;
        this.log.warn('webhook delivery failed', { url: d.url, attempts: d.attempt, error: (err as Error).message });
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
  }
}

// Failed authentications per client address, in a fixed window: after
// maxFailures in windowMs an address must wait for the window to end. It is
// in memory (a restart forgets it) and bounded: past maxAddresses, expired
// entries go first, then the oldest, so a spray of addresses costs memory
// only up to the bound.

export interface FailureLimiterOptions {
  now: () => number;
  maxFailures?: number;
  windowMs?: number;
  maxAddresses?: number;
}

interface Entry {
  since: number;
  failures: number;
}

export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxAddresses: number;

  constructor(o: FailureLimiterOptions) {
    this.now = o.now;
    this.maxFailures = o.maxFailures ?? 10;
    this.windowMs = o.windowMs ?? 60_000;
    this.maxAddresses = o.maxAddresses ?? 10_000;
  }

  /** Milliseconds until this address may try again; 0 when it may now. */
  retryAfterMs(address: string): number {
    const e = this.current(address);
    return e && e.failures >= this.maxFailures ? e.since + this.windowMs - this.now() : 0;
  }

  fail(address: string): void {
    const e = this.current(address);
    if (e) {
      e.failures++;
      return;
    }
    this.entries.delete(address);
    if (this.entries.size >= this.maxAddresses) this.evict();
    this.entries.set(address, { since: this.now(), failures: 1 });
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.entries.size;
  }

  private current(address: string): Entry | undefined {
    const e = this.entries.get(address);
    return e && this.now() - e.since < this.windowMs ? e : undefined;
  }

  private evict(): void {
    const now = this.now();
    // Map order is insertion order, and each window starts at insertion: the expired ones are in front.
    for (const [address, e] of this.entries) {
      if (now - e.since < this.windowMs) break;
      this.entries.delete(address);
    }
    if (this.entries.size >= this.maxAddresses) this.entries.delete(this.entries.keys().next().value!);
  }
}

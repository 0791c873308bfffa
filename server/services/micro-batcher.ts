// Collects items submitted close together (concurrent uploads) into one batch,
// so the model runs one forward pass for many images instead of one each.
// Items with different keys (e.g. scored by different models during a switch)
// never share a batch.
export class MicroBatcher<In, Out> {
  private queue: { item: In; resolve: (o: Out) => void; reject: (e: unknown) => void }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly run: (items: In[]) => Promise<Out[]> | Out[],
    private readonly maxBatch = 64,
    private readonly maxWaitMs = 2,
    private readonly keyOf: (item: In) => unknown = () => undefined,
  ) {}

  submit(item: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.maxWaitMs);
    });
  }

  get depth(): number {
    return this.queue.length;
  }

  private flushSoon(ms: number): void {
    if (this.running) return; // the running batch flushes again when done
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), ms);
  }

  private async flush(): Promise<void> {
    this.timer = null;
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const batch = this.takeBatch();
    try {
      const out = await this.run(batch.map((b) => b.item));
      batch.forEach((b, i) => b.resolve(out[i]));
    } catch (err) {
      for (const b of batch) b.reject(err);
    } finally {
      this.running = false;
      if (this.queue.length > 0) this.flushSoon(this.queue.length >= this.maxBatch ? 0 : this.maxWaitMs);
    }
  }

  /** Up to maxBatch items with the oldest item's key, in submission order; the rest wait. */
  private takeBatch(): typeof this.queue {
    const key = this.keyOf(this.queue[0].item);
    const batch: typeof this.queue = [];
    const rest: typeof this.queue = [];
    for (const q of this.queue) (batch.length < this.maxBatch && this.keyOf(q.item) === key ? batch : rest).push(q);
    this.queue = rest;
    return batch;
  }
}

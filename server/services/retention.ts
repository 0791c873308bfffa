// Deletes images (rows and their files together), events and expired
// sessions older than the retention period, in small batches.
import { deleteExpiredSessions } from '../db/keys.js';
import { deleteEventsBefore } from '../db/events.js';
import { deleteImages, fileInUse, imagesBefore } from '../db/images.js';
import type { Db } from '../db/open.js';
import type { Logger } from '../logger.js';
import type { FileStore } from './file-store.js';

const DAY_MS = 24 * 3600 * 1000;

export class Retention {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Db,
    private readonly files: FileStore,
    private readonly days: number,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** One pass; returns what it removed. Rows go first, then files no row uses any more. */
  async runOnce(): Promise<{ images: number; files: number; events: number }> {
    const cutoff = this.now() - this.days * DAY_MS;
    let images = 0;
    let files = 0;
    for (;;) {
      const batch = imagesBefore(this.db, cutoff, 500);
      if (batch.length === 0) break;
      this.db.transaction(() => deleteImages(this.db, batch.map((b) => b.id)))();
      images += batch.length;
      const paths = new Set(batch.flatMap((b) => [b.original_path, b.thumbnail_path, b.reconstruction_path, b.heatmap_path]));
      for (const rel of paths) {
        if (fileInUse(this.db, rel)) continue;
        await this.files.remove(rel);
        files++;
      }
    }
    const events = deleteEventsBefore(this.db, cutoff);
    deleteExpiredSessions(this.db, this.now());
    if (images || events) this.log.info('retention clean-up', { images, files, events, days: this.days });
    return { images, files, events };
  }

  start(intervalMs = 3600 * 1000): void {
    const tick = () => void this.runOnce().catch((err) => this.log.error('retention failed', { error: (err as Error).message }));
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

// Everything dashboards see goes through here: each event is written to the
// events table first (it gets its id there), then handed to live subscribers.
// A subscriber that missed events replays them from the table by id.
// Access changes (a key revoked, a session ended) are a second, unstored
// channel, so that live connections can close without asking the database.
import { eventsAfter, insertEvent, lastEventId } from '../db/events.js';
import type { Db } from '../db/open.js';

export type EventType =
  | 'image.scored'
  | 'alert.changed'
  | 'training.progress'
  | 'training.finished'
  | 'model.activated';

export interface BusEvent {
  id: number;
  at: number;
  type: EventType;
  payload: unknown;
}

export type Subscriber = (event: BusEvent) => void;

/** Whose access just ended: every connection of a key, or of one session (by its token hash). */
export type AccessEnded = { keyId: number } | { sessionHash: string };

export class EventBus {
  private readonly subscribers = new Set<Subscriber>();
  private readonly accessListeners = new Set<(ended: AccessEnded) => void>();

  constructor(private readonly db: Db, private readonly now: () => number) {}

  /** Writes and broadcasts. */
  publish(type: EventType, payload: unknown): BusEvent {
    const event = this.record(type, payload);
    this.broadcast(event);
    return event;
  }

  /** Writes only: call inside the transaction that made the change, broadcast after commit. */
  record(type: EventType, payload: unknown): BusEvent {
    const at = this.now();
    return { id: insertEvent(this.db, type, payload, at), at, type, payload };
  }

  broadcast(event: BusEvent): void {
    for (const s of this.subscribers) {
      try {
        s(event);
      } catch {
        // One broken subscriber must not stop the others (each socket guards itself).
      }
    }
  }

  subscribe(fn: Subscriber): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Stored events after `since`, oldest first. */
  replay(since: number, limit = 1000): BusEvent[] {
    return eventsAfter(this.db, since, limit).map((r) => ({ id: r.id, at: r.at, type: r.type as EventType, payload: JSON.parse(r.payload) }));
  }

  /** The id of the newest stored event (0 when there is none). */
  lastId(): number {
    return lastEventId(this.db);
  }

  accessEnded(ended: AccessEnded): void {
    for (const fn of this.accessListeners) {
      try {
        fn(ended);
      } catch {
        // as in broadcast: one listener must not stop the others
      }
    }
  }

  onAccessEnded(fn: (ended: AccessEnded) => void): () => void {
    this.accessListeners.add(fn);
    return () => this.accessListeners.delete(fn);
  }
}

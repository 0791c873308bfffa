// The event log dashboards replay: written first, then broadcast.
import type { Db } from './open.js';

export interface EventRow {
  id: number;
  at: number;
  type: string;
  payload: string;
}

export function insertEvent(db: Db, type: string, payload: unknown, now: number): number {
  return Number(db.prepare('INSERT INTO events (at, type, payload) VALUES (?, ?, ?)').run(now, type, JSON.stringify(payload)).lastInsertRowid);
}

export function eventsAfter(db: Db, since: number, limit: number): EventRow[] {
  return db.prepare('SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?').all(since, limit) as EventRow[];
}

export function lastEventId(db: Db): number {
  return (db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM events').get() as { id: number }).id;
}

export function deleteEventsBefore(db: Db, cutoff: number): number {
  return db.prepare('DELETE FROM events WHERE at < ?').run(cutoff).changes;
}

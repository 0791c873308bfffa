// /ws: authenticated live events. A client that reconnects with ?since=<id>
// first gets every stored event after that id, then live ones, with no gap
// and no duplicate. Pings find dead peers; a client that cannot keep up is
// dropped so that its queue cannot grow without bound.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Context } from '../context.js';
import { identify } from '../http/auth.js';
import { lastEventId } from '../db/events.js';
import type { BusEvent } from '../services/event-bus.js';

export interface WsOptions {
  heartbeatMs?: number;
  /** Bytes queued on one socket before it is considered too slow and dropped. */
  maxBufferedBytes?: number;
}

export interface WsHandle {
  clientCount(): number;
  /** Cuts every connection at once (clients reconnect with ?since and catch up). */
  dropClients(): void;
  close(): Promise<void>;
}

function refuse(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: { code: status === 401 ? 'unauthorized' : 'not_found', message } });
  socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Not Found'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

export function attachWebSocket(server: Server, ctx: Context, o: WsOptions = {}): WsHandle {
  const heartbeatMs = o.heartbeatMs ?? 30_000;
  const maxBuffered = o.maxBufferedBytes ?? 4 * 1024 * 1024;
  const log = ctx.log.ws;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const alive = new WeakMap<WebSocket, boolean>();

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuse(socket, 404, 'WebSocket endpoint is /ws');
    const principal = identify(ctx, req.headers);
    if (!principal) return refuse(socket, 401, 'sign in, or send Authorization: Bearer <api-key>');
    const sinceRaw = url.searchParams.get('since');
    const since = sinceRaw !== null && /^\d+$/.test(sinceRaw) ? Number(sinceRaw) : null;
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, principal.role, since));
  });

  function send(ws: WebSocket, message: unknown): boolean {
    if (ws.readyState !== ws.OPEN) return false;
    if (ws.bufferedAmount > maxBuffered) {
      log.warn('dropping a client that cannot keep up', { buffered: ws.bufferedAmount });
      ws.terminate();
      return false;
    }
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Resolves once the socket has sent most of what is queued (false if it closed or stayed stuck). */
  async function drained(ws: WebSocket, low: number, timeoutMs = 30_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (ws.readyState === ws.OPEN && ws.bufferedAmount > low) {
      if (Date.now() > until) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return ws.readyState === ws.OPEN;
  }

  function onConnection(ws: WebSocket, role: string, since: number | null): void {
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    ws.on('error', (err) => log.warn('socket error', { error: err.message }));
    // Live events wait here while the backlog is replayed, then are handed over.
    let replaying = since !== null;
    const pending: BusEvent[] = [];
    const last = lastEventId(ctx.db);
    // A client that remembers an id beyond the log (a restored database) starts from the end.
    let lastSent = since === null ? last : Math.min(since, last);
    const unsubscribe = ctx.bus.subscribe((e) => {
      if (!replaying) {
        if (e.id > lastSent && send(ws, e)) lastSent = e.id;
      } else if (pending.push(e) > 10_000) {
        log.warn('dropping a client whose backlog replay fell too far behind');
        ws.terminate();
      }
    });
    ws.on('close', unsubscribe);
    send(ws, { type: 'hello', role, lastEventId: last, replayFrom: since });
    if (!replaying) return;
    void (async () => {
      // Paced by the socket draining, so a large backlog is not mistaken for a slow client.
      for (;;) {
        const batch = ctx.bus.replay(lastSent, 200);
        for (const e of batch) {
          ws.send(JSON.stringify(e));
          lastSent = e.id;
        }
        if (batch.length < 200) break;
        if (!(await drained(ws, maxBuffered / 4))) {
          if (ws.readyState === ws.OPEN) ws.terminate();
          return;
        }
      }
      replaying = false;
      for (const e of pending) if (e.id > lastSent && send(ws, e)) lastSent = e.id;
      pending.length = 0;
    })().catch((err) => {
      log.warn('backlog replay failed', { error: (err as Error).message });
      ws.terminate();
    });
  }

  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.get(ws)) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, heartbeatMs);
  heartbeat.unref();

  return {
    clientCount: () => wss.clients.size,
    dropClients: () => {
      for (const ws of wss.clients) ws.terminate();
    },
    close: () =>
      new Promise((resolve) => {
        clearInterval(heartbeat);
        for (const ws of wss.clients) ws.close(1001, 'server shutting down');
        wss.close(() => resolve());
      }),
  };
}

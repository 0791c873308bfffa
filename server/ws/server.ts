// /ws: authenticated live events. A client that reconnects with ?since=<id>
// first gets every stored event after that id, then live ones, with no gap
// and no duplicate. Pings find dead peers; a client that cannot keep up is
// dropped so that its queue cannot grow without bound. A socket whose key is
// revoked, or whose session ends, is closed at once.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import express from 'express';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Context } from '../context.js';
import { AppError } from '../domain/errors.js';
import { crossOriginRefusal, type Principal } from '../services/auth.js';
import type { AccessEnded, BusEvent } from '../services/event-bus.js';

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

const REFUSALS: Record<number, [code: string, reason: string]> = {
  401: ['unauthorized', 'Unauthorized'],
  403: ['forbidden', 'Forbidden'],
  404: ['not_found', 'Not Found'],
  429: ['too_many_requests', 'Too Many Requests'],
  503: ['unavailable', 'Service Unavailable'],
};

function refuse(socket: Duplex, status: keyof typeof REFUSALS, message: string, extra = ''): void {
  const [code, reason] = REFUSALS[status];
  const body = JSON.stringify({ error: { code, message } });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}connection: close\r\n\r\n${body}`);
}

/** Close code for a socket whose key was revoked or whose session ended (policy violation). */
const ACCESS_ENDED = 1008;

function ends(ended: AccessEnded, p: Principal): boolean {
  return 'keyId' in ended ? ended.keyId === p.keyId : ended.sessionHash === p.sessionHash;
}

export function attachWebSocket(server: Server, ctx: Context, o: WsOptions = {}): WsHandle {
  const heartbeatMs = o.heartbeatMs ?? 30_000;
  const maxBuffered = o.maxBufferedBytes ?? 4 * 1024 * 1024;
  const log = ctx.log.ws;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const alive = new WeakMap<WebSocket, boolean>();
  const auth = ctx.auth;
  const principals = new Map<WebSocket, Principal>();
  ctx.metrics.trackWebSocketClients(() => wss.clients.size);
  // The upgrade does not pass through express, so it borrows express's request
  // getters (protocol, host, ip) under the same trust proxy setting:
  // X-Forwarded-* count here exactly when they count for the API.
  const proxyView = express();
  proxyView.set('trust proxy', ctx.config.trustProxy);
  const viewOf = (req: IncomingMessage): express.Request =>
    Object.create(proxyView.request, { headers: { value: req.headers }, socket: { value: req.socket }, connection: { value: req.socket } });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuse(socket, 404, 'WebSocket endpoint is /ws');
    const view = viewOf(req);
    const address = view.ip ?? req.socket.remoteAddress ?? 'unknown';
    let principal: Principal | undefined;
    try {
      principal = auth.identify(req.headers, address);
    } catch (err) {
      if (err instanceof AppError && err.code === 'too_many_requests') return refuse(socket, 429, err.message, `retry-after: ${auth.retryAfterS(address)}\r\n`);
      log.warn('could not authenticate an upgrade', { error: (err as Error).message });
      return refuse(socket, 503, 'cannot check credentials now; try again');
    }
    if (!principal) return refuse(socket, 401, 'sign in, or send Authorization: Bearer <api-key>');
    if (principal.via === 'session') {
      // Browsers send Origin on every upgrade; a page on another origin must not get the signed-in user's stream.
      const refusal = crossOriginRefusal({
        origin: view.get('origin'),
        secFetchSite: view.get('sec-fetch-site'),
        ownOrigin: view.host ? `${view.protocol}://${view.host}` : undefined,
        allowed: ctx.config.allowedOrigins,
        originRequired: true,
      });
      if (refusal) return refuse(socket, 403, refusal);
    }
    const sinceRaw = url.searchParams.get('since');
    const since = sinceRaw !== null && /^\d+$/.test(sinceRaw) ? Number(sinceRaw) : null;
    const who = principal;
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, who, since));
  });

  const stopAccessWatch = ctx.bus.onAccessEnded((ended) => {
    for (const [ws, p] of principals) if (ends(ended, p)) ws.close(ACCESS_ENDED, 'access revoked');
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

  function onConnection(ws: WebSocket, principal: Principal, since: number | null): void {
    principals.set(ws, principal);
    ws.on('close', () => principals.delete(ws));
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    ws.on('error', (err) => log.warn('socket error', { error: err.message }));
    // Live events wait here while the backlog is replayed, then are handed over.
    let replaying = since !== null;
    const pending: BusEvent[] = [];
    const last = ctx.bus.lastId();
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
    send(ws, { type: 'hello', role: principal.role, lastEventId: last, replayFrom: since });
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
        stopAccessWatch();
        for (const ws of wss.clients) ws.close(1001, 'server shutting down');
        wss.close(() => resolve());
      }),
  };
}

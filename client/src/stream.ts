// The live connection: one WebSocket, reconnected with backoff. On reconnect
// it asks for ?since=<last id seen>, so nothing that happened while it was
// away is missed.
import type { WireEvent, WireMessage } from '../../server/domain/wire.js';

/** The close code /ws uses when a caller's key is revoked or its session ends. */
const POLICY_VIOLATION = 1008;

export type ConnectionState = 'connecting' | 'live' | 'offline';

export class LiveStream {
  private ws: WebSocket | null = null;
  private lastId: number | null = null;
  private retryMs = 500;
  private timer: number | undefined;
  private stopped = false;

  constructor(
    private readonly onEvent: (e: WireEvent, replayed: boolean) => void,
    private readonly onState: (s: ConnectionState, lastId: number | null) => void,
    /** The server ended this caller's access (key revoked, signed out): retrying cannot help. */
    private readonly onAccessEnded: () => void = () => {},
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close();
    this.ws = null;
  }

  private connect(): void {
    this.onState('connecting', this.lastId);
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const since = this.lastId === null ? '' : `?since=${this.lastId}`;
    const ws = new WebSocket(`${scheme}://${location.host}/ws${since}`);
    this.ws = ws;
    let replayUntil = 0;
    ws.onmessage = (m) => {
      const msg = JSON.parse(String(m.data)) as WireMessage;
      if (msg.type === 'hello') {
        this.retryMs = 500;
        replayUntil = msg.replayFrom === null ? 0 : msg.lastEventId;
        if (this.lastId === null) this.lastId = msg.lastEventId;
        this.onState('live', this.lastId);
        return;
      }
      if (this.lastId !== null && msg.id <= this.lastId) return;
      this.lastId = msg.id;
      this.onEvent(msg, msg.id <= replayUntil);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === POLICY_VIOLATION) {
        this.stopped = true;
        this.onState('offline', this.lastId);
        this.onAccessEnded();
        return;
      }
      this.onState('offline', this.lastId);
      this.timer = window.setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    };
  }
}

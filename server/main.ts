// The one file that touches the process: configuration, the context, listen,
// signals and graceful shutdown. `npm start` runs this file.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { loadConfig, type Config } from './config.js';
import { createContext, type Context, type ContextOverrides } from './context.js';
import { createApp } from './http/app.js';
import { attachWebSocket, type WsHandle, type WsOptions } from './ws/server.js';

export interface RunningServer {
  url: string;
  ctx: Context;
  server: http.Server;
  ws: WsHandle;
  /** Stop accepting, finish in-flight requests, close sockets and the database. */
  close(): Promise<void>;
}

export async function startServer(config: Config, overrides: ContextOverrides & { ws?: WsOptions } = {}): Promise<RunningServer> {
  const ctx = await createContext(config, overrides);
  let ws: WsHandle | undefined;
  const app = createApp(ctx, { health: () => ({ websocketClients: ws?.clientCount() ?? 0 }) });
  const server = http.createServer(app);
  ws = attachWebSocket(server, ctx, overrides.ws);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  ctx.jobs.start();
  ctx.retention.start();
  ctx.health.start();
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port}`;
  let closing: Promise<void> | null = null;
  return {
    url, ctx, server, ws,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await ws.close();
        await stopped;
        await ctx.close();
      })();
      return closing;
    },
  };
}

export async function runServer(config: Config): Promise<void> {
  const running = await startServer(config);
  const { ctx } = running;
  if (ctx.generatedAdminKey) {
    process.stdout.write(
      `\nlatentwatch: created the first admin API key. It is shown only this once; keep it safe:\n\n  ${ctx.generatedAdminKey}\n\n` +
        'Sign in to the dashboard with it, or send it as "Authorization: Bearer <key>".\n\n',
    );
  }
  const active = ctx.registry.activeRow();
  ctx.log.main.info('latentwatch listening', { url: running.url, backend: ctx.backend.name, activeModel: active?.id ?? null, dataDir: config.dataDir });
  process.stdout.write(`latentwatch serving ${running.url} (backend ${ctx.backend.name}, model ${active?.id ?? 'none yet'})\n`);
  const shutdown = (signal: string) => {
    ctx.log.main.info('shutting down', { signal });
    const force = setTimeout(() => {
      ctx.log.main.error('shutdown timed out; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      (err) => {
        ctx.log.main.error('shutdown failed', { error: (err as Error).message });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runServer(loadConfig(process.env)).catch((err) => {
    process.stderr.write(`latentwatch: ${(err as Error).message}\n`);
    process.exit(1);
  });
}

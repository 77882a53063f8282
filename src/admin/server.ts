import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { getRequestListener } from '@hono/node-server';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { RunningGateway } from '../server/start.ts';

export interface AdminOptions {
  gateway: RunningGateway;
  metrics: Metrics;
  host?: string;
  port?: number;
  log?: Logger;
  tls?: { cert: string; key: string };
  rewrapRatePerSec?: number;
}

export interface RunningAdmin {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** The admin port: health, metrics, and (behind admin credentials) the key lifecycle API. */
export function createAdminApp(o: AdminOptions): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => (o.gateway.health.live() ? c.text('ok') : c.text('stopping', 503)));
  app.get('/readyz', async (c) => {
    const failing = await o.gateway.health.ready();
    return failing ? c.json({ ready: false, failing }, 503) : c.json({ ready: true });
  });
  app.get('/metrics', async (c) => c.text(await o.metrics.render(), 200, { 'Content-Type': o.metrics.registry.contentType }));
  return app;
}

export async function startAdmin(o: AdminOptions): Promise<RunningAdmin> {
  const app = createAdminApp(o);
  const listener = getRequestListener(app.fetch);
  const server: Server = o.tls
    ? (createHttpsServer({ cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key) }, listener) as unknown as Server)
    : createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? 'https' : 'http'}://${o.host ?? '127.0.0.1'}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

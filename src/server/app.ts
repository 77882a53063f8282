import { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { readyAnswer, type ReadyState } from '../ops/readiness.ts';
import type { Gateway } from './gateway.ts';

export interface Health {
  /** Liveness: the process serves requests. */
  live(): boolean;
  /** Readiness from cached state (src/ops/readiness.ts): no round trip per probe. */
  ready(): ReadyState;
}

/**
 * The S3 port. hono routes the two plain endpoints; every S3 request is handed to the gateway with the raw
 * Node request and response, since S3 dispatches on method and query rather than on paths, and Node streams
 * keep the hot path as fast as raw node:http (hono's Web-stream body halved upload throughput here).
 */
export function createS3App(gateway: Gateway, health: Health): Hono<{ Bindings: HttpBindings }> {
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.get('/healthz', (c) => (health.live() ? c.text('ok') : c.text('stopping', 503)));
  app.get('/readyz', (c) => {
    const a = readyAnswer(health.ready());
    return c.json(a.body, a.status);
  });
  app.all('*', async (c) => {
    await gateway.handle(c.env.incoming, c.env.outgoing);
    return RESPONSE_ALREADY_SENT;
  });
  return app;
}

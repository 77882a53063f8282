import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Hono } from 'hono';
import { getRequestListener } from '@hono/node-server';
import { DASHBOARD_HTML } from '../dashboard/page.ts';
import { S3Error, isS3Error } from '../errors.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { PROBE_SERVER_OPTIONS, hostless } from '../ops/probes.ts';
import { readyAnswer } from '../ops/readiness.ts';
import { mountAccess, errorBody } from './api/access.ts';
import { auditApi } from './api/audit.ts';
import { cmkApi } from './api/cmk.ts';
import { dashboardApi } from './api/dashboard.ts';
import { datasetsApi } from './api/datasets.ts';
import type { AdminContext, AdminHost, AdminVars } from './api/context.ts';
import { jobsApi } from './api/jobs.ts';
import { keysApi } from './api/keys.ts';
import { kmsApi } from './api/kms.ts';
import { objectsApi } from './api/objects.ts';
import { rewrapApi } from './api/rewrap.ts';
import type { ThrottleOptions } from './auth.ts';
import { MigrateManager } from './migrate.ts';
import { RotationPolicy } from './policy.ts';
import { RewrapManager, type RewrapState } from './rewrap.ts';

export interface AdminDatasetConfig {
  name: string;
  cmk?: string;
  rotateEveryDays?: number;
  allowPlaintextRead?: boolean;
}

export interface AdminOptions {
  gateway: AdminHost;
  metrics: Metrics;
  host?: string;
  port?: number;
  log?: Logger;
  tls?: { cert: string; key: string };
  rewrapRatePerSec?: number;
  rewrapConcurrency?: number;
  /** Dataset settings (rotateEveryDays drives the automatic rotation policy). */
  datasets?: AdminDatasetConfig[];
  /** Admin session lifetime (POST /admin/login), default 1 hour. */
  sessionTtlMs?: number;
  /** Resume re-wrap / migration jobs left running by a previous process (default true). */
  resumeJobs?: boolean;
  /** Failed-login throttling (per source address and per access key). */
  loginThrottle?: ThrottleOptions;
  /** Waiting period of `keys destroy` (default: the settings table's keyDeletionWaitSeconds). */
  keyDeletionWaitSeconds?: number;
}

export interface RunningAdmin {
  url: string;
  port: number;
  server: Server;
  rewrap: RewrapManager;
  migrate: MigrateManager;
  policy: RotationPolicy;
  close(): Promise<void>;
}

export { SESSION_COOKIE } from './auth.ts';

interface AdminState {
  rewrap: RewrapManager;
  migrate: MigrateManager;
  policy: RotationPolicy;
  /** Run by close(): what the app holds besides the jobs (the refusal log's pending count). */
  closers?: (() => Promise<void>)[];
}

/**
 * The admin port: health, metrics and the dashboard in the open; behind admin credentials (api/access.ts) the
 * key lifecycle API, one module per area under api/.
 */
export function createAdminApp(o: AdminOptions, state?: AdminState): Hono<AdminVars> {
  const app = new Hono<AdminVars>();
  const g = o.gateway;
  const gw = g.gateway;
  const st: AdminState =
    state ??
    (() => {
      const rewrap = new RewrapManager({ backend: gw.backend, store: gw.store, keys: g.keys, audit: g.audit, metaBucket: gw.metaBucket, ratePerSec: o.rewrapRatePerSec, concurrency: o.rewrapConcurrency, log: o.log });
      const migrate = new MigrateManager({ backend: gw.backend, store: gw.store, audit: g.audit, metaBucket: gw.metaBucket, log: o.log });
      return { rewrap, migrate, policy: new RotationPolicy(g.keys, rewrap, o.datasets ?? [], o.log, { keyDeletionWaitSeconds: o.keyDeletionWaitSeconds }) };
    })();
  const ctx: AdminContext = { gw, keys: g.keys, audit: g.audit, rewrap: st.rewrap, migrate: st.migrate, policy: st.policy, log: o.log };

  app.onError((e, c) => {
    if (isS3Error(e)) return c.json(errorBody(e), e.status as 400);
    if ((e as { name?: string }).name === 'FormatError') return c.json({ error: 'IntegrityError', message: e.message }, 500);
    o.log?.error({ err: e }, 'admin request failed');
    return c.json({ error: 'InternalError', message: 'internal error' }, 500);
  });

  app.get('/healthz', (c) => (g.health.live() ? c.text('ok') : c.text('stopping', 503)));
  app.get('/readyz', (c) => {
    const a = readyAnswer(g.health.ready());
    return c.json(a.body, a.status);
  });
  app.get('/metrics', async (c) => c.text(await o.metrics.render(), 200, { 'Content-Type': o.metrics.registry.contentType }));
  app.get('/dashboard', (c) => c.html(DASHBOARD_HTML));
  app.get('/', (c) => c.redirect('/dashboard'));

  mountAccess(app, ctx, { metrics: o.metrics, tls: !!o.tls, sessionTtlMs: o.sessionTtlMs, loginThrottle: o.loginThrottle, closers: st.closers ?? [] });
  app.route('/admin/keys', keysApi(ctx));
  app.route('/admin/objects', objectsApi(ctx));
  app.route('/admin/rewrap', rewrapApi(ctx));
  app.route('/admin/cmk', cmkApi(ctx));
  app.route('/admin/audit', auditApi(ctx));
  app.route('/admin/datasets', datasetsApi(ctx, st.closers));
  app.route('/admin/kms', kmsApi(ctx));
  app.route('/admin/dashboard', dashboardApi(ctx, { datasets: o.datasets ?? [], ready: () => g.health.ready() }));
  app.route('/admin', jobsApi(ctx));
  app.all('/admin/*', () => {
    throw new S3Error('InvalidURI', 'unknown admin endpoint');
  });
  return app;
}

export async function startAdmin(o: AdminOptions): Promise<RunningAdmin> {
  const gw = o.gateway.gateway;
  const rewrap = new RewrapManager({
    backend: gw.backend,
    store: gw.store,
    keys: o.gateway.keys,
    audit: o.gateway.audit,
    metaBucket: gw.metaBucket,
    ratePerSec: o.rewrapRatePerSec,
    concurrency: o.rewrapConcurrency,
    log: o.log,
  });
  const migrate = new MigrateManager({ backend: gw.backend, store: gw.store, audit: o.gateway.audit, metaBucket: gw.metaBucket, log: o.log });
  const policy = new RotationPolicy(o.gateway.keys, rewrap, o.datasets ?? [], o.log, { keyDeletionWaitSeconds: o.keyDeletionWaitSeconds });
  const closers: (() => Promise<void>)[] = [];
  const app = createAdminApp(o, { rewrap, migrate, policy, closers });
  const honoListener = getRequestListener(app.fetch);
  // hono's listener answers through its own promise and reports its errors through onError: nothing to await here.
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    if (hostless(req, res)) void honoListener(req, res);
  };
  const server: Server = o.tls
    ? createHttpsServer({ cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key), ...PROBE_SERVER_OPTIONS }, listener)
    : createHttpServer(PROBE_SERVER_OPTIONS, listener);
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let watch: NodeJS.Timeout | undefined;
  if (o.resumeJobs !== false) {
    void rewrap.resumeAll().catch((e) => o.log?.warn({ err: e }, 'rewrap resume failed'));
    void migrate.resumeAll().catch((e) => o.log?.warn({ err: e }, 'migrate resume failed'));
    // a job whose gateway died keeps its lease until it lapses: look again every lease period
    watch = setInterval(() => void rewrap.resumeAll().catch((e) => o.log?.warn({ err: e }, 'rewrap resume failed')), rewrap.leaseMs);
    watch.unref();
  }
  policy.start();
  // Re-wrap progress as metrics: headers still to visit per dataset, headers resealed and header keys re-wrapped so far.
  const reported = new Map<string, { headers: number; keys: number }>();
  const report = (s: RewrapState) => {
    const before = reported.get(s.dataset) ?? { headers: 0, keys: 0 };
    if (s.rewrapped > before.headers) o.metrics.addRewrapDone(s.dataset, s.rewrapped - before.headers);
    const keys = s.headerKeysRewrapped ?? 0;
    if (keys > before.keys) o.metrics.addRewrapHeaderKeys(s.dataset, keys - before.keys);
    reported.set(s.dataset, { headers: s.rewrapped, keys });
    o.metrics.setRewrapPending(s.dataset, s.state === 'running' ? Math.max(0, s.total - s.done) : (s.pending ?? 0));
  };
  const progress = setInterval(() => rewrap.runningStates().forEach(report), 500);
  progress.unref();
  rewrap.onFinished = (s) => {
    report(s);
    reported.delete(s.dataset);
    if (s.state === 'done') o.metrics.jobSucceeded('rewrap', s.dataset);
  };
  return {
    url: `${o.tls ? 'https' : 'http'}://${o.host ?? '127.0.0.1'}:${port}`,
    port,
    server,
    rewrap,
    migrate,
    policy,
    async close() {
      clearInterval(progress);
      if (watch) clearInterval(watch);
      policy.stop();
      await Promise.all([rewrap.close(), migrate.close(), ...closers.map((f) => f())]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { DASHBOARD_HTML } from '../dashboard/page.ts';
import { readBodyLimited } from '../s3/xml.ts';
import type { RewrapState } from './rewrap.ts';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Hono, type Context } from 'hono';
import { getRequestListener } from '@hono/node-server';
import { S3Error, isS3Error } from '../errors.ts';
import { auditKeyName, AUDIT_PREFIX } from '../keys/audit.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { sha256Hex, signaturesEqual, verifyRequest } from '../s3/sigv4.ts';
import {
  LoginThrottle, RefusalLog, SESSION_COOKIE, Sessions, checkSameOrigin, checkSessionRequest, requireJsonBody, sessionToken,
  type ThrottleOptions,
} from './auth.ts';
import type { RunningGateway } from '../server/start.ts';
import type { User } from '../server/users.ts';
import { MigrateManager } from './migrate.ts';
import { rekeyObject, revokeObject } from './objects.ts';
import { RotationPolicy } from './policy.ts';
import { RewrapManager } from './rewrap.ts';
import { listPages } from './util.ts';

/** Largest admin request body (keystore restores are the big ones). Anything larger is refused unread. */
const MAX_ADMIN_BODY = 8 * 1024 * 1024;

/**
 * Read a request body up to `max` bytes, before authentication has been decided: a declared or streamed
 * body over the limit is refused (413) instead of buffered, so anonymous clients cannot fill memory.
 */
async function readLimited(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > max) throw new S3Error('EntityTooLarge', `admin request bodies are limited to ${max} bytes`);
  return readBodyLimited(req, max);
}

export interface AdminDatasetConfig {
  name: string;
  cmk?: string;
  rotateEveryDays?: number;
  allowPlaintextRead?: boolean;
}

export interface AdminOptions {
  gateway: RunningGateway;
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

type Json = Record<string, unknown>;

const errorBody = (e: S3Error) => ({ error: e.code, message: e.message });

const optInt = (v: unknown, name: string): number | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new S3Error('InvalidArgument', `${name} must be a non-negative integer`);
  return n;
};
const reqStr = (v: unknown, name: string): string => {
  if (typeof v !== 'string' || !v) throw new S3Error('InvalidArgument', `${name} is required`);
  return v;
};

/** The admin port: health, metrics, and (behind admin credentials) the key lifecycle API. */
export function createAdminApp(o: AdminOptions, state?: AdminState): Hono {
  const app = new Hono();
  const g = o.gateway;
  const gw = g.gateway;
  const keys = g.keys;
  const audit = g.audit;
  const store = gw.store;
  const st: AdminState =
    state ??
    (() => {
      const rewrap = new RewrapManager({ backend: gw.backend, store, keys, audit, metaBucket: gw.metaBucket, ratePerSec: o.rewrapRatePerSec, concurrency: o.rewrapConcurrency, log: o.log });
      const migrate = new MigrateManager({ backend: gw.backend, store, audit, metaBucket: gw.metaBucket, log: o.log });
      return { rewrap, migrate, policy: new RotationPolicy(keys, rewrap, o.datasets ?? [], o.log) };
    })();
  const closers = st.closers ?? [];
  const sessions = new Sessions(o.sessionTtlMs ?? 3_600_000);
  const throttle = new LoginThrottle(o.loginThrottle);
  const refusals = new RefusalLog({ audit, log: o.log, onRefusal: (recorded) => o.metrics.adminRefused(recorded) });
  closers.push(() => refusals.close());
  const tls = !!o.tls;
  const incomingOf = (c: Context) => (c.env as { incoming: IncomingMessage }).incoming;
  const sourceOf = (c: Context) => incomingOf(c).socket.remoteAddress ?? 'unknown';

  const refuse = async (c: Context, e: S3Error, who: { accessKey?: string; authenticated: boolean }, event?: string) => {
    await refusals.record(
      { method: c.req.method, path: new URL(c.req.url).pathname, code: e.code, accessKey: who.accessKey, authenticated: who.authenticated, source: sourceOf(c) },
      event,
    );
    // A refused request may still be sending its body: it is never read, so close the connection after the answer.
    if (!incomingOf(c).complete) c.header('Connection', 'close');
    return c.json(errorBody(e), e.status as 403);
  };

  app.onError((e, c) => {
    if (isS3Error(e)) return c.json(errorBody(e), e.status as 400);
    if ((e as { name?: string }).name === 'FormatError') return c.json({ error: 'IntegrityError', message: (e as Error).message }, 500);
    o.log?.error({ err: e }, 'admin request failed');
    return c.json({ error: 'InternalError', message: 'internal error' }, 500);
  });

  app.get('/healthz', (c) => (g.health.live() ? c.text('ok') : c.text('stopping', 503)));
  app.get('/readyz', async (c) => {
    const failing = await g.health.ready();
    return failing ? c.json({ ready: false, failing }, 503) : c.json({ ready: true });
  });
  app.get('/metrics', async (c) => c.text(await o.metrics.render(), 200, { 'Content-Type': o.metrics.registry.contentType }));
  app.get('/dashboard', (c) => c.html(DASHBOARD_HTML));
  app.get('/', (c) => c.redirect('/dashboard'));

  app.post('/admin/login', async (c) => {
    const incoming = incomingOf(c);
    const source = `ip:${sourceOf(c)}`;
    let body: Json;
    try {
      checkSameOrigin(incoming, tls);
      // Throttled sources are refused before their body is read.
      const wait = throttle.retryAfterMs([source]);
      if (wait > 0) {
        c.header('Retry-After', String(Math.ceil(wait / 1000)));
        return await refuse(c, new S3Error('TooManyRequests', 'too many failed logins from this address; retry later'), { authenticated: false }, 'admin.login.throttled');
      }
      requireJsonBody(incoming);
      body = JSON.parse((await readLimited(incoming, 64 * 1024)).toString('utf8')) as Json;
      if (!body || typeof body !== 'object') throw new S3Error('InvalidArgument');
    } catch (e) {
      throttle.failed([source]);
      const err = isS3Error(e) && e.code !== 'InvalidArgument' ? e : new S3Error('InvalidArgument', 'expected a JSON body {accessKey, secretKey}');
      return refuse(c, err, { authenticated: false });
    }
    const ak = typeof body.accessKey === 'string' ? body.accessKey : '';
    const sk = typeof body.secretKey === 'string' ? body.secretKey : '';
    const ids = ak ? [source, `key:${ak}`] : [source];
    const wait = throttle.retryAfterMs(ids);
    if (wait > 0) {
      c.header('Retry-After', String(Math.ceil(wait / 1000)));
      return refuse(c, new S3Error('TooManyRequests', 'too many failed logins; retry later'), { accessKey: ak || undefined, authenticated: false }, 'admin.login.throttled');
    }
    const user = gw.users.checkSecret(ak, sk);
    if (!user) {
      throttle.failed(ids);
      return refuse(c, new S3Error('AccessDenied', 'invalid credentials'), { accessKey: ak || undefined, authenticated: false });
    }
    if (!user.admin) return refuse(c, new S3Error('AccessDenied', 'not an admin user'), { accessKey: ak, authenticated: true });
    const { token, session } = sessions.create(user.accessKey);
    const secure = o.tls ? '; Secure' : '';
    c.header('Set-Cookie', `${SESSION_COOKIE}=${token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(sessions.ttlMs / 1000)}${secure}`);
    await audit.append('admin.login', { accessKey: user.accessKey }, `admin:${user.accessKey}`);
    return c.json({ ok: true, accessKey: user.accessKey, csrfToken: session.csrf, expiresAt: new Date(session.expires).toISOString() });
  });

  // ---------------------------------------------------------------- authentication of everything else
  app.use('/admin/*', async (c, next) => {
    const incoming = incomingOf(c);
    const raw = incoming.url ?? '/';
    const q = raw.indexOf('?');
    let user: User | undefined;
    let presented: string | undefined;
    let authenticated = false;
    let body: Buffer;
    let signed = false;
    try {
      // Who is calling is settled from the headers alone: no byte of the body is read before that.
      let payloadHash: string | undefined;
      if (incoming.headers.authorization || /[?&]X-Amz-/i.test(raw)) {
        const auth = verifyRequest(
          { method: incoming.method ?? c.req.method, path: q < 0 ? raw : raw.slice(0, q), query: q < 0 ? '' : raw.slice(q + 1), headers: incoming.headers },
          gw.users.secretFor,
          { region: gw.region },
        );
        presented = auth.accessKey;
        signed = true;
        if (auth.payloadMode === 'signed') payloadHash = auth.payloadHash;
        else if (auth.payloadMode !== 'unsigned') throw new S3Error('InvalidRequest', 'admin requests must sign their payload');
        user = gw.users.get(auth.accessKey);
        authenticated = true;
      } else {
        const session = sessions.get(sessionToken(incoming));
        if (!session) throw new S3Error('AccessDenied', 'admin credentials required (SigV4 or a session from POST /admin/login)');
        presented = session.accessKey;
        user = gw.users.get(session.accessKey);
        if (!user) throw new S3Error('AccessDenied', 'session user no longer exists');
        authenticated = true;
        checkSessionRequest(incoming, session, tls);
      }
      if (!user?.admin) throw new S3Error('AccessDenied', 'this user is not an administrator');
      if (c.req.method === 'POST') requireJsonBody(incoming);
      body = await readLimited(incoming, MAX_ADMIN_BODY);
      if (payloadHash !== undefined) {
        if (!signaturesEqual(sha256Hex(body), payloadHash)) throw new S3Error('XAmzContentSHA256Mismatch');
      } else if (signed && body.length > 0) {
        // UNSIGNED-PAYLOAD: only for requests without a body.
        throw new S3Error('InvalidRequest', 'admin requests must sign their payload');
      }
    } catch (e) {
      return refuse(c, isS3Error(e) ? e : new S3Error('AccessDenied'), { accessKey: presented, authenticated });
    }
    c.set('actor' as never, `admin:${user.accessKey}` as never);
    c.set('body' as never, body as never);
    c.set('rawPath' as never, (q < 0 ? raw : raw.slice(0, q)) as never);
    await next();
  });

  const actor = (c: Context) => c.get('actor' as never) as string;
  const json = (c: Context): Json => {
    const b = c.get('body' as never) as Buffer;
    if (!b.length) return {};
    try {
      const v = JSON.parse(b.toString('utf8')) as unknown;
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error();
      return v as Json;
    } catch {
      throw new S3Error('InvalidArgument', 'expected a JSON object body');
    }
  };
  /** Path segments after /admin/, percent-decoded one by one (dataset names carry '/', sent as %2F). */
  const segs = (c: Context): string[] => {
    const p = c.get('rawPath' as never) as string;
    return p
      .replace(/^\/admin\/?/, '')
      .split('/')
      .filter((s, i, a) => s !== '' || i < a.length - 1)
      .map((s) => {
        try {
          return decodeURIComponent(s);
        } catch {
          throw new S3Error('InvalidURI');
        }
      });
  };
  const datasetOf = async (name: string) => {
    const v = await keys.show(name);
    if (!v) throw new S3Error('NoSuchKey', `unknown dataset ${name}`);
    return v;
  };

  app.post('/admin/logout', (c) => {
    sessions.delete(sessionToken(incomingOf(c)));
    c.header('Set-Cookie', `${SESSION_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0`);
    return c.json({ ok: true });
  });
  // A reloaded dashboard gets its session's CSRF token here (a cross-origin page cannot read this answer).
  app.get('/admin/whoami', (c) => {
    const session = sessions.get(sessionToken(incomingOf(c)));
    return c.json({ actor: actor(c), ...(session ? { accessKey: session.accessKey, csrfToken: session.csrf } : {}) });
  });

  // ---------------------------------------------------------------- KEKs
  app.get('/admin/keys', async (c) => c.json({ datasets: await keys.list() }));
  app.get('/admin/keys/*', async (c) => {
    const [, ds, extra] = segs(c);
    if (!ds || extra !== undefined) throw new S3Error('InvalidURI', 'expected /admin/keys/<url-encoded dataset>');
    return c.json(await datasetOf(ds));
  });
  app.post('/admin/keys/*', async (c) => {
    const [, ds, op, extra] = segs(c);
    if (!ds || !op || extra !== undefined) throw new S3Error('InvalidURI', 'expected /admin/keys/<url-encoded dataset>/<operation>');
    const b = json(c);
    const version = optInt(b.version, 'version');
    switch (op) {
      case 'create': {
        const existed = !!(await keys.show(ds));
        await keys.activeKek(ds);
        if (!existed) return c.json({ created: true, ...(await datasetOf(ds)) });
        return c.json({ created: false, ...(await datasetOf(ds)) });
      }
      case 'rotate': {
        await datasetOf(ds);
        const v = await keys.rotate(ds, actor(c));
        const job = b.rewrap === true ? await st.rewrap.start(ds, actor(c), { fresh: true }) : undefined;
        return c.json({ dataset: ds, version: v, ...(job ? { rewrap: job } : {}) });
      }
      case 'revoke':
        await datasetOf(ds);
        return c.json({ dataset: ds, revoked: await keys.revoke(ds, version, actor(c)) });
      case 'restore':
        await datasetOf(ds);
        return c.json({ dataset: ds, restored: await keys.restore(ds, version, actor(c)) });
      case 'destroy': {
        const view = await datasetOf(ds);
        if (version === undefined) throw new S3Error('InvalidArgument', 'version is required');
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'destroy is irreversible: pass confirm: true');
        const v = view.versions.find((x) => x.version === version);
        if (!v) throw new S3Error('InvalidArgument', `dataset ${ds} has no key version ${version}`);
        if (v.state === 'active') throw new S3Error('InvalidRequest', `key version ${version} is active: rotate first`);
        // Always a fresh scan, even for a dataset whose record says format 2 only: a gateway of an older release
        // still running may have written format-1 headers under this version.
        const refs = (await st.rewrap.scan(ds)).byVersion[version] ?? 0;
        if (refs > 0 && b.force !== true) {
          throw new S3Error('InvalidRequest', `${refs} header(s) still reference key version ${version}: run the re-wrap first (or pass force)`);
        }
        await keys.destroy(ds, version, actor(c));
        return c.json({ dataset: ds, destroyed: version, referencingHeaders: refs, forced: refs > 0 });
      }
      default:
        throw new S3Error('InvalidURI', `unknown key operation ${op}`);
    }
  });

  // ---------------------------------------------------------------- objects (DEK level)
  app.post('/admin/objects/revoke', async (c) => {
    const b = json(c);
    const bucket = reqStr(b.bucket, 'bucket');
    const key = reqStr(b.key, 'key');
    return c.json(await revokeObject(store, keys, bucket, key, optInt(b.block, 'block'), actor(c)));
  });
  app.post('/admin/objects/rekey', async (c) => {
    const b = json(c);
    const r = await rekeyObject(store, reqStr(b.bucket, 'bucket'), reqStr(b.key, 'key'));
    await audit.append('object.rekey', { ...r }, actor(c));
    return c.json(r);
  });

  // ---------------------------------------------------------------- re-wrap
  app.post('/admin/rewrap/*', async (c) => {
    const [, ds] = segs(c);
    if (!ds) throw new S3Error('InvalidURI', 'expected /admin/rewrap/<url-encoded dataset>');
    const b = json(c);
    return c.json(await st.rewrap.start(ds, actor(c), { fresh: b.fresh === true, rekey: b.rekey === true }));
  });
  app.get('/admin/rewrap/*', async (c) => {
    const [, ds] = segs(c);
    if (!ds) throw new S3Error('InvalidURI', 'expected /admin/rewrap/<url-encoded dataset>');
    await datasetOf(ds);
    const job = await st.rewrap.status(ds);
    const running = st.rewrap.isRunning(ds);
    if (c.req.query('scan') === '0') return c.json({ dataset: ds, running, job, pending: job?.pending ?? null });
    const scan = await st.rewrap.scan(ds);
    return c.json({ dataset: ds, running, activeVersion: scan.activeVersion, total: scan.total, pending: scan.pending, byVersion: scan.byVersion, job });
  });

  // ---------------------------------------------------------------- CMKs
  app.get('/admin/cmk', async (c) => c.json({ cmks: await keys.cmkStatus() }));
  app.post('/admin/cmk/*', async (c) => {
    const [, op] = segs(c);
    const b = json(c);
    const cmk = typeof b.cmk === 'string' && b.cmk ? b.cmk : keys.defaultCmk;
    keys.cmk(cmk);
    if (op === 'rotate') return c.json(await keys.cmkRotate(cmk, actor(c)));
    const version = optInt(b.version, 'version');
    if (version === undefined) throw new S3Error('InvalidArgument', 'version is required');
    switch (op) {
      case 'enable':
        await keys.cmkEnable(cmk, version, actor(c));
        break;
      case 'disable':
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'disabling a CMK version makes its data unreadable: pass confirm: true');
        await keys.cmkDisable(cmk, version, actor(c));
        break;
      case 'destroy':
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'destroy is irreversible: pass confirm: true');
        await keys.cmkDestroy(cmk, version, actor(c));
        break;
      default:
        throw new S3Error('InvalidURI', `unknown CMK operation ${op}`);
    }
    return c.json({ cmk, version, op, versions: await keys.cmk(cmk).versions() });
  });

  // ---------------------------------------------------------------- audit
  app.get('/admin/audit', async (c) => {
    const limit = optInt(c.req.query('limit'), 'limit') ?? 50;
    let last = 0;
    for await (const page of listPages(gw.backend, gw.metaBucket, AUDIT_PREFIX)) {
      const k = page[page.length - 1]?.key;
      if (k) last = Math.max(last, Number(k.slice(AUDIT_PREFIX.length, AUDIT_PREFIX.length + 12)) || 0);
    }
    const since = Math.max(1, last - limit + 1);
    return c.json({ entries: await audit.list({ since, limit }), head: last, first: since, key: auditKeyName(last) });
  });
  app.get('/admin/audit/verify', async (c) => c.json(await audit.verify()));

  // ---------------------------------------------------------------- backup / restore
  app.get('/admin/backup', async (c) => {
    const buf = await keys.exportKeystore(actor(c));
    return c.body(buf.toString('utf8'), 200, { 'Content-Type': 'application/json' });
  });
  app.post('/admin/restore', async (c) => {
    const b = c.get('body' as never) as Buffer;
    return c.json(await keys.importKeystore(b, actor(c)));
  });

  // ---------------------------------------------------------------- migration
  app.post('/admin/migrate/*', async (c) => {
    const [, bucket] = segs(c);
    if (!bucket) throw new S3Error('InvalidURI', 'expected /admin/migrate/<bucket>');
    const b = json(c);
    if (b.stop === true) return c.json(await st.migrate.stop(bucket));
    const rate = b.rate === undefined ? undefined : Number(b.rate);
    if (rate !== undefined && !(rate >= 0)) throw new S3Error('InvalidArgument', 'rate must be >= 0');
    return c.json(await st.migrate.start(bucket, actor(c), { rate, fresh: b.fresh === true }));
  });
  app.get('/admin/migrate/*', async (c) => {
    const [, bucket] = segs(c);
    if (!bucket) throw new S3Error('InvalidURI', 'expected /admin/migrate/<bucket>');
    const s = await st.migrate.status(bucket);
    if (!s) throw new S3Error('NoSuchKey', `no migration for bucket ${bucket}`);
    return c.json(s);
  });

  // ---------------------------------------------------------------- gc (module by another engineer)
  app.post('/admin/gc', async (c) => {
    const b = json(c);
    let mod: { runGc?: (ctx: unknown, opts: { apply: boolean; olderThanMs?: number }) => Promise<unknown> };
    try {
      mod = (await import(new URL('./gc.ts', import.meta.url).href)) as typeof mod;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || /Cannot find module/.test((e as Error).message)) {
        return c.json({ error: 'NotImplemented', message: 'gc is not available in this build' }, 501);
      }
      throw e;
    }
    if (typeof mod.runGc !== 'function') return c.json({ error: 'NotImplemented', message: 'gc is not available in this build' }, 501);
    const apply = b.apply === true;
    const olderThanMs = optInt(b.olderThanMs, 'olderThanMs');
    const r = await mod.runGc({ backend: gw.backend, store, keys, metaBucket: gw.metaBucket }, { apply, ...(olderThanMs !== undefined ? { olderThanMs } : {}) });
    if (apply) await audit.append('gc.apply', { removed: (r as { removed?: number }).removed ?? null }, actor(c));
    return c.json({ apply, ...(r as Json) });
  });

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
  const policy = new RotationPolicy(o.gateway.keys, rewrap, o.datasets ?? [], o.log);
  const closers: (() => Promise<void>)[] = [];
  const app = createAdminApp(o, { rewrap, migrate, policy, closers });
  const listener = getRequestListener(app.fetch);
  const server: Server = o.tls
    ? (createHttpsServer({ cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key) }, listener) as unknown as Server)
    : createHttpServer(listener);
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

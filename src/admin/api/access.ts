/**
 * The door to /admin/*: POST /admin/login (a dashboard session), the authentication middleware for everything
 * else (SigV4 or session; see ../auth.ts for why a session also needs its CSRF token and the admin origin),
 * POST /admin/logout and GET /admin/whoami.
 */
import type { IncomingMessage } from 'node:http';
import type { Context, Hono } from 'hono';
import { S3Error, isS3Error } from '../../errors.ts';
import type { Metrics } from '../../ops/metrics.ts';
import { readBodyLimited } from '../../s3/xml.ts';
import { sha256Hex, signaturesEqual, verifyRequest } from '../../s3/sigv4.ts';
import type { User } from '../../auth/users.ts';
import { adminActor, ROOT_SCOPE } from '../../auth/tenants.ts';
import {
  LoginThrottle, RefusalLog, SESSION_COOKIE, Sessions, checkSameOrigin, checkSessionRequest, requireJsonBody, sessionToken,
  type ThrottleOptions,
} from '../auth.ts';
import { OutOfScope, type AdminContext, type AdminVars, type Json } from './context.ts';

/** Largest admin request body (keystore restores are the big ones). Anything larger is refused unread. */
const MAX_ADMIN_BODY = 8 * 1024 * 1024;
const MAX_LOGIN_BODY = 64 * 1024;

/** A declared or streamed body over the limit is refused (EntityTooLarge) instead of buffered. */
async function readLimited(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > max) throw new S3Error('EntityTooLarge', `admin request bodies are limited to ${max} bytes`);
  return readBodyLimited(req, max);
}

export const errorBody = (e: S3Error): { error: string; message: string } => ({ error: e.code, message: e.message });

export interface AccessOptions {
  metrics: Metrics;
  tls: boolean;
  sessionTtlMs?: number;
  loginThrottle?: ThrottleOptions;
  /** Where the refusal log registers its shutdown flush. */
  closers: (() => Promise<void>)[];
}

/** What the helpers below use of a hono context (any route's: their path and input types differ). */
type ReqCtx = Pick<Context, 'req' | 'env' | 'header' | 'json'>;

const incomingOf = (c: ReqCtx) => (c.env as { incoming: IncomingMessage }).incoming;
const sourceOf = (c: ReqCtx) => incomingOf(c).socket.remoteAddress ?? 'unknown';
const retryAfter = (c: ReqCtx, ms: number) => c.header('Retry-After', String(Math.ceil(ms / 1000)));

export function mountAccess(app: Hono<AdminVars>, ctx: AdminContext, o: AccessOptions): void {
  const { gw, audit } = ctx;
  const sessions = new Sessions(o.sessionTtlMs ?? 3_600_000);
  const throttle = new LoginThrottle(o.loginThrottle);
  const refusals = new RefusalLog({ audit, log: ctx.log, onRefusal: (recorded) => o.metrics.adminRefused(recorded) });
  o.closers.push(() => refusals.close());

  const refuse = async (c: ReqCtx, e: S3Error, who: { accessKey?: string; authenticated: boolean }, event?: string) => {
    await refusals.record(
      { method: c.req.method, path: new URL(c.req.url).pathname, code: e.code, accessKey: who.accessKey, authenticated: who.authenticated, source: sourceOf(c) },
      event,
    );
    // A refused request may still be sending its body: it is never read, so close the connection after the answer.
    if (!incomingOf(c).complete) c.header('Connection', 'close');
    return c.json(errorBody(e), e.status as 403);
  };

  app.post('/admin/login', async (c) => {
    const incoming = incomingOf(c);
    const source = `ip:${sourceOf(c)}`;
    let body: Json;
    try {
      checkSameOrigin(incoming, o.tls);
      // Throttled sources are refused before their body is read.
      const wait = throttle.retryAfterMs([source]);
      if (wait > 0) {
        retryAfter(c, wait);
        return await refuse(c, new S3Error('TooManyRequests', 'too many failed logins from this address; retry later'), { authenticated: false }, 'admin.login.throttled');
      }
      requireJsonBody(incoming);
      body = JSON.parse((await readLimited(incoming, MAX_LOGIN_BODY)).toString('utf8')) as Json;
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
      retryAfter(c, wait);
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
    await audit.append('admin.login', { accessKey: user.accessKey, ...(user.tenant ? { tenant: user.tenant } : {}) }, adminActor(user));
    return c.json({ ok: true, accessKey: user.accessKey, csrfToken: session.csrf, expiresAt: new Date(session.expires).toISOString() });
  });

  app.use('/admin/*', async (c, next) => {
    const incoming = incomingOf(c);
    const raw = incoming.url ?? '/';
    const q = raw.indexOf('?');
    let user: User | undefined;
    let presented: string | undefined;
    let authenticated = false;
    let signed = false;
    let body: Buffer;
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
        checkSessionRequest(incoming, session, o.tls);
      }
      if (!user?.admin) throw new S3Error('AccessDenied', 'this user is not an administrator');
      if (c.req.method === 'POST') requireJsonBody(incoming);
      body = await readLimited(incoming, MAX_ADMIN_BODY);
      if (payloadHash !== undefined) {
        if (!signaturesEqual(sha256Hex(body), payloadHash)) throw new S3Error('XAmzContentSHA256Mismatch');
      } else if (signed && body.length > 0) {
        // UNSIGNED-PAYLOAD is for requests without a body only.
        throw new S3Error('InvalidRequest', 'admin requests must sign their payload');
      }
    } catch (e) {
      return refuse(c, isS3Error(e) ? e : new S3Error('AccessDenied'), { accessKey: presented, authenticated });
    }
    c.set('actor', adminActor(user));
    c.set('scope', user.tenant ? { kind: 'tenant', tenant: user.tenant } : ROOT_SCOPE);
    c.set('body', body);
    await next();
    // A tenant admin reaching outside its tenant: refused (403) by the route, recorded here with its access key.
    if (c.error instanceof OutOfScope) {
      const path = new URL(c.req.url).pathname;
      await audit
        .append('admin.refused', { method: c.req.method, path, code: c.error.code, accessKey: user.accessKey, tenant: user.tenant ?? null, reason: c.error.what, source: sourceOf(c) }, adminActor(user))
        .catch((err: unknown) => ctx.log?.warn({ err }, 'audit append of an admin refusal failed'));
      o.metrics.adminRefused(true);
    }
  });

  app.post('/admin/logout', (c) => {
    sessions.delete(sessionToken(incomingOf(c)));
    c.header('Set-Cookie', `${SESSION_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0`);
    return c.json({ ok: true });
  });
  // A reloaded dashboard gets its session's CSRF token here (a cross-origin page cannot read this answer).
  app.get('/admin/whoami', (c) => {
    const session = sessions.get(sessionToken(incomingOf(c)));
    const scope = c.get('scope');
    return c.json({ actor: c.get('actor'), ...(scope?.kind === 'tenant' ? { tenant: scope.tenant } : {}), ...(session ? { accessKey: session.accessKey, csrfToken: session.csrf } : {}) });
  });
}

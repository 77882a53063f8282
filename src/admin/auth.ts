/**
 * Who may drive the admin API, and how a refusal is recorded.
 *
 * Two ways in: a SigV4-signed request (the CLI; a browser page cannot sign) or the dashboard's session cookie.
 * The cookie is the dangerous one: the S3 port and the admin port are the same *site* (a site ignores ports), so
 * `SameSite=Strict` still sends it with a request made by a page served from the S3 port. A cookie-authenticated
 * request that changes state therefore also needs
 *   - the session's CSRF token in `X-Lakecrypt-CSRF` (a custom header: a cross-origin "simple" request cannot
 *     carry one without a CORS preflight, which the admin port never grants, and the token is bound to the
 *     session and compared in constant time), and
 *   - an `Origin` (when the browser sends one) equal to the admin origin, and a `Sec-Fetch-Site` (when sent) of
 *     `same-origin`.
 * Bodies are read only after the caller is known (SigV4: after the signature over the headers verified; the
 * payload hash is checked once the body is in), and a JSON endpoint refuses any other Content-Type (415).
 *
 * Login is throttled per source address and per access key (failures refill slowly; 429 with Retry-After), and
 * refusals of callers that did not authenticate are audited at a bounded rate with a count of those left out,
 * so a flood cannot flood the audit trail. A refusal of a caller that *did* authenticate is always recorded.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { S3Error } from '../errors.ts';
import { signaturesEqual } from '../s3/sigv4.ts';
import type { AuditLog } from '../keys/audit.ts';
import type { Logger } from '../ops/logger.ts';

export const SESSION_COOKIE = 'lakecrypt_admin';
/** The request header that carries the session's CSRF token. */
export const CSRF_HEADER = 'x-lakecrypt-csrf';

export interface Session {
  accessKey: string;
  /** Compared in constant time with the X-Lakecrypt-CSRF header of every state-changing request. */
  csrf: string;
  expires: number;
}

/** Sessions of this admin process (a restart signs everyone out, which is the safe direction). */
export class Sessions {
  private readonly byToken = new Map<string, Session>();
  constructor(readonly ttlMs: number) {}

  create(accessKey: string, now = Date.now()): { token: string; session: Session } {
    for (const [t, s] of this.byToken) if (s.expires < now) this.byToken.delete(t);
    const token = randomBytes(32).toString('base64url');
    const session = { accessKey, csrf: randomBytes(32).toString('base64url'), expires: now + this.ttlMs };
    this.byToken.set(token, session);
    return { token, session };
  }

  /** The live session of a cookie value; an expired one is dropped. */
  get(token: string | undefined, now = Date.now()): Session | undefined {
    if (!token) return undefined;
    const s = this.byToken.get(token);
    if (s && s.expires >= now) return s;
    this.byToken.delete(token);
    return undefined;
  }

  delete(token: string | undefined): void {
    if (token) this.byToken.delete(token);
  }
}

export function parseCookies(h: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of (h ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) m.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return m;
}

export const sessionToken = (req: IncomingMessage): string | undefined => parseCookies(req.headers.cookie).get(SESSION_COOKIE);

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};


/** The admin origin as the browser names it: scheme + the Host the request was sent to. */
export function adminOrigin(req: IncomingMessage, tls: boolean): string | undefined {
  const host = header(req, 'host');
  return host ? `${tls ? 'https' : 'http'}://${host.toLowerCase()}` : undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses a browser request that comes from another origin: `Origin` (if sent) must be the admin origin and
 * `Sec-Fetch-Site` (if sent) `same-origin` — or `none` for a navigation the user typed, on a safe method only.
 * Requests without either header come from outside a browser (curl, scripts), which cookies cannot be
 * forged into.
 */
export function checkSameOrigin(req: IncomingMessage, tls: boolean): void {
  const method = (req.method ?? 'GET').toUpperCase();
  const site = header(req, 'sec-fetch-site')?.toLowerCase();
  if (site !== undefined && site !== 'same-origin' && !(site === 'none' && SAFE_METHODS.has(method))) {
    throw new S3Error('AccessDenied', `cross-origin admin request refused (Sec-Fetch-Site: ${site})`);
  }
  const origin = header(req, 'origin');
  if (origin !== undefined && origin.toLowerCase() !== adminOrigin(req, tls)) {
    throw new S3Error('AccessDenied', 'cross-origin admin request refused (Origin is not the admin origin)');
  }
}

/**
 * A cookie-authenticated request: same origin always; state-changing methods also carry the session's CSRF token.
 */
export function checkSessionRequest(req: IncomingMessage, session: Session, tls: boolean): void {
  checkSameOrigin(req, tls);
  if (SAFE_METHODS.has((req.method ?? 'GET').toUpperCase())) return;
  const presented = header(req, CSRF_HEADER);
  if (presented === undefined || !signaturesEqual(presented, session.csrf)) {
    throw new S3Error('AccessDenied', `state-changing admin requests with a session need its ${CSRF_HEADER} header`);
  }
}

/** A non-empty body on a JSON endpoint must say it is JSON; checked before the body is read. */
export function requireJsonBody(req: IncomingMessage): void {
  const len = header(req, 'content-length');
  const chunked = header(req, 'transfer-encoding') !== undefined;
  if (!chunked && (len === undefined || len === '0')) return;
  const type = (header(req, 'content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new S3Error('UnsupportedMediaType', `admin endpoints take application/json bodies (got ${type ? JSON.stringify(type) : 'no Content-Type'})`);
  }
}

export interface ThrottleOptions {
  /** Failures allowed in a burst before refusals (default 5). */
  burst?: number;
  /** One more failure allowed every refillMs (default 12 s: 5 a minute sustained). */
  refillMs?: number;
  /** Most sources/keys tracked at once; the least recently failed are forgotten first (default 10,000). */
  maxTracked?: number;
}

/**
 * Failed logins per source address and per access key, as token buckets: a success does not refill (a guesser
 * that also knows one good password gains nothing). While either bucket is empty, login answers 429 — even for
 * the right secret, which is what stops a guesser that spreads over many addresses.
 */
export class LoginThrottle {
  private readonly burst: number;
  private readonly refillMs: number;
  private readonly maxTracked: number;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(o: ThrottleOptions = {}) {
    this.burst = o.burst ?? 5;
    this.refillMs = o.refillMs ?? 12_000;
    this.maxTracked = o.maxTracked ?? 10_000;
  }

  private level(id: string, now: number): { tokens: number; at: number } {
    const b = this.buckets.get(id);
    if (!b) return { tokens: this.burst, at: now };
    const tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.refillMs);
    return { tokens, at: now };
  }

  /** Milliseconds until another attempt is allowed for any of these ids; 0 = allowed now. */
  retryAfterMs(ids: string[], now = Date.now()): number {
    let wait = 0;
    for (const id of ids) {
      const { tokens } = this.level(id, now);
      if (tokens < 1) wait = Math.max(wait, Math.ceil((1 - tokens) * this.refillMs));
    }
    return wait;
  }

  failed(ids: string[], now = Date.now()): void {
    for (const id of ids) {
      const l = this.level(id, now);
      this.buckets.delete(id); // re-insert: Map order = least recently failed first
      this.buckets.set(id, { tokens: Math.max(0, l.tokens - 1), at: now });
    }
    while (this.buckets.size > this.maxTracked) this.buckets.delete(this.buckets.keys().next().value!);
  }
}

export interface RefusalLogOptions {
  audit: AuditLog;
  log?: Logger;
  /** Unauthenticated refusals recorded one by one per second before they are only counted (default 20). */
  perSecond?: number;
  /** Called once per refusal: recorded on its own (true) or only counted (false). For metrics. */
  onRefusal?: (recorded: boolean) => void;
}

export interface Refusal {
  method: string;
  path: string;
  code: string;
  /** The access key the caller presented (unverified unless `authenticated`). */
  accessKey?: string;
  /** The caller proved who it is (valid signature or session) and was still refused. */
  authenticated: boolean;
  source?: string;
}

/**
 * Refusals into the audit trail. Authenticated callers: every one. Everyone else: up to `perSecond` a second,
 * then only counted; the count is written as one `admin.refused` record with `suppressed: n` when the second is
 * over (by a timer, so the count is not left waiting for the next refusal).
 */
export class RefusalLog {
  private readonly perSecond: number;
  private window = { at: 0, n: 0, suppressed: 0 };
  private flushTimer?: NodeJS.Timeout;
  constructor(private readonly o: RefusalLogOptions) {
    this.perSecond = o.perSecond ?? 20;
  }

  private append(event: string, details: Record<string, unknown>, actor: string): Promise<void> {
    return this.o.audit.append(event, details, actor).then(
      () => undefined,
      // The refusal itself was already answered; losing its record must at least be visible in the log.
      (err: unknown) => this.o.log?.warn({ err, event }, 'audit append of an admin refusal failed'),
    );
  }

  private flush(): Promise<void> {
    const suppressed = this.window.suppressed;
    this.window = { at: Date.now(), n: 0, suppressed: 0 };
    return suppressed ? this.append('admin.refused', { suppressed }, 'anonymous') : Promise.resolve();
  }

  async record(r: Refusal, event = 'admin.refused'): Promise<void> {
    const details = { method: r.method, path: r.path, code: r.code, accessKey: r.accessKey ?? null, source: r.source ?? null };
    if (r.authenticated) {
      this.o.onRefusal?.(true);
      return this.append(event, details, `admin:${r.accessKey}`);
    }
    const now = Date.now();
    if (now - this.window.at > 1000) await this.flush();
    if (this.window.n < this.perSecond) {
      this.window.n++;
      this.o.onRefusal?.(true);
      return this.append(event, details, 'anonymous');
    }
    this.window.suppressed++;
    this.o.onRefusal?.(false);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush();
      }, Math.max(1, 1000 - (now - this.window.at)));
      this.flushTimer.unref();
    }
  }

  /** Write what is still only counted (shutdown). */
  async close(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
  }
}

/**
 * The KMS port (LAKECRYPT_KMS_PORT; off when unset): the subset of the Vault/OpenBao Transit HTTP API that
 * Parquet modular encryption's KMS clients call (pyarrow's `KmsClient`, parquet-java's Vault sample), so that
 * the master keys of a Parquet file are lakecrypt datasets and one `keys revoke` covers both layers.
 *
 *   POST|PUT /v1/transit/encrypt/<key>              {plaintext, associated_data?, key_version?} -> {ciphertext, key_version}
 *   POST|PUT /v1/transit/decrypt/<key>              {ciphertext, associated_data?}              -> {plaintext}
 *   POST|PUT /v1/transit/datakey/plaintext/<key>    {bits?, associated_data?}                   -> {plaintext, ciphertext, key_version}
 *   POST|PUT /v1/transit/datakey/wrapped/<key>      {bits?, associated_data?}                   -> {ciphertext, key_version}
 *   POST|PUT /v1/transit/rewrap/<key>               {ciphertext, associated_data?}              -> {ciphertext, key_version}
 *   GET      /v1/transit/keys/<key>                                                             -> Vault's key read
 *   GET      /v1/sys/health                          200 while this gateway may hand out keys, else 503
 *
 * Answers are Vault's: `{"data": {...}}` (with Vault's other envelope fields), errors `{"errors": ["..."]}` with
 * 400 (bad input), 403 (no or bad token, no access to the dataset, revoked key version), 404 (no such key or
 * path), 503 (revocation state not confirmed within the bound, backend or CMK down, audit trail unwritable).
 * `<key>`: transit.ts. Tokens (`X-Vault-Token`, or `Authorization: Bearer`): tokens.ts.
 *
 * The audit trail gets one record per call: `kms.encrypt|decrypt|datakey|rewrap` with the token's user as actor
 * (`user:<accessKey>`, `user:<tenant>/<accessKey>`), the dataset and the KEK version, never a key or a
 * plaintext; and `kms.refused` for every refusal (a caller without a valid token: up to 20 a second, then only
 * counted, as on the admin port). An unwrap is answered only after its record is written: no unwrap goes
 * unrecorded. A separate listener with its own small app: the S3 port's hot path is not touched by it.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Hono, type Context } from 'hono';
import { getRequestListener } from '@hono/node-server';
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { userActor } from '../auth/tenants.ts';
import type { User, Users } from '../auth/users.ts';
import type { AuditLog } from '../keys/audit.ts';
import type { KeyService } from '../keys/service.ts';
import { defaultOf } from '../ops/config.ts';
import type { Logger } from '../ops/logger.ts';
import { readBodyLimited } from '../s3/xml.ts';
import { KmsTokens } from './tokens.ts';
import { b64Field, datasetOfKeyName, Transit, type TransitOp } from './transit.ts';

/** Request bodies are a few hundred bytes; anything over this is refused unread. */
const MAX_BODY = 64 * 1024;
/** Refusals of callers without a valid token recorded one by one per second before they are only counted. */
const ANON_REFUSALS_PER_SECOND = 20;

/** What the KMS port needs of a running gateway (a RunningGateway fits it). */
export interface KmsHost {
  gateway: { backend: Backend; users: Users; metaBucket: string };
  keys: KeyService;
  audit: AuditLog;
}

export interface KmsOptions {
  host: KmsHost;
  /** Listen address and port (0: any free port). */
  bind?: string;
  port?: number;
  tls?: { cert: string; key: string };
  log?: Logger;
  /** How long a verified token is believed (default: the settings table's revocationBoundMs). */
  tokenCacheMs?: number;
  headersTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxConnections?: number;
}

export interface RunningKms {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
interface Caller { user: User; accessor: string }

const incomingOf = (c: Context) => (c.env as { incoming: IncomingMessage }).incoming;

/** Vault's message for an error: its own words where a client may look for them, else the catalogue's. */
function vaultError(e: S3Error): string {
  if (e.code === 'AccessDenied') return e.message === 'permission denied' ? e.message : `permission denied: ${e.message}`;
  return e.message;
}

/**
 * Refusals of unauthenticated callers, per second: the first ANON_REFUSALS_PER_SECOND recorded one by one, the
 * rest counted and written as one record with `suppressed: n` when the second is over (by a timer, so the count
 * is not left waiting for the next refusal), so a flood of bad tokens cannot flood the trail.
 */
class AnonymousWindow {
  private at = 0;
  private n = 0;
  private suppressed = 0;
  private timer?: NodeJS.Timeout;
  constructor(private readonly write: (suppressed: number) => Promise<void>) {}

  /** True: record this one; false: it was only counted. */
  async admit(now: number): Promise<boolean> {
    if (now - this.at > 1000) await this.flush(now);
    if (this.n < ANON_REFUSALS_PER_SECOND) {
      this.n++;
      return true;
    }
    this.suppressed++;
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush(Date.now());
      }, Math.max(1, 1000 - (now - this.at)));
      this.timer.unref();
    }
    return false;
  }

  async flush(now: number): Promise<void> {
    const n = this.suppressed;
    this.at = now;
    this.n = 0;
    this.suppressed = 0;
    if (n) await this.write(n);
  }

  close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    return this.flush(Date.now());
  }
}

export function createKmsApp(o: KmsOptions): { app: Hono; tokens: KmsTokens; close(): Promise<void> } {
  const { keys, audit } = o.host;
  const { users, backend, metaBucket } = o.host.gateway;
  const tokens = new KmsTokens({ backend, metaBucket, sealer: keys, cacheMs: o.tokenCacheMs ?? defaultOf('revocationBoundMs') });
  const transit = new Transit(keys, users);
  const app = new Hono();

  const append = (event: string, details: Json, actor: string): Promise<void> =>
    audit.append(event, details, actor).then(
      () => undefined,
      // the refusal was answered anyway; losing its record must at least show in the log
      (err: unknown) => o.log?.warn({ err, event }, 'audit append of a KMS refusal failed'),
    );
  const anon = new AnonymousWindow((suppressed) => append('kms.refused', { suppressed }, 'anonymous'));

  const refuse = async (c: Context, e: S3Error, op: string, key: string | undefined, caller?: Caller): Promise<Response> => {
    const details: Json = { op, key: key ?? null, code: e.code, source: incomingOf(c).socket.remoteAddress ?? null };
    if (caller) await append('kms.refused', { ...details, token: caller.accessor }, userActor(caller.user));
    else if (await anon.admit(Date.now())) await append('kms.refused', details, 'anonymous');
    if (e.status >= 500 && e.code !== 'KeyStateStale') o.log?.warn({ err: e, op, key }, 'KMS request failed');
    // a refused request may still be sending its body: close the connection after the answer
    if (!incomingOf(c).complete) c.header('Connection', 'close');
    return c.json({ errors: [vaultError(e)] }, e.status as 400);
  };

  /** The caller of a request: its token's live record and user, else AccessDenied ("permission denied"). */
  const authenticate = async (req: IncomingMessage): Promise<Caller> => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const token = (req.headers['x-vault-token'] as string | undefined) ?? bearer;
    if (!token) throw new S3Error('AccessDenied', 'permission denied');
    const rec = await tokens.lookup(token);
    const user = rec ? users.get(rec.user) : undefined;
    if (!rec || !user) throw new S3Error('AccessDenied', 'permission denied');
    return { user, accessor: rec.accessor };
  };

  const readBody = async (req: IncomingMessage): Promise<Json> => {
    if (Number(req.headers['content-length'] ?? '0') > MAX_BODY) throw new S3Error('InvalidArgument', `request bodies are limited to ${MAX_BODY} bytes`);
    let raw: Buffer;
    try {
      raw = await readBodyLimited(req, MAX_BODY);
    } catch (e) {
      if (isS3Error(e, 'MaxMessageLengthExceeded')) throw new S3Error('InvalidArgument', `request bodies are limited to ${MAX_BODY} bytes`);
      throw e;
    }
    if (!raw.length) return {};
    try {
      const v = JSON.parse(raw.toString('utf8')) as unknown;
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      return v as Json;
    } catch {
      throw new S3Error('InvalidArgument', 'failed to parse JSON input');
    }
  };

  /**
   * The key name: the raw path after the operation (hono would percent-decode it before the split that names the
   * dataset). Vault's names are one segment (`lake:finance`); a name sent with its '/' as is (`lake/finance`, as a
   * client that puts a Parquet master key id into the path unchanged sends it) is the same dataset.
   */
  const rawName = (c: Context, op: TransitOp): string => {
    const p = (incomingOf(c).url ?? '').split('?')[0];
    const prefix = op === 'datakey' ? `/v1/transit/datakey/${c.req.param('type') ?? ''}/` : `/v1/transit/${op}/`;
    return p.startsWith(prefix) ? p.slice(prefix.length) : '';
  };

  type Handler = (x: { c: Context; caller: Caller; dataset: string; body: Json; actor: string }) => Promise<Json>;

  const serve = (op: TransitOp, fn: Handler) => async (c: Context): Promise<Response> => {
    const req = incomingOf(c);
    let caller: Caller | undefined;
    let dataset: string | undefined;
    try {
      // who is calling is settled from the headers alone, before any byte of the body is read
      caller = await authenticate(req);
      dataset = datasetOfKeyName(rawName(c, op));
      transit.authorize(caller.user, dataset);
      const body = req.method === 'GET' ? {} : await readBody(req);
      if (body.batch_input !== undefined) throw new S3Error('InvalidArgument', 'batch_input is not supported by this endpoint');
      if (body.context !== undefined || body.nonce !== undefined) throw new S3Error('InvalidArgument', 'context and nonce are for derived or convergent keys; these keys are neither');
      await transit.requireDataset(dataset);
      const data = await fn({ c, caller, dataset, body, actor: userActor(caller.user) });
      return c.json({ request_id: randomUUID(), lease_id: '', renewable: false, lease_duration: 0, data, wrap_info: null, warnings: null, auth: null });
    } catch (e) {
      const err = isS3Error(e) ? e : new S3Error('InternalError', undefined, {}, { cause: e });
      if (!isS3Error(e)) o.log?.error({ err: e, op }, 'KMS request failed');
      return refuse(c, err, op, dataset, caller);
    }
  };

  /** The record of a key operation, written before the answer (an unwrap nobody recorded is never answered). */
  const record = async (op: TransitOp, x: Parameters<Handler>[0], details: Json): Promise<void> => {
    try {
      await audit.append(`kms.${op}`, { dataset: x.dataset, ...details, token: x.caller.accessor, source: incomingOf(x.c).socket.remoteAddress ?? null }, x.actor);
    } catch (e) {
      throw new S3Error('ServiceUnavailable', 'the audit trail could not be written; nothing was returned', {}, { cause: e });
    }
  };

  const ad = (body: Json) => b64Field(body.associated_data, 'associated_data', { optional: true });
  const write = ['POST', 'PUT'];

  app.on(write, '/v1/transit/encrypt/:name{.+}', serve('encrypt', async (x) => {
    const pt = b64Field(x.body.plaintext, 'plaintext')!;
    const kv = x.body.key_version === undefined ? undefined : Number(x.body.key_version);
    const w = await transit.encrypt(x.dataset, pt, ad(x.body), kv);
    pt.fill(0);
    await record('encrypt', x, { version: w.version });
    return { ciphertext: w.ciphertext, key_version: w.version };
  }));
  app.on(write, '/v1/transit/decrypt/:name{.+}', serve('decrypt', async (x) => {
    const d = await transit.decrypt(x.dataset, x.body.ciphertext, ad(x.body));
    try {
      await record('decrypt', x, { version: d.version });
      return { plaintext: d.plaintext.toString('base64') };
    } finally {
      d.plaintext.fill(0);
    }
  }));
  app.on(write, '/v1/transit/datakey/:type/:name{.+}', serve('datakey', async (x) => {
    const type = x.c.req.param('type');
    if (type !== 'plaintext' && type !== 'wrapped') throw new S3Error('InvalidArgument', 'datakey type must be "plaintext" or "wrapped"');
    const k = await transit.datakey(x.dataset, x.body.bits, ad(x.body));
    try {
      await record('datakey', x, { version: k.version, type, bits: k.plaintext.length * 8 });
      return { ...(type === 'plaintext' ? { plaintext: k.plaintext.toString('base64') } : {}), ciphertext: k.ciphertext, key_version: k.version };
    } finally {
      k.plaintext.fill(0);
    }
  }));
  app.on(write, '/v1/transit/rewrap/:name{.+}', serve('rewrap', async (x) => {
    const r = await transit.rewrap(x.dataset, x.body.ciphertext, ad(x.body));
    await record('rewrap', x, { version: r.version, from: r.from });
    return { ciphertext: r.ciphertext, key_version: r.version };
  }));
  app.get('/v1/transit/keys/:name{.+}', serve('keys', async (x) => ({ ...(await transit.keyInfo(x.dataset)) })));
  app.get('/v1/sys/health', (c) => {
    const fresh = keys.epochFresh();
    return c.json({ initialized: true, sealed: false, standby: false, server_time_utc: Math.floor(Date.now() / 1000) }, fresh ? 200 : 503);
  });
  app.all('*', (c) => c.json({ errors: ['unsupported path'] }, 404));
  app.onError((e, c) => {
    o.log?.error({ err: e }, 'KMS request failed');
    return c.json({ errors: ['internal error'] }, 500);
  });

  return {
    app,
    tokens,
    close: () => anon.close(),
  };
}

/** Start the KMS listener (same TLS as the S3 port when given). */
export async function startKms(o: KmsOptions): Promise<RunningKms> {
  const k = createKmsApp(o);
  const listener = getRequestListener(k.app.fetch);
  const handle = (req: IncomingMessage, res: ServerResponse) => void listener(req, res);
  const server: Server = o.tls ? createHttpsServer({ cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key) }, handle) : createHttpServer(handle);
  server.headersTimeout = o.headersTimeoutMs ?? defaultOf('headersTimeoutMs');
  // a KMS call is a few hundred bytes: a request still arriving after the headers timeout is not a client's
  server.requestTimeout = server.headersTimeout;
  server.maxConnections = o.maxConnections ?? defaultOf('maxConnections');
  const idle = o.idleTimeoutMs ?? defaultOf('idleTimeoutMs');
  server.keepAliveTimeout = idle;
  server.setTimeout(idle, (socket) => socket.destroy());
  const bind = o.bind ?? defaultOf('host');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, bind, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${o.tls ? 'https' : 'http'}://${bind.includes(':') ? `[${bind}]` : bind}:${port}`,
    port,
    server,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await k.close();
    },
  };
}

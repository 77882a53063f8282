import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { Backend } from '../backend/types.ts';
import type { CmkProvider } from '../keys/types.ts';
import { KeyService } from '../keys/service.ts';
import { AuditLog, loadAuditKey } from '../keys/audit.ts';
import { Keystore } from '../keys/keystore.ts';
import { S3Error } from '../errors.ts';
import { createS3App, type Health } from './app.ts';
import { Gateway, type GatewayOptions } from './gateway.ts';
import { Users, type User } from '../auth/users.ts';
import { Tenants, type TenantConfig } from '../auth/tenants.ts';
import { defaultOf } from '../ops/config.ts';
import { PROBE_SERVER_OPTIONS, hostless, isHealthPath } from '../ops/probes.ts';
import type { Logger } from '../ops/logger.ts';
import { Readiness } from '../ops/readiness.ts';
import { MemoryTrim } from '../ops/memory-trim.ts';
import { memoryTrims } from '../ops/metrics.ts';
import { nativeDataplane } from '../engine/dataplane.ts';
import { answerExpectContinue } from './expect-continue.ts';

export interface StartOptions {
  host?: string;
  port?: number;
  backend: Backend;
  cmks: Record<string, CmkProvider>;
  defaultCmk: string;
  datasets?: { name: string; cmk?: string; allowPlaintextRead?: boolean }[];
  users: User[];
  /** Tenants (their admins become admin users scoped to them; their users reach their buckets only). */
  tenants?: TenantConfig[];
  metaBucket?: string;
  region?: string;
  blockSize?: number;
  /** Largest inline header in base64 characters; 0 = headers in the meta bucket only (src/store/inline-header.ts). */
  inlineHeaderMax?: number;
  /** 'auto': large whole-object GETs through the native data plane when it applies and loaded; 'node': never (src/store/native-read.ts). */
  dataPlane?: 'auto' | 'node';
  domains?: string[];
  keyCacheTtlMs?: number;
  keyCacheSize?: number;
  epochPollMs?: number;
  /** The revocation bound (settings table `revocationBoundMs`; src/keys/epoch-watch.ts). */
  revocationBoundMs?: number;
  /** How often /readyz's view of each CMK provider is refreshed by a ping (default 5000 ms). */
  cmkCheckMs?: number;
  tls?: { cert: string; key: string };
  headersTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Whole-request limit (0 = none: large uploads may take long; idle sockets are cut by idleTimeoutMs). */
  requestTimeoutMs?: number;
  shutdownGraceMs?: number;
  /** Largest request head (request line + headers) accepted; larger gets 431 and the socket closed. */
  maxHeaderBytes?: number;
  /** Most connections held open at once (server.maxConnections); more are closed unanswered. Default 4096. */
  maxConnections?: number;
  /** Content-Security-Policy of S3 responses (default 'sandbox'; '' or 'off' = none): the objectCsp setting. */
  objectCsp?: string;
  /** Accept Signature Version 2 (the sigv2 setting, default on). */
  sigv2?: boolean;
  onRequestDone?: GatewayOptions['onRequestDone'];
  /** Where the gateway's own best-effort failures are told (a dropped audit record, a failed epoch poll …). */
  log?: Logger;
  /** Called once per best-effort failure, with what failed (metrics: lakecrypt_best_effort_failures_total). */
  onBestEffortFailure?: (what: string) => void;
}

export interface RunningGateway {
  url: string;
  port: number;
  gateway: Gateway;
  keys: KeyService;
  audit: AuditLog;
  server: Server;
  health: Health;
  /** Graceful: stop accepting, drain in-flight requests up to the grace period, then close everything. */
  close(): Promise<void>;
}

export { isHealthPath } from '../ops/probes.ts';

export async function startGateway(o: StartOptions): Promise<RunningGateway> {
  const metaBucket = o.metaBucket ?? defaultOf('metaBucket');
  const keyCacheTtlMs = o.keyCacheTtlMs ?? defaultOf('keyCacheTtlMs');
  if (!(await o.backend.bucketExists(metaBucket))) {
    await o.backend.createBucket(metaBucket).catch((e) => {
      if ((e as { code?: string }).code !== 'BucketAlreadyOwnedByYou') throw e;
    });
  }
  const tenants = new Tenants(o.tenants ?? [], o.defaultCmk);
  // The audit log first (its key is wrapped under the default CMK), so the key service is built with it.
  const macKey = await loadAuditKey({
    keystore: new Keystore({ backend: o.backend, metaBucket }),
    defaultCmk: o.defaultCmk,
    cmk: (id) => {
      const p = o.cmks[id];
      if (!p) throw new S3Error('InvalidArgument', `the audit key is wrapped under CMK "${id}", which is not configured`);
      return p;
    },
  });
  const audit = new AuditLog({ backend: o.backend, metaBucket, macKey });
  macKey.fill(0); // AuditLog keeps its own copy
  const keys = new KeyService({
    backend: o.backend,
    metaBucket,
    cmks: o.cmks,
    defaultCmk: o.defaultCmk,
    datasets: o.datasets,
    tenants: tenants.configs(),
    cacheTtlMs: keyCacheTtlMs,
    cacheMax: o.keyCacheSize,
    epochPollMs: o.epochPollMs,
    revocationBoundMs: o.revocationBoundMs,
    log: o.log,
    onBestEffortFailure: o.onBestEffortFailure,
    audit,
  });
  // buckets created by a tenant's user: the registry's record, as this gateway last loaded it
  tenants.setCreatedOwnerLookup((bucket) => keys.bucketOwner(bucket));
  const gateway = new Gateway({
    backend: o.backend,
    keys,
    users: new Users(o.users, tenants),
    metaBucket,
    region: o.region ?? defaultOf('region'),
    blockSize: o.blockSize ?? defaultOf('blockSize'),
    inlineHeaderMax: o.inlineHeaderMax ?? defaultOf('inlineHeaderMax'),
    dataPlane: o.dataPlane ?? defaultOf('dataPlane'),
    domains: o.domains ?? ['localhost'],
    objectCsp: o.objectCsp ?? defaultOf('objectCsp'),
    sigv2: o.sigv2 ?? defaultOf('sigv2'),
    // Opened headers hold DEKs: none may outlive the key cache TTL, or a customer's revocation at its KMS (which
    // only a fresh unwrap notices) would not reach a hot object within the stated bound.
    headerCacheTtlMs: keyCacheTtlMs,
    report: { log: o.log, onFailure: o.onBestEffortFailure },
    onRequestDone: o.onRequestDone,
  });
  keys.onInvalidate(() => gateway.store.headers.clear());
  const plaintextAudited = new Set<string>();
  gateway.store.plaintextReads = {
    allowed: (ds) => (o.datasets ?? []).some((d) => d.name === ds && d.allowPlaintextRead === true),
    // Once per object and process: the trail records that plaintext was served, without one entry per GET.
    onRead: (bucket, key) => {
      const id = `${bucket}/${key}`;
      if (plaintextAudited.has(id)) return;
      plaintextAudited.add(id);
      void audit.append('object.plaintext-read', { bucket, key }, 'gateway').catch((err: unknown) => {
        // The read was served; the trail must at least say in the log that its record is missing.
        o.onBestEffortFailure?.('audit-plaintext-read');
        o.log?.warn({ err, bucket, key }, 'audit record of a plaintext read could not be written');
      });
    },
  };
  await keys.start();
  let stopping = false;
  const readiness = new Readiness({ epoch: keys, cmks: o.cmks, cmkCheckMs: o.cmkCheckMs, log: o.log });
  await readiness.start();
  const health: Health = {
    live: () => !stopping,
    ready: () => readiness.state(stopping),
  };
  const app = createS3App(gateway, health);
  const honoListener = getRequestListener(app.fetch, { overrideGlobalObjects: false });
  // Only the two plain endpoints (GET /healthz, GET /readyz) go through hono; every S3 request goes straight to
  // the gateway. hono's per-request work (request proxy, router, context, Response handling) cost ~40 µs of CPU
  // per small GET, and hono answers HEAD by running the GET route and re-wrapping its Response, which loses
  // the "already sent" marker of a handler that wrote the Node response itself (the socket then breaks).
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    if (!hostless(req, res)) return;
    // Neither promise is awaited by node:http: hono answers through its own, and a handler's failure destroys the response.
    if (req.method === 'GET' && isHealthPath(req.url)) return void honoListener(req, res);
    gateway.handle(req, res).catch((e) => res.destroy(e as Error));
  };
  const headersTimeout = o.headersTimeoutMs ?? defaultOf('headersTimeoutMs');
  const requestTimeout = o.requestTimeoutMs ?? defaultOf('requestTimeoutMs');
  // Node enforces headersTimeout / requestTimeout only when it sweeps its connections, every 30 s by default: a
  // slow head would live up to 30 s past its limit. Sweep at least every second (a quarter of the shortest limit).
  const shortest = requestTimeout > 0 ? Math.min(headersTimeout, requestTimeout) : headersTimeout;
  const connectionsCheckingInterval = Math.max(100, Math.min(1000, Math.floor(shortest / 4)));
  const httpOptions = { maxHeaderSize: o.maxHeaderBytes, connectionsCheckingInterval, ...PROBE_SERVER_OPTIONS };
  const server: Server = o.tls
    ? (createHttpsServer({ cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key), ...httpOptions }, listener))
    : createHttpServer(httpOptions, listener);
  // A body the pump may read in chunked transfer coding is held from its head (src/server/expect-continue.ts).
  server.on('checkContinue', answerExpectContinue(server));
  // Half-open or slow clients must not pin sockets forever, nor more sockets than the cap.
  server.headersTimeout = headersTimeout;
  server.requestTimeout = requestTimeout;
  server.maxConnections = o.maxConnections ?? defaultOf('maxConnections');
  // Keep-alive idle time = the idle timeout (as the idleTimeoutMs setting documents), not Node's 5 s: a client
  // pausing 5-60 s between requests (SDK connection pools, load balancers with 60 s idle) would otherwise pay a
  // new connection (and TLS handshake), or race the server's close and see ECONNRESET on its next request.
  const idleMs = o.idleTimeoutMs ?? defaultOf('idleTimeoutMs');
  server.keepAliveTimeout = idleMs;
  server.setTimeout(idleMs, (socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  // Freed Buffers back to the system after bursts (RSS); without the addon glibc keeps what it keeps.
  const addon = nativeDataplane();
  const trimmer = addon
    ? new MemoryTrim(
        { inflight: () => gateway.inflight, served: () => gateway.served },
        {
          trim: () => addon.trim(),
          // V8's low-memory collections through the addon; global.gc (node runs with --expose-gc: every launcher,
          // tools/gateway.ts GATEWAY_NODE_FLAGS) when the addon was built without its C++ part
          collect: () => void (addon.lowMemory() || globalThis.gc?.()),
          onTrim: () => void memoryTrims.done++,
        },
      ).start()
    : null;
  const url = `${o.tls ? 'https' : 'http'}://${o.host ?? '127.0.0.1'}:${port}`;
  return {
    url,
    port,
    gateway,
    keys,
    audit,
    server,
    health,
    async close() {
      stopping = true;
      trimmer?.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + (o.shutdownGraceMs ?? defaultOf('shutdownGraceMs'));
      while (gateway.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      server.closeAllConnections();
      await closed;
      await gateway.store.settled();
      readiness.stop();
      await keys.stop();
      gateway.store.headers.clear();
    },
  };
}

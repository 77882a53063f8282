import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { createBackend } from './backend/index.ts';
import type { Backend } from './backend/types.ts';
import { closeCryptoPool, setCryptoThreads } from './engine/index.ts';
import { keyCacheCounters } from './keys/cache.ts';
import { createCmkProvider } from './keys/providers.ts';
import type { CmkProvider } from './keys/types.ts';
import { formatConfigError, loadConfigOrExit, redactConfig, type Config } from './ops/config.ts';
import { createLogger } from './ops/logger.ts';
import { ADMIN_PORT_HEADER, credentialLines, dashboardLine, listenFailure } from './ops/start-banner.ts';
import { observeRequests } from './server/observe.ts';
import { createMetrics } from './ops/metrics.ts';
import { instrumentBackend, instrumentCmks } from './ops/instrument.ts';
import { wireGatewayMetrics } from './server/metrics-wiring.ts';
import { VERSION } from './version.ts';
import { startAdmin } from './admin/server.ts';
import { startGateway } from './server/start.ts';
import { startKms } from './kms/server.ts';

function backendOf(cfg: Config): Backend {
  if (cfg.backend === 's3') {
    if (!cfg.s3.endpoint) throw new Error('LAKECRYPT_S3_ENDPOINT: expected a URL when LAKECRYPT_BACKEND=s3');
    return createBackend({
      kind: 's3',
      endpoint: cfg.s3.endpoint,
      accessKey: cfg.s3.accessKey ?? '',
      secretKey: cfg.s3.secretKey ?? '',
      region: cfg.s3.region,
      forcePathStyle: cfg.s3.forcePathStyle,
    });
  }
  return createBackend({ kind: 'fs', dataDir: path.join(cfg.dataDir, 'store') });
}

/** The default CMK plus one per configured tenant, each built by the one provider factory (src/keys/providers.ts). */
export function cmksOf(cfg: Config): Record<string, CmkProvider> {
  const defaults = { dataDir: cfg.dataDir, pkcs11: { module: cfg.pkcs11.module, token: cfg.pkcs11.token, pin: cfg.pkcs11.pin } };
  const main =
    cfg.cmk === 'transit'
      ? { id: 'default', provider: 'transit', addr: cfg.transit.addr, token: cfg.transit.token, key: cfg.transit.key, mount: cfg.transit.mount }
      : cfg.cmk === 'awskms'
        ? { id: 'default', provider: 'awskms', keyId: cfg.kms.keyId, region: cfg.kms.region, endpoint: cfg.kms.endpoint }
        : { id: 'default', provider: cfg.cmk };
  const cmks: Record<string, CmkProvider> = { default: createCmkProvider(main, defaults) };
  // Fields a provider does not take are left out, so its strict check names only what was really given.
  for (const c of cfg.cmks) cmks[c.id] = createCmkProvider(Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)), defaults);
  return cmks;
}

async function main(): Promise<void> {
  const cfg = loadConfigOrExit();
  setCryptoThreads(cfg.cryptoThreads);
  const log = createLogger({ level: cfg.logLevel });
  for (const w of cfg.meta.warnings) log.warn(w);
  const metrics = createMetrics();
  const backend = instrumentBackend(backendOf(cfg), metrics);
  const cmks = instrumentCmks(cmksOf(cfg), metrics);
  // A listener that cannot bind (port in use, ...) raises an 'error' event nobody awaits: one line, not a stack.
  const startFailed = (e: unknown) => {
    process.stderr.write(`lakecrypt: ${listenFailure(e, cfg) ?? ((e as Error)?.stack ?? String(e))}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', startFailed);
  const gw = await startGateway({
    host: cfg.host,
    port: cfg.port,
    backend,
    cmks,
    defaultCmk: 'default',
    datasets: cfg.datasets,
    users: [
      { accessKey: cfg.accessKey, secretKey: cfg.secretKey, buckets: ['*'], admin: true },
      ...(cfg.users ?? []).map((u) => ({ ...u, admin: u.admin ?? false })),
    ],
    tenants: cfg.tenants,
    metaBucket: cfg.metaBucket,
    region: cfg.region,
    blockSize: cfg.blockSize,
    inlineHeaderMax: cfg.inlineHeaderMax,
    dataPlane: cfg.dataPlane,
    keyCacheTtlMs: cfg.keyCacheTtlMs,
    keyCacheSize: cfg.keyCacheSize,
    epochPollMs: cfg.epochPollMs,
    revocationBoundMs: cfg.revocationBoundMs,
    tls: cfg.tls.cert && cfg.tls.key ? { cert: cfg.tls.cert, key: cfg.tls.key } : undefined,
    headersTimeoutMs: cfg.headersTimeoutMs,
    idleTimeoutMs: cfg.idleTimeoutMs,
    requestTimeoutMs: cfg.requestTimeoutMs,
    shutdownGraceMs: cfg.shutdownGraceMs,
    maxHeaderBytes: cfg.maxHeaderBytes,
    maxConnections: cfg.maxConnections,
    objectCsp: cfg.objectCsp,
    sigv2: cfg.sigv2,
    onRequestDone: observeRequests(metrics, log, cfg.accessLog),
    log,
    onBestEffortFailure: (what) => metrics.bestEffortFailed(what),
  });
  // The key cache keeps process-wide counters; mirror their growth into the Prometheus counters.
  const seen = { hits: 0, misses: 0, evictions: 0 };
  const syncKeyCounters = () => {
    const c = keyCacheCounters;
    metrics.keyCacheHits.inc(c.hits - seen.hits);
    metrics.keyCacheMisses.inc(c.misses - seen.misses);
    metrics.keyCacheEvictions.inc(c.evictions - seen.evictions);
    Object.assign(seen, { hits: c.hits, misses: c.misses, evictions: c.evictions });
  };
  setInterval(syncKeyCounters, 500).unref();
  wireGatewayMetrics(metrics, gw, VERSION);
  const admin = await startAdmin({ gateway: gw, metrics, host: cfg.adminHost, port: cfg.adminPort, log, tls: gw.server && cfg.tls.cert && cfg.tls.key ? { cert: cfg.tls.cert, key: cfg.tls.key } : undefined, rewrapRatePerSec: cfg.rewrapRatePerSec, datasets: cfg.datasets, keyDeletionWaitSeconds: cfg.keyDeletionWaitSeconds });
  // The KMS endpoint (Parquet modular encryption's key wrapping) only when LAKECRYPT_KMS_PORT is set: bound and
  // TLS'd like the S3 port.
  const kms =
    cfg.kmsPort === undefined
      ? undefined
      : await startKms({
          host: gw,
          bind: cfg.host,
          port: cfg.kmsPort,
          tls: gw.server && cfg.tls.cert && cfg.tls.key ? { cert: cfg.tls.cert, key: cfg.tls.key } : undefined,
          log,
          tokenCacheMs: cfg.revocationBoundMs,
          headersTimeoutMs: cfg.headersTimeoutMs,
          idleTimeoutMs: cfg.idleTimeoutMs,
          maxConnections: cfg.maxConnections,
        });
  process.off('uncaughtException', startFailed);
  // The CLI given the S3 port learns where the admin API is (src/cli: "this is the S3 port").
  gw.server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith('/admin/')) res.setHeader(ADMIN_PORT_HEADER, String(admin.port));
  });
  log.info({ config: redactConfig(cfg) }, 'configuration');
  const lines = [
    `lakecrypt is up`,
    `  S3 endpoint:   ${gw.url}`,
    `  admin API:     ${admin.url}`,
    dashboardLine(admin.url),
    ...(kms ? [`  KMS endpoint:  ${kms.url}`] : []),
    `  region:        ${cfg.region}`,
    `  backend:       ${cfg.backend === 's3' ? cfg.s3.endpoint : path.resolve(cfg.dataDir, 'store')}`,
    `  CMK:           ${cfg.cmk}`,
    `  access key:    ${cfg.accessKey}`,
    ...credentialLines(cfg, gw.url, admin.url),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining in-flight requests');
    await admin.close();
    await kms?.close();
    await gw.close();
    await backend.close();
    await closeCryptoPool();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`lakecrypt: ${formatConfigError(e)}\n`);
  process.exit(1);
});

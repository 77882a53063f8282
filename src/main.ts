import path from 'node:path';
import { createBackend } from './backend/index.ts';
import type { Backend } from './backend/types.ts';
import { closeCryptoPool } from './engine/index.ts';
import { keyCacheCounters } from './keys/cache.ts';
import { LocalCmkProvider } from './keys/local-cmk.ts';
import { Pkcs11CmkProvider } from './keys/pkcs11-cmk.ts';
import type { CmkProvider } from './keys/types.ts';
import { formatConfigError, loadConfigOrExit, redactConfig, type Config } from './ops/config.ts';
import { createLogger } from './ops/logger.ts';
import { observeRequests } from './server/observe.ts';
import { createMetrics } from './ops/metrics.ts';
import { startAdmin } from './admin/server.ts';
import { startGateway } from './server/start.ts';

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

/** The default CMK plus one per configured tenant. */
export function cmksOf(cfg: Config): Record<string, CmkProvider> {
  const cmks: Record<string, CmkProvider> = {};
  const pkcs11 = (id: string, token?: string, pin?: string, keyLabel?: string) => {
    if (!cfg.pkcs11.module) throw new Error('LAKECRYPT_PKCS11_MODULE: expected the path of a PKCS#11 module when a pkcs11 CMK is configured');
    return new Pkcs11CmkProvider({ module: cfg.pkcs11.module, tokenLabel: token ?? cfg.pkcs11.token ?? '', pin: pin ?? cfg.pkcs11.pin ?? '', id, keyLabel });
  };
  cmks.default = cfg.cmk === 'pkcs11' ? pkcs11('default') : new LocalCmkProvider({ id: 'default', dataDir: cfg.dataDir });
  for (const c of cfg.cmks ?? []) {
    cmks[c.id] = c.kind === 'pkcs11' ? pkcs11(c.id, c.token, c.pin, c.keyLabel) : new LocalCmkProvider({ id: c.id, dataDir: cfg.dataDir });
  }
  return cmks;
}

async function main(): Promise<void> {
  const cfg = loadConfigOrExit();
  // The engine reads its thread count from the environment; the configuration file may have set it too.
  process.env.LAKECRYPT_CRYPTO_THREADS = String(cfg.cryptoThreads);
  const log = createLogger({ level: cfg.logLevel });
  for (const w of cfg.meta.warnings) log.warn(w);
  const metrics = createMetrics();
  const backend = backendOf(cfg);
  const cmks = cmksOf(cfg);
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
    metaBucket: cfg.metaBucket,
    region: cfg.region,
    blockSize: cfg.blockSize,
    keyCacheTtlMs: cfg.keyCacheTtlMs,
    keyCacheSize: cfg.keyCacheSize,
    epochPollMs: cfg.epochPollMs,
    tls: cfg.tls.cert && cfg.tls.key ? { cert: cfg.tls.cert, key: cfg.tls.key } : undefined,
    headersTimeoutMs: cfg.headersTimeoutMs,
    idleTimeoutMs: cfg.idleTimeoutMs,
    requestTimeoutMs: cfg.requestTimeoutMs,
    shutdownGraceMs: cfg.shutdownGraceMs,
    maxHeaderBytes: cfg.maxHeaderBytes,
    maxConnections: cfg.maxConnections,
    objectCsp: cfg.objectCsp,
    onRequestDone: observeRequests(metrics, log, cfg.accessLog),
  });
  // The key cache keeps process-wide counters; mirror their growth into the Prometheus counters.
  const seen = { hits: 0, misses: 0, unwraps: 0 };
  const syncKeyCounters = () => {
    const c = keyCacheCounters;
    metrics.keyCacheHits.inc(c.hits - seen.hits);
    metrics.keyCacheMisses.inc(c.misses - seen.misses);
    metrics.keyUnwraps.inc({ provider: cfg.cmk }, c.unwraps - seen.unwraps);
    Object.assign(seen, { hits: c.hits, misses: c.misses, unwraps: c.unwraps });
  };
  setInterval(syncKeyCounters, 500).unref();
  const admin = await startAdmin({ gateway: gw, metrics, host: cfg.adminHost, port: cfg.adminPort, log, tls: gw.server && cfg.tls.cert && cfg.tls.key ? { cert: cfg.tls.cert, key: cfg.tls.key } : undefined, rewrapRatePerSec: cfg.rewrapRatePerSec, datasets: cfg.datasets });
  log.info({ config: redactConfig(cfg) }, 'configuration');
  const lines = [
    `lakecrypt is up`,
    `  S3 endpoint:   ${gw.url}`,
    `  admin API:     ${admin.url}`,
    `  region:        ${cfg.region}`,
    `  backend:       ${cfg.backend === 's3' ? cfg.s3.endpoint : path.resolve(cfg.dataDir, 'store')}`,
    `  CMK:           ${cfg.cmk}`,
    `  access key:    ${cfg.accessKey}`,
    cfg.meta.credentials === 'settings'
      ? `  secret key:    (as configured)`
      : `  secret key:    ${cfg.secretKey}   (stored in ${cfg.meta.credentialsFile})`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining in-flight requests');
    await admin.close();
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

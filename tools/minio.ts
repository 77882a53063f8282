/**
 * Start a real MinIO server (tests, bench, scripts).
 *
 *   const m = await startMinio();            // free loopback port, temp data dir, random root credentials
 *   m.endpoint, m.accessKey, m.secretKey    // e.g. http://127.0.0.1:41234
 *   await m.restart();                      // same port, same data dir (fault tests)
 *   await m.stop();                         // kills the server; removes the data dir if startMinio created it
 *
 * The binary is looked up in $MINIO_BIN, ${LAKECRYPT_CACHE:-~/.cache/lakecrypt}/bin/minio, then $PATH
 * (scripts/test-deps.sh installs it into the cache dir).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './ports.ts';
import { findBinary, restartable, startProcess } from './process.ts';
import { makeTmpDir } from './tmp.ts';

export interface MinioCoords {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  dataDir: string;
}

export interface MinioHandle extends MinioCoords {
  port: number;
  /** The server process's pid while it runs (the benchmark reads its CPU time). */
  readonly pid: number | undefined;
  /** Last lines of the server's output (for failure messages). */
  logs(): string;
  stop(): Promise<void>;
  /** Stop (SIGKILL when `kill` is true, i.e. a crash) and start again on the same port and data dir. */
  restart(opts?: { kill?: boolean }): Promise<void>;
  /** Kill the process without restarting (simulate an outage); `start()` brings it back. */
  kill(): Promise<void>;
  start(): Promise<void>;
}

export function minioBinary(): string {
  const bin = findBinary('minio');
  if (!bin) throw new Error('minio binary not found: run `bash scripts/test-deps.sh` (or set MINIO_BIN)');
  return bin;
}

export interface MinioOptions {
  dataDir?: string;
  port?: number;
  accessKey?: string;
  secretKey?: string;
  /** More environment for the server (e.g. MINIO_KMS_SECRET_KEY for its own SSE-S3). */
  env?: Record<string, string>;
}

export async function startMinio(opts: MinioOptions = {}): Promise<MinioHandle> {
  const bin = minioBinary();
  const ownTmp = opts.dataDir ? null : makeTmpDir('lakecrypt-minio-');
  const dataDir = opts.dataDir ?? path.join(ownTmp!.path, 'data');
  mkdirSync(dataDir, { recursive: true });
  const accessKey = opts.accessKey ?? `lc${randomBytes(6).toString('hex')}`;
  // No '-' or '_': a secret starting with '-' reads as a flag on CLI clients' command lines (mc alias set).
  const secretKey = opts.secretKey ?? randomBytes(18).toString('hex');
  let port = opts.port ?? (await freePort());
  const server = restartable(
    async () => {
      const consolePort = await freePort();
      return startProcess(bin, ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet'], {
        env: {
          ...process.env,
          MINIO_ROOT_USER: accessKey,
          MINIO_ROOT_PASSWORD: secretKey,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
          MINIO_CI_CD: '1',
          MINIO_API_REQUESTS_MAX: '0',
          ...opts.env,
        },
        maxOutput: 64 << 10,
      });
    },
    (p) =>
      p.waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/minio/health/ready`, { signal: AbortSignal.timeout(1000) })).ok, {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: `minio on port ${port}`,
      }),
  );
  // A port picked by freePort() can be taken by someone else before minio binds it: retry with a new one.
  await server.start({ retries: opts.port ? 0 : 2, beforeRetry: async () => void (port = await freePort()) });

  const handle: MinioHandle = {
    endpoint: `http://127.0.0.1:${port}`,
    accessKey,
    secretKey,
    region: 'us-east-1',
    dataDir,
    port,
    get pid() {
      return server.pid;
    },
    logs: () => server.logs(),
    async stop() {
      await server.stop('SIGTERM');
      ownTmp?.cleanup();
    },
    kill: () => server.stop('SIGKILL'),
    // the old socket may linger briefly; retry binding the same port
    start: () => server.start({ retries: 20, delayMs: 250 }),
    async restart(o = {}) {
      await server.stop(o.kill ? 'SIGKILL' : 'SIGTERM');
      await handle.start();
    },
  };
  return handle;
}

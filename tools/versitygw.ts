/**
 * Start a real versitygw (Versity S3 Gateway, Apache-2.0) serving S3 over a POSIX directory: the second real S3
 * backend the backend contract and API suites run against (MinIO's open-source server was archived in 2026).
 *
 *   const v = await startVersitygw();       // free loopback port, temp dir, random root credentials
 *   v.endpoint, v.accessKey, v.secretKey   // the same coordinates as a MinIO (MinioCoords), so startTestGateway
 *                                          // and the suites take them as `minio`
 *   await v.restart();  await v.stop();    // stop removes the temp dir when startVersitygw created it
 *
 * The binary is looked up in $VERSITYGW_BIN, ${LAKECRYPT_CACHE:-~/.cache/lakecrypt}/bin, $PATH, then Go's bin
 * directory (scripts/test-deps.sh installs v1.8.0 into the cache dir).
 *
 * Object metadata (ETag, x-amz-meta-*, content type) lives in user xattrs on the object files by default; a
 * filesystem without them (older tmpfs, some overlay set-ups) needs `sidecar: true`, which keeps it in files
 * under a directory beside the data instead.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { MinioCoords } from './minio.ts';
import { freePort } from './ports.ts';
import { findBinary, restartable, startProcess } from './process.ts';
import { makeTmpDir } from './tmp.ts';

export interface VersitygwHandle extends MinioCoords {
  port: number;
  readonly pid: number | undefined;
  /** Last lines of the server's output (for failure messages). */
  logs(): string;
  stop(): Promise<void>;
  /** Stop (SIGKILL when `kill` is true) and start again on the same port and directory. */
  restart(opts?: { kill?: boolean }): Promise<void>;
}

export interface VersitygwOptions {
  /** The POSIX root: each top-level directory is a bucket (default: a fresh temp dir). */
  dataDir?: string;
  port?: number;
  accessKey?: string;
  secretKey?: string;
  /** Keep object metadata in sidecar files instead of xattrs. */
  sidecar?: boolean;
  /** Enable bucket versioning support (versitygw keeps old versions in this directory). */
  versioningDir?: string;
}

export function versitygwBinary(): string {
  const bin = findBinary('versitygw');
  if (!bin) throw new Error('versitygw binary not found: run `bash scripts/test-deps.sh` (or set VERSITYGW_BIN)');
  return bin;
}

export async function startVersitygw(opts: VersitygwOptions = {}): Promise<VersitygwHandle> {
  const bin = versitygwBinary();
  const ownTmp = opts.dataDir ? null : makeTmpDir('lakecrypt-versitygw-');
  const dataDir = opts.dataDir ?? path.join(ownTmp!.path, 'data');
  mkdirSync(dataDir, { recursive: true });
  // beside the root, never inside it (versitygw refuses that, and also any path that merely starts with the root's)
  const sidecarDir = opts.sidecar ? path.join(ownTmp?.path ?? path.dirname(dataDir), `sidecar-of-${path.basename(dataDir)}`) : undefined;
  if (sidecarDir) mkdirSync(sidecarDir, { recursive: true });
  if (opts.versioningDir) mkdirSync(opts.versioningDir, { recursive: true });
  const accessKey = opts.accessKey ?? `vg${randomBytes(6).toString('hex')}`;
  // hex only: no character a CLI client's command line could take for a flag
  const secretKey = opts.secretKey ?? randomBytes(18).toString('hex');
  let port = opts.port ?? (await freePort());
  // The credentials go through the environment, never the command line (visible in ps).
  const args = () => [
    '--port', `127.0.0.1:${port}`,
    '--quiet',
    '--health', '/health',
    'posix',
    ...(sidecarDir ? ['--sidecar', sidecarDir] : []),
    ...(opts.versioningDir ? ['--versioning-dir', opts.versioningDir] : []),
    dataDir,
  ];
  const server = restartable(
    () =>
      startProcess(bin, args(), {
        env: { ...process.env, ROOT_ACCESS_KEY: accessKey, ROOT_SECRET_KEY: secretKey },
        maxOutput: 64 << 10,
      }),
    (p) =>
      p.waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) }).catch(() => null))?.ok === true, {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: `versitygw on port ${port}`,
      }),
  );
  // A port picked by freePort() can be taken before versitygw binds it: retry with a new one.
  await server.start({ retries: opts.port ? 0 : 2, beforeRetry: async () => void (port = await freePort()) });

  const handle: VersitygwHandle = {
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
    async restart(o = {}) {
      await server.stop(o.kill ? 'SIGKILL' : 'SIGTERM');
      // the old socket may linger briefly; retry binding the same port
      await server.start({ retries: 20, delayMs: 250 });
    },
  };
  return handle;
}

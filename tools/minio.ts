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

/** The environment every MinIO server of the tools runs with: root user, no browser or update checks, no request cap. */
function serverEnv(accessKey: string, secretKey: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    MINIO_ROOT_USER: accessKey,
    MINIO_ROOT_PASSWORD: secretKey,
    MINIO_BROWSER: 'off',
    MINIO_UPDATE: 'off',
    MINIO_CI_CD: '1',
    MINIO_API_REQUESTS_MAX: '0',
  };
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
        env: { ...serverEnv(accessKey, secretKey), ...opts.env },
        maxOutput: 64 << 10,
      });
    },
    (p) =>
      // /ready can answer before the object layer is up (a first CreateBucket then met XMinioServerNotInitialized,
      // seen in a clean-clone run); /cluster is 200 once it can write
      p.waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/minio/health/ready`, { signal: AbortSignal.timeout(1000) })).ok && (await fetch(`http://127.0.0.1:${port}/minio/health/cluster`, { signal: AbortSignal.timeout(1000) })).ok, {
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

export interface MinioClusterHandle extends MinioCoords {
  /** One S3 endpoint per server process (any of them serves every request). */
  endpoints: string[];
  nodes: { port: number; logs(): string; kill(): Promise<void>; start(): Promise<void>; readonly running: boolean }[];
  stop(): Promise<void>;
}

/**
 * A distributed MinIO: `nodes` server processes on loopback, one drive each, forming one erasure set (4 nodes: 2
 * data + 2 parity shards; reads and writes go on with one node down). MinIO refuses loopback peers in distributed
 * mode when it thinks it runs in a container unless each process is told which endpoint is its own
 * (`_MINIO_SERVER_LOCAL`).
 */
export async function startMinioCluster(opts: { nodes?: number } = {}): Promise<MinioClusterHandle> {
  const n = opts.nodes ?? 4;
  const bin = minioBinary();
  const tmp = makeTmpDir('lakecrypt-minio-cluster-');
  const accessKey = `lc${randomBytes(6).toString('hex')}`;
  const secretKey = randomBytes(18).toString('hex');
  const ports: number[] = [];
  while (ports.length < n) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const drives = ports.map((p, i) => {
    const dir = path.join(tmp.path, `node${i + 1}`);
    mkdirSync(dir, { recursive: true });
    return `http://127.0.0.1:${p}${dir}`;
  });
  // A node answers /ready before the set has formed; /cluster is 200 only once the erasure set has write quorum
  // (a gateway starting before that met 'UnknownError' on its first backend call).
  const ok = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(1000) }).catch(() => null))?.ok === true;
  const ready = (port: number) => async () =>
    (await ok(`http://127.0.0.1:${port}/minio/health/ready`)) && (await ok(`http://127.0.0.1:${port}/minio/health/cluster`));
  const servers = ports.map((port) =>
    restartable(
      async () => {
        const consolePort = await freePort();
        return startProcess(bin, ['server', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet', ...drives], {
          // MinIO refuses loopback peers in distributed mode unless each process knows its own endpoint
          env: { ...serverEnv(accessKey, secretKey), _MINIO_SERVER_LOCAL: `127.0.0.1:${port}` },
          maxOutput: 64 << 10,
        });
      },
      // a node alone is not ready until the set has quorum: waited for below, once all run
      async () => {},
    ),
  );
  const waitReady = async (port: number, what: string) => {
    const check = ready(port);
    const t0 = performance.now();
    while (!(await check())) {
      if (performance.now() - t0 > 120_000) throw new Error(`${what} not ready within 120 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await Promise.all(servers.map((s) => s.start()));
  try {
    await Promise.all(ports.map((p, i) => waitReady(p, `minio node ${i + 1}`)));
  } catch (e) {
    const logs = servers.map((s, i) => `--- node ${i + 1}\n${s.logs().slice(-2000)}`).join('\n');
    await Promise.all(servers.map((s) => s.stop('SIGKILL')));
    tmp.cleanup();
    throw new Error(`${(e as Error).message}\n${logs}`, { cause: e });
  }
  return {
    endpoint: `http://127.0.0.1:${ports[0]}`,
    endpoints: ports.map((p) => `http://127.0.0.1:${p}`),
    accessKey,
    secretKey,
    region: 'us-east-1',
    dataDir: tmp.path,
    nodes: servers.map((s, i) => ({
      port: ports[i],
      logs: () => s.logs(),
      kill: () => s.stop('SIGKILL'),
      start: async () => {
        await s.start({ retries: 20, delayMs: 250 });
        await waitReady(ports[i], `minio node ${i + 1}`);
      },
      get running() {
        return s.running;
      },
    })),
    async stop() {
      await Promise.all(servers.map((s) => s.stop('SIGTERM')));
      tmp.cleanup();
    },
  };
}

/**
 * Start a real MinIO server for tests.
 *
 *   const m = await startMinio();            // free loopback port, temp data dir, random root credentials
 *   m.endpoint, m.accessKey, m.secretKey    // e.g. http://127.0.0.1:41234
 *   await m.restart();                      // same port, same data dir (fault tests)
 *   await m.stop();                         // kills the server; removes the data dir if startMinio created it
 *
 * The binary is looked up in $MINIO_BIN, ${LAKECRYPT_CACHE:-~/.cache/lakecrypt}/bin/minio, then $PATH
 * (scripts/test-deps.sh installs it into the cache dir).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.ts';
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

export function cacheDir(): string {
  return process.env.LAKECRYPT_CACHE ?? path.join(os.homedir(), '.cache', 'lakecrypt');
}

export function findBinary(name: string): string | null {
  const envName = `${name.toUpperCase()}_BIN`;
  const candidates = [process.env[envName], path.join(cacheDir(), 'bin', name)];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, name));
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

export function minioBinary(): string {
  const bin = findBinary('minio');
  if (!bin) throw new Error('minio binary not found: run `bash scripts/test-deps.sh` (or set MINIO_BIN)');
  return bin;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const children = new Set<ChildProcess>();
let exitHook = false;
function trackChild(c: ChildProcess) {
  children.add(c);
  c.once('exit', () => children.delete(c));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const ch of children) ch.kill('SIGKILL');
    });
  }
}

export async function startMinio(opts: { dataDir?: string; port?: number; accessKey?: string; secretKey?: string } = {}): Promise<MinioHandle> {
  const bin = minioBinary();
  const ownTmp = opts.dataDir ? null : makeTmpDir('lakecrypt-minio-');
  const dataDir = opts.dataDir ?? path.join(ownTmp!.path, 'data');
  mkdirSync(dataDir, { recursive: true });
  const accessKey = opts.accessKey ?? `lc${randomBytes(6).toString('hex')}`;
  // No '-' or '_': a secret starting with '-' reads as a flag on CLI clients' command lines (mc alias set).
  const secretKey = opts.secretKey ?? randomBytes(18).toString('hex');
  let port = opts.port ?? (await freePort());
  let child: ChildProcess | null = null;
  let out: string[] = [];

  const launch = async (): Promise<void> => {
    const consolePort = await freePort();
    out = [];
    const c = spawn(bin, ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet'], {
      env: {
        ...process.env,
        MINIO_ROOT_USER: accessKey,
        MINIO_ROOT_PASSWORD: secretKey,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        MINIO_CI_CD: '1',
        MINIO_API_REQUESTS_MAX: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(c);
    child = c;
    const keep = (d: Buffer) => {
      out.push(d.toString());
      if (out.length > 200) out.splice(0, out.length - 200);
    };
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    let exited = false;
    c.once('exit', () => (exited = true));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`minio exited during startup (port ${port}):\n${out.join('')}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/minio/health/ready`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return;
      } catch {
        /* not yet */
      }
      await sleep(100);
    }
    c.kill('SIGKILL');
    throw new Error(`minio did not become ready on port ${port}:\n${out.join('')}`);
  };

  const terminate = async (signal: NodeJS.Signals) => {
    const c = child as ChildProcess | null;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const done = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(t);
  };

  // A port picked by freePort() can be taken by someone else before minio binds it: retry with a new one.
  for (let attempt = 0; ; attempt++) {
    try {
      await launch();
      break;
    } catch (e) {
      await terminate('SIGKILL');
      if (attempt >= 2 || opts.port) throw e;
      port = await freePort();
    }
  }

  const handle: MinioHandle = {
    endpoint: `http://127.0.0.1:${port}`,
    accessKey,
    secretKey,
    region: 'us-east-1',
    dataDir,
    port,
    get pid() {
      return child?.pid;
    },
    logs: () => out.join(''),
    async stop() {
      await terminate('SIGTERM');
      ownTmp?.cleanup();
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async start() {
      if (child) return;
      // the old socket may linger briefly; retry binding the same port
      for (let i = 0; ; i++) {
        try {
          await launch();
          return;
        } catch (e) {
          await terminate('SIGKILL');
          if (i >= 20) throw e;
          await sleep(250);
        }
      }
    },
    async restart(o = {}) {
      await terminate(o.kill ? 'SIGKILL' : 'SIGTERM');
      await handle.start();
    },
  };
  return handle;
}

/** Remove a MinIO data dir that startMinio({dataDir}) was given (helper for tests that manage their own dir). */
export function removeDataDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}

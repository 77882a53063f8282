/**
 * A gateway as a separate process (`npx tsx src/main.ts`), so tests can SIGKILL it and grep its output.
 *
 *   const g = await spawnGateway({ dataDir, env: { LAKECRYPT_BACKEND: 's3', ... } });
 *   g.url, g.adminUrl, g.output()   // stdout + stderr so far
 *   g.kill()                        // SIGKILL (a crash)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface GatewayProc {
  url: string;
  adminUrl: string;
  pid: number;
  accessKey: string;
  secretKey: string;
  child: ChildProcess;
  output(): string;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (graceful) and wait. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;

export async function spawnGateway(o: {
  dataDir: string;
  env?: Record<string, string>;
  accessKey?: string;
  secretKey?: string;
}): Promise<GatewayProc> {
  const accessKey = o.accessKey ?? `AK${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretKey = o.secretKey ?? randomBytes(24).toString('base64url');
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    LAKECRYPT_PORT: '0',
    LAKECRYPT_ADMIN_PORT: '0',
    LAKECRYPT_DATA_DIR: o.dataDir,
    LAKECRYPT_ACCESS_KEY: accessKey,
    LAKECRYPT_SECRET_KEY: secretKey,
    LAKECRYPT_LOG_LEVEL: 'warn',
    LAKECRYPT_ACCESS_LOG: 'false',
    LAKECRYPT_CRYPTO_THREADS: '1',
    ...(o.env ?? {}),
  };
  delete env.LAKECRYPT_CONFIG;
  // `node --import tsx` (what `npx tsx` runs) in ONE process: the tsx CLI would fork a child, and a SIGKILL of
  // the CLI would leave that child (the real gateway) running.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const up = await new Promise<{ url: string; adminUrl: string }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`gateway did not start in 60 s:\n${out}`)), 60_000);
    const check = () => {
      const s3 = /S3 endpoint:\s+(\S+)/.exec(out);
      const admin = /admin API:\s+(\S+)/.exec(out);
      if (s3 && admin) {
        clearTimeout(t);
        resolve({ url: s3[1]!, adminUrl: admin[1]! });
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`gateway exited (${code}) during startup:\n${out}`));
    });
  });
  return {
    ...up,
    pid: child.pid!,
    accessKey,
    secretKey,
    child,
    output: () => out,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

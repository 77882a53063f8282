/**
 * Run the gateway as its own process (`node --import tsx src/main.ts`), as an operator would. One launcher for
 * every test that needs a real process (SIGKILL, SIGTERM drain, log greps, two gateways on one backend).
 *
 *   const gw = await spawnGateway({ LAKECRYPT_BACKEND: 's3', ... });
 *   gw.url, gw.adminUrl, gw.accessKey, gw.secretKey, gw.output()  // combined stdout+stderr so far
 *   await gw.stop();            // SIGTERM and wait for exit (its code); gw.kill() = SIGKILL
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { generateCredentials } from '../../src/ops/config.ts';
import { makeTmpDir } from './tmp.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface LaunchedGateway {
  child: ChildProcess;
  pid: number;
  /** The S3 and admin endpoints the process printed (ports chosen by the OS when 0). */
  url: string;
  adminUrl: string;
  output(): string;
  exited: Promise<number | null>;
  /** Send `signal` (SIGTERM) and wait for the exit; SIGKILL after 15 s. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL (a crash) and wait. */
  kill(): Promise<number | null>;
}

const live = new Set<ChildProcess>();
let hooked = false;

/**
 * Start `src/main.ts` with exactly `env` (callers merge process.env; an undefined value removes the variable) and resolve once it printed its endpoints.
 * `node --import tsx` in ONE process: the tsx CLI would fork a child that a SIGKILL of the CLI leaves running.
 */
export function launchGateway(env: Record<string, string | undefined>): Promise<LaunchedGateway> {
  const clean = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start within 60 s:\n${out}`));
    }, 60_000);
    const check = () => {
      const s3 = /S3 endpoint:\s+(\S+)/.exec(out);
      const admin = /admin API:\s+(\S+)/.exec(out);
      if (!s3 || !admin) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({
        child,
        pid: child.pid!,
        url: s3[1]!,
        adminUrl: admin[1]!,
        output: () => out,
        exited,
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (running()) child.kill(signal);
          const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
          const code = await exited;
          clearTimeout(t);
          return code;
        },
        async kill() {
          if (running()) child.kill('SIGKILL');
          return exited;
        },
      });
    };
    child.stdout!.on('data', check);
    // 'close', not 'exit': by then stdout/stderr are drained, so the error carries the process's last words.
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited early (${code}):\n${out}`));
    });
  });
}

export interface GatewayProcess extends LaunchedGateway {
  port: number;
  adminPort: number;
  accessKey: string;
  secretKey: string;
  dataDir: string;
}

/** A gateway on the shipped config file with a fresh data dir and root user, unless `env` says otherwise. */
export async function spawnGateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
  const dataDir = env.LAKECRYPT_DATA_DIR ?? makeTmpDir('lakecrypt-proc-').path;
  const accessKey = env.LAKECRYPT_ACCESS_KEY ?? `AK${randomBytes(6).toString('hex').toUpperCase()}`;
  // The product's generator: a base64url secret can start with '-', which mc's command line takes for a flag.
  const secretKey = env.LAKECRYPT_SECRET_KEY ?? generateCredentials().secretKey;
  const g = await launchGateway({
    ...process.env,
    LAKECRYPT_CONFIG: path.join(ROOT, 'config/lakecrypt.yaml'),
    LAKECRYPT_LOG_LEVEL: 'info',
    LAKECRYPT_PORT: '0',
    LAKECRYPT_ADMIN_PORT: '0',
    ...env,
    LAKECRYPT_DATA_DIR: dataDir,
    LAKECRYPT_ACCESS_KEY: accessKey,
    LAKECRYPT_SECRET_KEY: secretKey,
  });
  return { ...g, port: Number(new URL(g.url).port), adminPort: Number(new URL(g.adminUrl).port), accessKey, secretKey, dataDir };
}

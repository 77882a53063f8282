/**
 * Run the gateway as its own process (`node --import tsx src/main.ts`), as an operator would.
 *
 *   const gw = await spawnGateway({ LAKECRYPT_BACKEND: 's3', ... });
 *   gw.url, gw.adminUrl, gw.accessKey, gw.secretKey, gw.output()  // combined stdout+stderr so far
 *   await gw.stop();            // SIGTERM and wait for exit; gw.kill() = SIGKILL
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { freePort } from './ports.ts';
import { makeTmpDir } from './tmp.ts';

export interface GatewayProcess {
  url: string;
  adminUrl: string;
  port: number;
  adminPort: number;
  accessKey: string;
  secretKey: string;
  dataDir: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
  kill(): Promise<number | null>;
}

const ROOT = path.resolve(import.meta.dirname, '../..');

export async function spawnGateway(env: Record<string, string> = {}): Promise<GatewayProcess> {
  const port = Number(env.LAKECRYPT_PORT ?? (await freePort()));
  const adminPort = Number(env.LAKECRYPT_ADMIN_PORT ?? (await freePort()));
  const dataDir = env.LAKECRYPT_DATA_DIR ?? makeTmpDir('lakecrypt-proc-').path;
  const accessKey = env.LAKECRYPT_ACCESS_KEY ?? `AK${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretKey = env.LAKECRYPT_SECRET_KEY ?? randomBytes(20).toString('base64url');
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      LAKECRYPT_CONFIG: path.join(ROOT, 'config/lakecrypt.yaml'),
      LAKECRYPT_LOG_LEVEL: 'info',
      ...env,
      LAKECRYPT_PORT: String(port),
      LAKECRYPT_ADMIN_PORT: String(adminPort),
      LAKECRYPT_DATA_DIR: dataDir,
      LAKECRYPT_ACCESS_KEY: accessKey,
      LAKECRYPT_SECRET_KEY: secretKey,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  while (!out.includes('lakecrypt is up')) {
    if (child.exitCode !== null) throw new Error(`gateway exited early (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not start within 60 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    port,
    adminPort,
    accessKey,
    secretKey,
    dataDir,
    child,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}

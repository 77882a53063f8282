/**
 * The gateway under test, two ways, with one credential and port rule (a generated root user, OS-chosen
 * loopback ports):
 *
 *   launchGateway(o)          its own process (the compiled build, dist/src/main.js, as `npm start` runs it;
 *                             `fromSource: true` for `node --import tsx src/main.ts`), as an operator runs it: for
 *                             SIGKILL, SIGTERM drain, log greps, start-up errors, two gateways on one backend,
 *                             CPU and memory of the gateway alone (bench)
 *   startTestGateway(kind)    in this process (src/server/start.ts), on the fs backend or the shared MinIO
 *
 *   const gw = await launchGateway({ env: { LAKECRYPT_BACKEND: 's3', ... } });
 *   gw.url, gw.adminUrl, gw.accessKey, gw.secretKey, gw.dataDir, gw.output()   // stdout+stderr so far
 *   await gw.stop();            // SIGTERM and wait for the exit (its code); gw.kill() = SIGKILL
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { createBackend } from '../src/backend/index.ts';
import type { Backend } from '../src/backend/types.ts';
import { LocalCmkProvider } from '../src/keys/local-cmk.ts';
import type { CmkProvider } from '../src/keys/types.ts';
import { generateCredentials } from '../src/ops/config.ts';
import { startGateway, type RunningGateway, type StartOptions } from '../src/server/start.ts';
import { ensureBuilt, GATEWAY_JS } from '../scripts/build.mjs';
import type { MinioCoords } from './minio.ts';
import { ROOT, startProcess, type RunningProcess } from './process.ts';
import { makeTmpDir } from './tmp.ts';

export { ROOT };

export interface Credentials {
  accessKey: string;
  secretKey: string;
}

/** A fresh root user. The secret comes from the product's generator (never starts with '-', which mc's command line takes for a flag). */
export function newCredentials(): Credentials {
  return { accessKey: `AK${randomBytes(6).toString('hex').toUpperCase()}`, secretKey: generateCredentials().secretKey };
}

/** Both variants listen on loopback on a port the OS picks; the URL tells which. */
const ANY_PORT = 0;

/** A marker unique to this test process: any plaintext the tests write contains it. */
export const MARKER = `LKMARK${randomBytes(6).toString('hex')}`;

// ---------------------------------------------------------------- its own process

export interface GatewayOptions {
  /** LAKECRYPT_* (and any other) variables over process.env; an undefined value removes the variable. */
  env?: Record<string, string | undefined>;
  /** LAKECRYPT_DATA_DIR (default: a fresh temp dir, removed at exit). */
  dataDir?: string;
  /** The root user (default: newCredentials()); either half may be given alone. */
  credentials?: Partial<Credentials>;
  /** LAKECRYPT_CONFIG (default: the shipped config/lakecrypt.yaml). */
  configFile?: string;
  /** warn-level log, no access log (default false: info, as shipped). */
  quiet?: boolean;
  /** Arguments for node before the script, e.g. ['--cpu-prof', '--cpu-prof-dir=…']. */
  nodeArgs?: string[];
  /** Arguments for the gateway's main script. */
  args?: string[];
  /**
   * Run src/main.ts through tsx instead of the compiled build (dist/src/main.js, made or remade from src/ on
   * demand, once per test process). Default false: the build starts in a fraction of the time, so a killed
   * gateway comes back fast; both run the same sources.
   */
  fromSource?: boolean;
  /**
   * Leave LAKECRYPT_ACCESS_KEY/LAKECRYPT_SECRET_KEY unset, as a first start on a fresh machine does: the gateway
   * generates the root user into <dataDir>/credentials.json (or reads it there), and the pair is read back from it.
   */
  generatedCredentials?: boolean;
  /** How long start-up may take (default 60 s). */
  startTimeoutMs?: number;
}

export interface GatewayProcess extends RunningProcess, Credentials {
  /** The S3 and admin endpoints the process printed. */
  url: string;
  adminUrl: string;
  port: number;
  adminPort: number;
  dataDir: string;
  /** Spawn to "endpoints printed" (ms): start-up samples to skip in a CPU profile. */
  startupMs: number;
}

let built: Promise<boolean> | undefined;

/** The compiled gateway, built when missing or older than src/ (scripts/build.mjs; one builder at a time across processes). */
async function gatewayScript(): Promise<string> {
  built ??= ensureBuilt();
  await built;
  return GATEWAY_JS;
}

/**
 * The node flags every launcher of the gateway passes (scripts/start.sh, npm start, the Dockerfile's CMD: checked by
 * test/ops/memory-trim.test.ts): V8's young generation capped at 4 MiB per semi-space instead of 16, which takes the
 * resting heap from ~60 to ~35 MiB, and kept at that size (the quiet trim's collection releases its pages; a young
 * generation V8 had shrunk cost the next burst of small requests ~10% more CPU), TurboFan's interrupt budget a quarter
 * of V8's default (the request path optimized after ~1,000 requests instead of ~3,000), and global.gc for the
 * collection when the addon was built without its C++ part (docs/OPERATIONS.md "Memory", src/ops/memory-trim.ts).
 */
export const GATEWAY_NODE_FLAGS = ['--max-semi-space-size=4', '--min-semi-space-size=4', '--interrupt-budget=16384', '--expose-gc'];

/**
 * Start the gateway and resolve once it printed its endpoints; reject with its output when it exits first.
 * `node --import tsx` in ONE process (fromSource): the tsx CLI would fork a child that a SIGKILL of the CLI
 * leaves running.
 */
export async function launchGateway(o: GatewayOptions = {}): Promise<GatewayProcess> {
  // The three are also honoured from `env`, so that no caller's setting is silently replaced.
  const dataDir = o.dataDir ?? o.env?.LAKECRYPT_DATA_DIR ?? makeTmpDir('lakecrypt-proc-').path;
  const gen = newCredentials();
  const given = o.generatedCredentials
    ? { LAKECRYPT_ACCESS_KEY: undefined, LAKECRYPT_SECRET_KEY: undefined }
    : {
        LAKECRYPT_ACCESS_KEY: o.credentials?.accessKey ?? o.env?.LAKECRYPT_ACCESS_KEY ?? gen.accessKey,
        LAKECRYPT_SECRET_KEY: o.credentials?.secretKey ?? o.env?.LAKECRYPT_SECRET_KEY ?? gen.secretKey,
      };
  const env: Record<string, string | undefined> = {
    ...process.env,
    NODE_OPTIONS: '',
    LAKECRYPT_CONFIG: o.configFile ?? path.join(ROOT, 'config/lakecrypt.yaml'),
    LAKECRYPT_PORT: String(ANY_PORT),
    LAKECRYPT_ADMIN_PORT: String(ANY_PORT),
    LAKECRYPT_LOG_LEVEL: o.quiet ? 'warn' : 'info',
    ...(o.quiet ? { LAKECRYPT_ACCESS_LOG: 'false' } : {}),
    ...o.env,
    LAKECRYPT_DATA_DIR: dataDir,
    ...given,
  };
  const clean = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  const main = o.fromSource ? ['--import', 'tsx', 'src/main.ts'] : [await gatewayScript()];
  const t0 = performance.now();
  const p = startProcess(process.execPath, [...GATEWAY_NODE_FLAGS, ...(o.nodeArgs ?? []), ...main, ...(o.args ?? [])], { cwd: ROOT, env: clean });
  const timeoutMs = o.startTimeoutMs ?? 60_000;
  try {
    // main.ts prints both lines in one write ("lakecrypt is up", S3 endpoint, admin API).
    const m = await p.waitForOutput(/S3 endpoint:\s+(\S+)[\s\S]*?admin API:\s+(\S+)/, { timeoutMs, what: 'gateway' });
    const [url, adminUrl] = [m[1], m[2]];
    const startupMs = performance.now() - t0;
    const creds = given.LAKECRYPT_ACCESS_KEY !== undefined && given.LAKECRYPT_SECRET_KEY !== undefined
      ? { accessKey: given.LAKECRYPT_ACCESS_KEY, secretKey: given.LAKECRYPT_SECRET_KEY }
      : (JSON.parse(readFileSync(path.join(dataDir, 'credentials.json'), 'utf8')) as Credentials);
    return { ...p, url, adminUrl, port: Number(new URL(url).port), adminPort: Number(new URL(adminUrl).port), accessKey: creds.accessKey, secretKey: creds.secretKey, dataDir, startupMs };
  } catch (e) {
    await p.kill();
    throw e;
  }
}

// ---------------------------------------------------------------- in this process

export interface TestGateway extends Credentials {
  url: string;
  backend: Backend;
  running: RunningGateway;
  dataDir: string;
  client(opts?: Partial<Credentials>): S3Client;
  /** Files under the backend's storage that contain any of the needles (fs: our data dir; s3: MinIO's). */
  scanBackendFor(needles: string[]): Promise<string[]>;
  close(): Promise<void>;
}

/** Files under `dir` whose name or bytes contain any of the needles. */
export function scanDir(dir: string, needles: string[]): string[] {
  const hits: string[] = [];
  const bufs = needles.map((n) => Buffer.from(n));
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) {
        const data = readFileSync(p);
        if (bufs.some((b) => data.includes(b)) || needles.some((n) => name.includes(n))) hits.push(p);
      }
    }
  };
  walk(dir);
  return hits;
}

export type TestGatewayOptions = Partial<StartOptions> & {
  cmks?: Record<string, CmkProvider>;
  dataDir?: string;
  backend?: Backend;
  /** The MinIO of kind 's3' (default: the one vitest's global setup started, `inject('minio')`). */
  minio?: MinioCoords;
};

export async function startTestGateway(kind: 'fs' | 's3', extra: TestGatewayOptions = {}): Promise<TestGateway> {
  const { minio: given, ...opts } = extra;
  const minio = kind === 's3' ? (given ?? (await import('vitest')).inject('minio')) : undefined;
  const tmp = opts.dataDir ? { path: opts.dataDir, cleanup() {} } : makeTmpDir('lakecrypt-gw-');
  const backend =
    opts.backend ??
    (minio
      ? createBackend({ kind: 's3', endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, region: minio.region })
      : createBackend({ kind: 'fs', dataDir: path.join(tmp.path, 'store') }));
  const cmks = opts.cmks ?? { default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }) };
  const { accessKey, secretKey } = newCredentials();
  const metaBucket = opts.metaBucket ?? (kind === 's3' ? `lcmeta-${randomBytes(4).toString('hex')}` : 'lakecrypt-meta');
  const running = await startGateway({
    port: ANY_PORT,
    backend,
    cmks,
    defaultCmk: Object.keys(cmks)[0],
    metaBucket,
    epochPollMs: 100,
    onRequestDone: (_r, _status, _ms, err) => {
      if (err && err.status >= 500 && process.env.LAKECRYPT_TEST_DEBUG) console.error('gateway 5xx', err, err.cause);
    },
    ...opts,
    // Extra users come beside the generated root user, never instead of it.
    users: [{ accessKey, secretKey, buckets: ['*'], admin: true }, ...(opts.users ?? [])],
  });
  return {
    url: running.url,
    accessKey,
    secretKey,
    backend,
    running,
    dataDir: tmp.path,
    client: (c = {}) =>
      new S3Client({
        endpoint: running.url,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: c.accessKey ?? accessKey, secretAccessKey: c.secretKey ?? secretKey },
      }),
    scanBackendFor(needles) {
      if (!minio) return Promise.resolve(scanDir(tmp.path, needles));
      return Promise.resolve(minio.dataDir ? scanDir(minio.dataDir, needles) : []);
    },
    async close() {
      await running.close();
      if (!opts.backend) await backend.close();
      tmp.cleanup();
    },
  };
}

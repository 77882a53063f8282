/**
 * The three systems under test, all on loopback:
 *   minio      plain MinIO (also the backend of lakecrypt)
 *   minio_sse  a second MinIO with its own SSE-S3 (MINIO_KMS_SECRET_KEY + auto-encryption, and a bucket
 *              encryption config as `mc encrypt set sse-s3` would set); encryption is verified with HEAD
 *   lakecrypt  the gateway as its own process (the compiled build, `node --max-semi-space-size=4 --min-semi-space-size=4 --interrupt-budget=16384 --expose-gc dist/src/main.js`, LAKECRYPT_BACKEND=s3 on minio),
 *              so its CPU is separate from the benchmark client's
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, HeadObjectCommand, PutBucketEncryptionCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { launchGateway } from '../../tools/gateway.ts';
import { startMinio, type MinioHandle } from '../../tools/minio.ts';
import { ROOT, startProcess } from '../../tools/process.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { makeClient, type Endpoint } from './s3.ts';

export const REPO = ROOT;

export type TargetName = 'lakecrypt' | 'minio' | 'minio_sse';
export const TARGETS: TargetName[] = ['lakecrypt', 'minio', 'minio_sse'];

export interface Target extends Endpoint {
  name: TargetName;
  client: S3Client;
  /** Same settings, own keep-alive agent: HEADs go here, so a server that breaks the connection after a HEAD
   * (as lakecrypt's standalone process did before commit 543e6a2) cannot poison the sockets of other scenarios. */
  headClient: S3Client;
  bucket: string;
  pid: number;
}

export async function startPlainMinio(): Promise<MinioHandle> {
  return startMinio();
}

/** MinIO with its own SSE-S3: a static KMS key and auto-encryption. */
export async function startSseMinio(): Promise<MinioHandle> {
  return startMinio({ env: { MINIO_KMS_SECRET_KEY: `bench-key:${randomBytes(32).toString('base64')}`, MINIO_KMS_AUTO_ENCRYPTION: 'on' } });
}

export interface Gateway extends Endpoint {
  pid: number;
  adminUrl: string;
  child: ChildProcess;
  /** Spawn to "lakecrypt is up" (ms): start-up samples to skip in a CPU profile. */
  startupMs: number;
  logs(): string;
  stop(): Promise<void>;
}

/** The gateway as its own node process on `backend`, with defaults + the env below (an empty config file). `nodeArgs` e.g. ['--cpu-prof', '--cpu-prof-dir=...']. */
export async function startGatewayProcess(backend: Endpoint, opts: { nodeArgs?: string[]; env?: Record<string, string> } = {}): Promise<Gateway> {
  const dataDir = makeTmpDir('lakecrypt-bench-gw-');
  const configFile = path.join(dataDir.path, 'bench.yaml');
  writeFileSync(configFile, '');
  const g = await launchGateway({
    dataDir: dataDir.path,
    configFile,
    quiet: true,
    nodeArgs: opts.nodeArgs,
    startTimeoutMs: 90_000,
    env: {
      LAKECRYPT_HOST: '127.0.0.1',
      LAKECRYPT_ADMIN_HOST: '127.0.0.1',
      LAKECRYPT_BACKEND: 's3',
      LAKECRYPT_S3_ENDPOINT: backend.endpoint,
      LAKECRYPT_S3_ACCESS_KEY: backend.accessKey,
      LAKECRYPT_S3_SECRET_KEY: backend.secretKey,
      LAKECRYPT_META_BUCKET: `lcmeta-${randomBytes(4).toString('hex')}`,
      ...opts.env,
    },
  });
  return {
    startupMs: g.startupMs,
    endpoint: g.url,
    accessKey: g.accessKey,
    secretKey: g.secretKey,
    pid: g.pid,
    adminUrl: g.adminUrl,
    child: g.child,
    logs: g.output,
    async stop() {
      await g.stop('SIGTERM', 20_000);
      dataDir.cleanup();
    },
  };
}

export async function makeTarget(name: TargetName, e: Endpoint, pid: number): Promise<Target> {
  const client = makeClient(e);
  const bucket = `bench-${name.replace('_', '-')}-${randomBytes(3).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  if (name === 'minio_sse') {
    // what `mc encrypt set sse-s3 ALIAS/BUCKET` does, in case auto-encryption is not honoured by this MinIO
    await client.send(new PutBucketEncryptionCommand({
      Bucket: bucket,
      ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    }));
  }
  return { name, ...e, client, headClient: makeClient(e), bucket, pid };
}

/** Put a probe object and return what HEAD says about server-side encryption. */
export async function probeSse(t: Target): Promise<string | undefined> {
  await t.client.send(new PutObjectCommand({ Bucket: t.bucket, Key: 'sse-probe', Body: Buffer.from('probe') }));
  const h = await t.headClient.send(new HeadObjectCommand({ Bucket: t.bucket, Key: 'sse-probe' }));
  return h.ServerSideEncryption;
}

/** VmRSS / VmHWM of a process in MiB (Linux /proc). */
export function memOf(pid: number): { rss: number; hwm: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/** CPU seconds (user + system, all threads) a process has used so far (Linux /proc, 100 ticks/s). */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15 of the full line
  } catch {
    return NaN;
  }
}

/** CPU seconds the whole machine has spent busy so far, all cores (Linux /proc/stat, 100 ticks/s). */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) / 100;
}

/** Sample VmRSS every `everyMs` until stopped; returns the peak seen (MiB). */
export function rssSampler(pid: number, everyMs = 100): { stop(): { peak: number; samples: number; hwm: number } } {
  let peak = 0;
  let samples = 0;
  const tick = () => {
    const m = memOf(pid);
    if (m && m.rss > peak) peak = m.rss;
    samples++;
  };
  tick();
  const t = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(t);
      tick();
      return { peak, samples, hwm: memOf(pid)?.hwm ?? NaN };
    },
  };
}

/** Spawn bench/lib/relay.ts in `mode` (tcp, tcp-aes, http, http-aes, or any mode relay.ts adds) in front of `be` (its own process, so its CPU can be read apart). */
export async function startRelay(mode: string, be: Endpoint): Promise<{ endpoint: string; child: ChildProcess }> {
  return startMiddleProcess('bench/lib/relay.ts', mode, be);
}

/** Spawn a middle-process script (`<script> <mode> <endpoint> <ak> <sk>`, prints `listening <port>`) in front of `be`. */
export async function startMiddleProcess(script: string, mode: string, be: Endpoint): Promise<{ endpoint: string; child: ChildProcess }> {
  const p = startProcess(process.execPath, ['--import', 'tsx', script, mode, be.endpoint, be.accessKey, be.secretKey], { cwd: REPO, inheritStderr: true });
  const [, port] = await p.waitForOutput(/listening (\d+)/, { timeoutMs: 30_000, what: `${path.basename(script)} ${mode}` }).catch(async (e: unknown) => {
    await p.kill();
    throw e;
  });
  return { endpoint: `http://127.0.0.1:${port}`, child: p.child };
}

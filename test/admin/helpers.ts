/** Shared helpers for the admin tests: in-process gateway + admin, CLI runner. */
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { startAdmin, type AdminDatasetConfig, type RunningAdmin } from '../../src/admin/server.ts';
import { AdminClient } from '../../src/cli/client.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import type { StartOptions } from '../../src/server/start.ts';
import { ROOT, startTestGateway, type TestGateway } from '../../tools/gateway.ts';

export const CLI = path.join(ROOT, 'bin/lakecrypt.mjs');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `node bin/lakecrypt.mjs ...args` (asynchronously: an in-process gateway keeps serving). */
export function runCli(args: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env, NODE_OPTIONS: '' }, cwd: ROOT, timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

export interface AdminHarness {
  gw: TestGateway;
  admin: RunningAdmin;
  client: AdminClient;
  /** S3 client with the admin credentials. */
  s3: S3Client;
  env: Record<string, string>;
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  close(): Promise<void>;
}

export async function startAdminHarness(
  extra: Partial<StartOptions> & { datasetsCfg?: AdminDatasetConfig[]; keyDeletionWaitSeconds?: number } = {},
): Promise<AdminHarness> {
  const { datasetsCfg, keyDeletionWaitSeconds, ...rest } = extra;
  // the harness's `...extra` replaces its own admin user when `users` is given: bring our own admin then
  const own = { accessKey: `ADM${randomBytes(5).toString('hex').toUpperCase()}`, secretKey: randomBytes(20).toString('base64url'), buckets: ['*'], admin: true };
  if (rest.users) rest.users = [own, ...rest.users];
  const gw = await startTestGateway('s3', { blockSize: 65536, ...rest });
  if (extra.users) Object.assign(gw, { accessKey: own.accessKey, secretKey: own.secretKey });
  const admin = await startAdmin({ gateway: gw.running, metrics: createMetrics(), datasets: datasetsCfg, resumeJobs: false, keyDeletionWaitSeconds });
  const env = { LAKECRYPT_ADMIN_URL: admin.url, LAKECRYPT_ACCESS_KEY: gw.accessKey, LAKECRYPT_SECRET_KEY: gw.secretKey };
  return {
    gw,
    admin,
    env,
    s3: gw.client({ accessKey: gw.accessKey, secretKey: gw.secretKey }),
    client: new AdminClient({ url: admin.url, accessKey: gw.accessKey, secretKey: gw.secretKey }),
    cli: (args, e = {}) => runCli(args, { ...env, ...e }),
    async close() {
      await admin.close();
      await gw.close();
    },
  };
}

export async function putText(s3: S3Client, bucket: string, key: string, body: string | Buffer): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

/** GET (optionally a range): { status, body } — never throws for S3 errors. */
export async function getObj(s3: S3Client, bucket: string, key: string, range?: string): Promise<{ status: number; body?: Buffer; code?: string }> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
    return { status: r.$metadata.httpStatusCode ?? 200, body: Buffer.from(await r.Body!.transformToByteArray()) };
  } catch (e) {
    const m = (e as { $metadata?: { httpStatusCode?: number }; name?: string; Code?: string });
    return { status: m.$metadata?.httpStatusCode ?? 0, code: m.Code ?? m.name };
  }
}

/**
 * Make a dataset look like one from before header format 2: its record no longer says that every header is
 * format 2, so a re-wrap walks the headers (tests that plant format-1 headers need this).
 */
export async function markLegacyDataset(keys: import('../../src/keys/service.ts').KeyService, dataset: string): Promise<void> {
  await keys.keystore.updateRecord(keys.datasetId(dataset), (rec) => {
    if (!rec) throw new Error(`no record for ${dataset}`);
    delete rec.headerFormat;
    return rec;
  });
  keys.clearCaches();
}

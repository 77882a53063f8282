import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { generateCredentials } from '../../src/ops/config.ts';
import { S3Client } from '@aws-sdk/client-s3';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import type { CmkProvider } from '../../src/keys/types.ts';
import { startGateway, type RunningGateway, type StartOptions } from '../../src/server/start.ts';
import { makeTmpDir } from '../helpers/tmp.ts';
import { minioCoords } from '../helpers/s3.ts';

/** A marker unique to this test process: any plaintext the tests write contains it. */
export const MARKER = `LKMARK${randomBytes(6).toString('hex')}`;

export interface TestGateway {
  url: string;
  accessKey: string;
  secretKey: string;
  backend: Backend;
  running: RunningGateway;
  dataDir: string;
  client(opts?: { accessKey?: string; secretKey?: string }): S3Client;
  /** Files under the backend's storage that contain any of the needles (fs: our data dir; s3: MinIO's). */
  scanBackendFor(needles: string[]): Promise<string[]>;
  close(): Promise<void>;
}

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

export async function startTestGateway(
  kind: 'fs' | 's3',
  extra: Partial<StartOptions> & { cmks?: Record<string, CmkProvider>; dataDir?: string; backend?: Backend } = {},
): Promise<TestGateway> {
  const tmp = extra.dataDir ? { path: extra.dataDir, cleanup() {} } : makeTmpDir('lakecrypt-gw-');
  const backend =
    extra.backend ??
    (kind === 'fs'
      ? createBackend({ kind: 'fs', dataDir: path.join(tmp.path, 'store') })
      : (() => {
          const m = minioCoords();
          return createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region });
        })());
  const cmks = extra.cmks ?? { default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }) };
  const accessKey = `AK${randomBytes(6).toString('hex').toUpperCase()}`;
  // The product's generator: a base64url secret can start with '-', which mc's command line takes for a flag.
  const secretKey = generateCredentials().secretKey;
  const metaBucket = extra.metaBucket ?? (kind === 's3' ? `lcmeta-${randomBytes(4).toString('hex')}` : 'lakecrypt-meta');
  const running = await startGateway({
    backend,
    cmks,
    defaultCmk: Object.keys(cmks)[0]!,
    metaBucket,
    epochPollMs: 100,
    onRequestDone: (_r, _status, _ms, err) => {
      if (err && err.status >= 500 && process.env.LAKECRYPT_TEST_DEBUG) console.error('gateway 5xx', err, err.cause);
    },
    ...extra,
    // Extra users come beside the generated root user, never instead of it.
    users: [{ accessKey, secretKey, buckets: ['*'], admin: true }, ...(extra.users ?? [])],
  });
  return {
    url: running.url,
    accessKey,
    secretKey,
    backend,
    running,
    dataDir: tmp.path,
    client: (o = {}) =>
      new S3Client({
        endpoint: running.url,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: o.accessKey ?? accessKey, secretAccessKey: o.secretKey ?? secretKey },
      }),
    async scanBackendFor(needles) {
      if (kind === 'fs') return scanDir(tmp.path, needles);
      const dir = minioCoords().dataDir;
      return dir ? scanDir(dir, needles) : [];
    },
    async close() {
      await running.close();
      if (!extra.backend) await backend.close();
      tmp.cleanup();
    },
  };
}

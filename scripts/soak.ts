/**
 * Soak: N concurrent S3 clients on loopback against an in-process gateway, mixed PUT / GET / Range GET / LIST /
 * DELETE / multipart, with a KEK rotation + re-wrap (admin API) in the middle. Every GET is checked against what
 * was written. Samples RSS every second, prints the curve, writes bench/results/soak.json.
 *
 *   npx tsx scripts/soak.ts --duration 60 [--clients 32] [--backend fs|s3] [--out bench/results/soak.json]
 *
 * `--backend s3` starts a private MinIO (tools/minio.ts). test/reliability/soak.test.ts runs 20 s of it.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { startAdmin } from '../src/admin/server.ts';
import { createBackend } from '../src/backend/index.ts';
import type { Backend } from '../src/backend/types.ts';
import { LocalCmkProvider } from '../src/keys/local-cmk.ts';
import { createMetrics } from '../src/ops/metrics.ts';
import { startGateway } from '../src/server/start.ts';
import { signedRequest } from '../tools/sigv4.ts';
import { makeTmpDir } from '../tools/tmp.ts';

export interface SoakOptions {
  durationSec: number;
  clients?: number;
  backend?: 'fs' | 's3';
  out?: string;
  log?: (s: string) => void;
}

export interface SoakResult {
  durationSec: number;
  clients: number;
  backend: string;
  requests: number;
  byOp: Record<string, number>;
  failed: number;
  failures: string[];
  mismatches: number;
  rotation: { atSec: number; version: number; rewrap: string } | null;
  rssMiB: number[];
  rssGrowthSecondHalfMiB: number;
}

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const log = o.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const clients = o.clients ?? 32;
  const tmp = makeTmpDir('lakecrypt-soak-');
  let minio: { endpoint: string; accessKey: string; secretKey: string; stop(): Promise<void> } | null = null;
  let backend: Backend;
  if (o.backend === 's3') {
    const { startMinio } = await import('../tools/minio.ts');
    minio = await startMinio();
    backend = createBackend({ kind: 's3', endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey });
  } else {
    backend = createBackend({ kind: 'fs', dataDir: path.join(tmp.path, 'store') });
  }
  const creds = { accessKey: 'SOAKROOT0001', secretKey: randomBytes(24).toString('base64url') };
  const gw = await startGateway({
    backend,
    cmks: { default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }) },
    defaultCmk: 'default',
    users: [{ ...creds, buckets: ['*'], admin: true }],
    blockSize: 1024 * 1024,
    epochPollMs: 250,
  });
  const admin = await startAdmin({ gateway: gw, metrics: createMetrics(), resumeJobs: false });
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients * 2 });
  const s3 = new S3Client({
    endpoint: gw.url,
    region: 'us-east-1',
    forcePathStyle: true,
    maxAttempts: 1, // zero failed requests means zero: no client-side retry hides anything
    credentials: { accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey },
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
  });
  const bucket = 'soak';
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));

  const byOp: Record<string, number> = {};
  const failures: string[] = [];
  let failed = 0;
  let mismatches = 0;
  let requests = 0;
  const count = (op: string) => {
    requests++;
    byOp[op] = (byOp[op] ?? 0) + 1;
  };
  const fail = (what: string) => {
    failed++;
    if (failures.length < 20) failures.push(what);
  };

  const t0 = Date.now();
  const end = t0 + o.durationSec * 1000;
  const rss: number[] = [];
  const sampler = setInterval(() => {
    const m = process.memoryUsage().rss / MiB;
    rss.push(Math.round(m * 10) / 10);
    log(`t=${String(rss.length).padStart(3)}s rss=${m.toFixed(1)} MiB requests=${requests} failed=${failed} mismatches=${mismatches}`);
  }, 1000);

  const body = async (r: { Body?: unknown }) => Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());

  async function client(id: number) {
    const mine = new Map<string, Buffer | null>(); // key -> content (null = deleted)
    const keys = Array.from({ length: 5 }, (_, i) => `c${id}/k${i}`);
    let n = 0;
    while (Date.now() < end) {
      n++;
      const key = keys[(n * 7 + id) % keys.length]!;
      const known = mine.get(key);
      const roll = Math.random();
      try {
        if (known === undefined || roll < 0.25) {
          const size = Math.random() < 0.1 ? 0 : Math.floor(Math.random() * 200_000);
          const data = randomBytes(size);
          count('PUT');
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
          mine.set(key, data);
        } else if (roll < 0.5) {
          count('GET');
          const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })).then(body, (e: { name?: string }) => {
            if (e.name === 'NoSuchKey') return null;
            throw e;
          });
          if (!(r === null ? known === null : known !== null && r.equals(known))) mismatches++;
        } else if (roll < 0.7) {
          if (!known || known.length < 2) continue;
          const a = Math.floor(Math.random() * known.length);
          const b = Math.min(known.length - 1, a + Math.floor(Math.random() * 100_000));
          count('RANGE');
          const r = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${a}-${b}` })));
          if (!r.equals(known.subarray(a, b + 1))) mismatches++;
        } else if (roll < 0.8) {
          count('LIST');
          const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `c${id}/` }));
          const listed = new Map((l.Contents ?? []).map((c) => [c.Key!, c.Size!]));
          for (const [k, v] of mine) {
            if (v === null ? listed.has(k) : listed.get(k) !== v.length) mismatches++;
          }
        } else if (roll < 0.9) {
          count('DELETE');
          await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
          mine.set(key, null);
        } else if (roll < 0.915 && id % 4 === 0) {
          const data = randomBytes(5 * MiB + Math.floor(Math.random() * 100_000));
          count('MPU');
          const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
          const e1 = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: data.subarray(0, 5 * MiB) }))).ETag!;
          const e2 = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 2, Body: data.subarray(5 * MiB) }))).ETag!;
          await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] } }));
          requests += 3;
          mine.set(key, data);
        } else {
          count('HEAD-GET');
          const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-0' })).then(body, (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
            if (e.name === 'NoSuchKey' || e.name === 'InvalidRange' || e.$metadata?.httpStatusCode === 416) return null;
            throw e;
          });
          if (r !== null && (!known || !r.equals(known.subarray(0, 1)))) mismatches++;
        }
      } catch (e) {
        fail(`${key}: ${(e as Error).name}: ${(e as Error).message}`);
      }
    }
  }

  // Rotation + re-wrap in the middle of the run.
  let rotation: SoakResult['rotation'] = null;
  const rotator = (async () => {
    await sleep((o.durationSec * 1000) / 2);
    const r = await signedRequest(admin.url, creds, { method: 'POST', path: `/admin/keys/${bucket}/rotate`, body: Buffer.from(JSON.stringify({ rewrap: true })), headers: { 'content-type': 'application/json' } });
    if (r.status !== 200) {
      fail(`rotate+rewrap via admin API: ${r.status} ${r.body.toString()}`);
      return;
    }
    const j = JSON.parse(r.body.toString()) as { version: number; rewrap?: { state?: string } };
    rotation = { atSec: Math.round((Date.now() - t0) / 1000), version: j.version, rewrap: j.rewrap?.state ?? 'lazy (on read)' };
    log(`rotated to KEK v${j.version} with re-wrap (${rotation.rewrap}) at t=${rotation.atSec}s`);
  })();

  await Promise.all([...Array.from({ length: clients }, (_, i) => client(i)), rotator]);
  clearInterval(sampler);
  const half = Math.floor(rss.length / 2);
  const secondHalf = rss.slice(half);
  // Growth over the second half, robust to GC sawtooth: mean of its last third minus mean of its first third.
  const third = Math.max(1, Math.floor(secondHalf.length / 3));
  const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0);
  const growth = secondHalf.length >= 3 ? mean(secondHalf.slice(-third)) - mean(secondHalf.slice(0, third)) : 0;
  const result: SoakResult = {
    durationSec: o.durationSec,
    clients,
    backend: o.backend ?? 'fs',
    requests,
    byOp,
    failed,
    failures,
    mismatches,
    rotation,
    rssMiB: rss,
    rssGrowthSecondHalfMiB: Math.round(growth * 10) / 10,
  };
  const out = o.out ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bench/results/soak.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify({ ...result, finishedAt: new Date().toISOString(), node: process.version }, null, 2) + '\n');
  log(`soak: ${requests} requests (${JSON.stringify(byOp)}), failed ${failed}, mismatches ${mismatches}, RSS second-half growth ${result.rssGrowthSecondHalfMiB} MiB -> ${out}`);

  s3.destroy();
  agent.destroy();
  await admin.close();
  await gw.close();
  await backend.close();
  await minio?.stop();
  tmp.cleanup();
  return result;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string, def: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
  };
  runSoak({
    durationSec: Number(arg('duration', '60')),
    clients: Number(arg('clients', '32')),
    backend: arg('backend', 'fs') as 'fs' | 's3',
    out: process.argv.includes('--out') ? path.resolve(arg('out', '')) : undefined,
  }).then(
    async (r) => {
      const { closeCryptoPool } = await import('../src/engine/index.ts');
      await closeCryptoPool();
      process.exit(r.failed === 0 && r.mismatches === 0 ? 0 : 1);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

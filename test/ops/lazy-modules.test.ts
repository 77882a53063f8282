/**
 * Memory (issue #22, RSS at most 96 MiB): the gateway process does not load the npm packages only some
 * deployments or requests need — the AWS SDK's S3 client (the backend client is hand-signed), the KMS client (an
 * AWS KMS CMK), graphene-pk11 (a PKCS#11 CMK), piscina (cryptoThreads > 0), the CRC64-NVME checksum (clients that
 * send one). Each cost megabytes of RSS at start. A preload reports the process's loaded CommonJS modules on
 * SIGUSR2, after real traffic on a MinIO backend; the CRC64-NVME package must then load on first use and work.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, ListBucketsCommand,
  PutObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { launchGateway, type GatewayProcess } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil } from '../../tools/wait.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';

const LAZY = ['@aws-sdk/client-s3', '@aws-sdk/client-kms', '@aws-sdk/crc64-nvme', '@smithy/core', 'graphene-pk11', 'pkcs11js', 'piscina'];

describe('packages loaded only when used', () => {
  const tmp = makeTmpDir('lakecrypt-lazy-');
  const out = path.join(tmp.path, 'modules.json');
  const probe = path.join(tmp.path, 'probe.cjs');
  let gw: GatewayProcess;
  let s3: S3Client;
  const bucket = uniqueBucket('lazy');

  /** npm packages in the gateway's require cache now. */
  async function loaded(): Promise<Set<string>> {
    writeFileSync(out, '');
    process.kill(gw.pid, 'SIGUSR2');
    await pollUntil(() => readFileSync(out, 'utf8') !== '', { timeoutMs: 10_000, what: 'the module list' });
    const files = JSON.parse(readFileSync(out, 'utf8')) as string[];
    return new Set(files.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter((p): p is string => !!p));
  }

  beforeAll(async () => {
    writeFileSync(probe, `process.on('SIGUSR2', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`);
    const m = minioCoords();
    gw = await launchGateway({
      quiet: true,
      nodeArgs: ['-r', probe],
      env: { LAKECRYPT_BACKEND: 's3', LAKECRYPT_S3_ENDPOINT: m.endpoint, LAKECRYPT_S3_ACCESS_KEY: m.accessKey, LAKECRYPT_S3_SECRET_KEY: m.secretKey, LAKECRYPT_META_BUCKET: uniqueBucket('lazymeta') },
    });
    s3 = new S3Client({ endpoint: gw.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey } });
  });
  afterAll(async () => {
    s3?.destroy();
    await gw?.stop('SIGTERM', 20_000);
    tmp.cleanup();
  });

  it('none of them after start-up and a day of ordinary traffic (buckets, PUT, GET, multipart)', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new ListBucketsCommand({}));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: Buffer.alloc(4096, 1), ChecksumAlgorithm: 'CRC32' }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'small' }));
    expect((await got.Body!.transformToByteArray()).length).toBe(4096);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp' }));
    const part = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp', UploadId, PartNumber: 1, Body: Buffer.alloc(5 << 20, 2) }));
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
    const mods = await loaded();
    expect(mods.has('prom-client'), 'the probe sees the packages that are loaded').toBe(true);
    expect(LAZY.filter((p) => mods.has(p))).toEqual([]);
  });

  it('the CRC64-NVME checksum loads on first use, and checks', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'crc64', Body: Buffer.from('hello'), ChecksumAlgorithm: 'CRC64NVME' }));
    expect((await loaded()).has('@aws-sdk/crc64-nvme')).toBe(true);
    // a wrong value is refused: the lazily loaded hasher is the one that checks
    const bad = s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'crc64-bad', Body: Buffer.from('hello'), ChecksumCRC64NVME: 'AAAAAAAAAAA=' }));
    await expect(bad).rejects.toMatchObject({ name: 'BadDigest' });
  });
});

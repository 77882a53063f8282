/**
 * The backend contract against versitygw (v1.8.0: S3 over a POSIX directory, metadata in xattrs) through the same
 * S3 backend class as MinIO: lakecrypt's second real S3 store. What differs from MinIO is named in the traits.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import { S3Backend } from '../../src/backend/s3.ts';
import { startVersitygw, type VersitygwHandle } from '../../tools/versitygw.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { backendContract } from './contract.ts';
import { uniqueBucketName } from './names.ts';

backendContract(
  's3 (versitygw)',
  async () => {
    const v = await startVersitygw();
    return {
      backend: createBackend({ kind: 's3', endpoint: v.endpoint, accessKey: v.accessKey, secretKey: v.secretKey, region: v.region }),
      cleanup: () => v.stop(),
    };
  },
  // no listing extension (metadata=true is ignored, not refused); part sizes checked before later parts' existence;
  // objects are files: no key beside one that is its prefix, no 'dir/' with data
  { listsMetadata: false, partSizeBeforeLaterParts: true, nestedKeys: 'refused' },
);

describe('s3 backend on versitygw: the wire', () => {
  let v: VersitygwHandle;
  let proxy: FaultProxy;
  let b: S3Backend;
  const bucket = uniqueBucketName('vwire');
  beforeAll(async () => {
    v = await startVersitygw();
    proxy = await startFaultProxy(v.endpoint);
    b = new S3Backend({ endpoint: proxy.endpoint, accessKey: v.accessKey, secretKey: v.secretKey });
    await b.createBucket(bucket);
  });
  afterAll(async () => {
    await b?.close();
    await proxy?.close();
    await v?.stop();
  });

  it('streamed bodies stay aws-chunked with a CRC32 trailer once the store answered as versitygw (it commits a raw body cut short)', async () => {
    expect(await b.headObject(bucket, 'none')).toBeNull();
    for (const size of [0, 1, 65536, 2 * 1024 * 1024 + 3]) {
      proxy.requests.length = 0;
      const data = randomBytes(size);
      const { etag } = await b.putObject(bucket, `s${size}`, Readable.from(size ? [data] : []), { size });
      expect(etag).toBe(createHash('md5').update(data).digest('hex'));
      const put = proxy.requests.find((r) => r.method === 'PUT')!;
      expect([put.headers['x-amz-content-sha256'], put.headers['content-encoding'], put.headers['x-amz-decoded-content-length']]).toEqual([
        'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        'aws-chunked',
        String(size),
      ]);
      expect(put.bodyBytes).toBe(Number(put.headers['content-length']));
      expect((await b.getBuffer(bucket, `s${size}`)).data.equals(data)).toBe(true);
    }
    // a multipart part too
    const id = await b.createMultipart(bucket, 'mp', {});
    proxy.requests.length = 0;
    const part = randomBytes(100_000);
    const p1 = await b.uploadPart(bucket, 'mp', id, 1, Readable.from([part]), part.length);
    expect(proxy.requests.find((r) => r.method === 'PUT')!.headers['content-encoding']).toBe('aws-chunked');
    await b.completeMultipart(bucket, 'mp', id, [{ partNumber: 1, etag: p1.etag }]);
    expect((await b.getBuffer(bucket, 'mp')).data.equals(part)).toBe(true);
  });
});

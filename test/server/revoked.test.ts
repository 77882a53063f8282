import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { revokeObject } from '../../src/admin/objects.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

/** What a client sees when it reads data whose DEK was revoked: a parseable S3 error, never bytes. */
describe('reads of revoked data', () => {
  let gw: TestGateway;
  const B = 128 * 1024;
  beforeAll(async () => {
    gw = await startTestGateway('fs', { blockSize: B });
  });
  afterAll(async () => gw?.close());

  it('whole GET and ranges touching the revoked block get 403 KeyRevoked; other blocks still read', async () => {
    const s3 = gw.client();
    await s3.send(new CreateBucketCommand({ Bucket: 'revoked' }));
    const data = Buffer.alloc(3 * B, 5);
    await s3.send(new PutObjectCommand({ Bucket: 'revoked', Key: 'obj', Body: data, ContentType: 'application/x-thing', ContentEncoding: 'gzip' }));
    await revokeObject(gw.running.gateway.store, gw.running.keys, 'revoked', 'obj', 1, 'test');
    const fail = async (range?: string) => {
      try {
        const out = await s3.send(new GetObjectCommand({ Bucket: 'revoked', Key: 'obj', Range: range, ChecksumMode: 'ENABLED' }));
        await out.Body!.transformToByteArray();
      } catch (e) {
        const err = e as S3ServiceException;
        return { name: err.name, status: err.$metadata.httpStatusCode };
      }
      return { name: 'none', status: 200 };
    };
    expect(await fail()).toEqual({ name: 'KeyRevoked', status: 403 });
    expect(await fail(`bytes=${B}-${B + 10}`)).toEqual({ name: 'KeyRevoked', status: 403 });
    expect(await fail(`bytes=${B - 5}-${B + 5}`)).toEqual({ name: 'KeyRevoked', status: 403 });
    const first = await s3.send(new GetObjectCommand({ Bucket: 'revoked', Key: 'obj', Range: `bytes=0-${B - 1}` }));
    expect(Buffer.from(await first.Body!.transformToByteArray()).equals(data.subarray(0, B))).toBe(true);
    const last = await s3.send(new GetObjectCommand({ Bucket: 'revoked', Key: 'obj', Range: `bytes=${2 * B}-` }));
    expect(Buffer.from(await last.Body!.transformToByteArray()).equals(data.subarray(2 * B))).toBe(true);
    // HEAD still answers: metadata is not behind the revoked DEK.
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'revoked', Key: 'obj' }))).ContentLength).toBe(3 * B);
  });
});

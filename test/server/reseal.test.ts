/**
 * Re-sealing a large object on MinIO (ObjectStore.reseal): a multipart upload whose parts are not whole chunks
 * (DuckDB's uploads are such) is rewritten at Complete; so is an object under DEK rekey. A large one used to go as
 * one streamed PUT with If-Match while the gateway was still reading the same object: MinIO locks the object for a
 * conditional PUT before reading its body, our GET held the read lock until read out, and the Complete failed with
 * IncompleteBody after MinIO's 30 s idle time-out (most times for a few tens of MiB). Now the rewrite is a multipart
 * upload of whole-chunk parts, committed by a conditional complete once everything was read. These fail if the
 * rewrite deadlocks again, if its layout is wrong (sizes, bytes), or if its condition no longer holds.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { nativeClient, streamOf } from '../helpers/native-client.ts';

const MiB = 1024 * 1024;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

let gw: TestGateway;
const bucket = uniqueBucket('reseal');

beforeAll(async () => {
  gw = await startTestGateway('s3', { blockSize: 4 * MiB });
  await gw.client().send(new CreateBucketCommand({ Bucket: bucket }));
}, 120_000);

afterAll(async () => {
  await gw?.close();
});

/** A multipart upload of `sizes` (odd sizes: re-sealed at Complete), answered by Complete. */
async function oddUpload(key: string, bodies: Buffer[]) {
  const c = nativeClient(gw);
  try {
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: { team: 'lake' } }));
    const parts = [];
    for (const [i, b] of bodies.entries()) {
      const r = await c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: streamOf(b), ContentLength: b.length }));
      parts.push({ PartNumber: i + 1, ETag: r.ETag! });
    }
    return await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
  } finally {
    c.destroy();
  }
}

describe('re-sealing a large object on MinIO', () => {
  it('a multipart upload of odd part sizes (48 MiB) completes, three times over the same key, and reads back exact', async () => {
    const c = gw.client();
    for (let round = 0; round < 3; round++) {
      const bodies = [randomBytes(20 * MiB + 7), randomBytes(17 * MiB + 3), randomBytes(11 * MiB + 1)];
      const whole = Buffer.concat(bodies);
      const done = await oddUpload('odd', bodies);
      // re-sealed as one part of whole chunks: the sizes of a single stream, so listings are exact
      expect(done.ETag).toMatch(/-1"$/);
      const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'odd' }));
      expect(head.ContentLength).toBe(whole.length);
      expect(head.ETag).toBe(done.ETag);
      expect(head.Metadata).toEqual({ team: 'lake' });
      const listed = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'odd' }));
      expect(listed.Contents?.map((o) => [o.Key, o.Size])).toEqual([['odd', whole.length]]);
      const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'odd' }));
      expect(sha(await got.Body!.transformToByteArray())).toBe(sha(whole));
      const from = 20 * MiB - 3;
      const range = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'odd', Range: `bytes=${from}-${from + 99}` }));
      expect(Buffer.from(await range.Body!.transformToByteArray()).equals(whole.subarray(from, from + 100))).toBe(true);
    }
    // nothing of the rewrites' own uploads is left open at the backend
    expect((await gw.backend.listMultipartUploads(bucket)).filter((u) => u.key === 'odd')).toEqual([]);
  }, 300_000);

  it('objects over 64 MiB are rewritten in 64 MiB parts; a write that lands first wins, the rewrite is refused', async () => {
    const c = gw.client();
    const bodies = [randomBytes(40 * MiB + 5), randomBytes(30 * MiB + 9)];
    const done = await oddUpload('big', bodies);
    expect(done.ETag).toMatch(/-2"$/);
    const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'big' }));
    expect(sha(await got.Body!.transformToByteArray())).toBe(sha(Buffer.concat(bodies)));
    // the rewrite is conditional on the version it read: a PUT in between is kept, the rewrite refused
    const store = gw.running.gateway.store;
    const newer = randomBytes(1000);
    const obj = await store.stat(bucket, 'big');
    // read out before the PUT: MinIO holds a write until a GET of the same object is done
    const plain = Buffer.concat(await (await store.read(obj, 0, obj.size - 1)).toArray());
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'big', Body: newer }));
    const { MultipartStore } = await import('../../src/store/index.ts');
    await expect(new MultipartStore(store).rewrite(bucket, 'big', Readable.from([plain]), obj.size, obj.header.meta, obj.header.checksums, { ifMatch: obj.info.etag })).rejects.toMatchObject({
      code: 'PreconditionFailed',
    });
    const after = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'big' }));
    expect(Buffer.from(await after.Body!.transformToByteArray()).equals(newer)).toBe(true);
  }, 300_000);

  it("a checksummed upload keeps the checksum its Complete answered through the rewrite", async () => {
    const c = gw.client();
    const { crc32 } = await import('node:zlib');
    const bodies = [randomBytes(9 * MiB + 1), randomBytes(2 * MiB + 3)];
    const crcOf = (b: Buffer) => {
      const v = Buffer.alloc(4);
      v.writeUInt32BE(crc32(b));
      return v.toString('base64');
    };
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'summed', ChecksumAlgorithm: 'CRC32' }));
    const parts = [];
    for (const [i, b] of bodies.entries()) {
      const r = await c.send(new UploadPartCommand({ Bucket: bucket, Key: 'summed', UploadId, PartNumber: i + 1, Body: b, ChecksumCRC32: crcOf(b) }));
      parts.push({ PartNumber: i + 1, ETag: r.ETag!, ChecksumCRC32: r.ChecksumCRC32 });
    }
    const done = await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'summed', UploadId, MultipartUpload: { Parts: parts } }));
    expect(done.ChecksumCRC32).toMatch(/-2$/);
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'summed', ChecksumMode: 'ENABLED' }));
    expect(head.ETag).toBe(done.ETag);
    expect(head.ChecksumCRC32).toBe(done.ChecksumCRC32);
    const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'summed' }));
    expect(sha(await got.Body!.transformToByteArray())).toBe(sha(Buffer.concat(bodies)));
  }, 300_000);
});

import { PassThrough } from 'node:stream';
import { request } from 'node:http';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

/** Regression tests for races and edge cases a review found: each failed before its fix. */
describe('races and edges around key caches, commits and conditions', () => {
  let gw: TestGateway;
  const bucket = 'races';
  beforeAll(async () => {
    gw = await startTestGateway('fs');
    await gw.client().send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => gw?.close());

  it('an in-place metadata copy while a cache clear zeroes the cached DEKs keeps the object readable', async () => {
    const s3 = gw.client();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy-race', Body: 'still readable', ContentType: 'text/plain' }));
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy-race' })); // header now cached
    const keys = gw.running.keys;
    const original = keys.activeKek.bind(keys);
    // Fault injection: the next key lookup coincides with a revocation elsewhere clearing every cache.
    keys.activeKek = async (ds: string) => {
      keys.activeKek = original;
      keys.clearCaches();
      return original(ds);
    };
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy-race', CopySource: `${bucket}/copy-race`, MetadataDirective: 'REPLACE', ContentType: 'application/json' }));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy-race' }));
    expect(await got.Body!.transformToString()).toBe('still readable');
    // And the new metadata is served at once, not the cached header's.
    expect(got.ContentType).toBe('application/json');
  });

  it('a PUT whose KEK version is revoked mid-upload is committed whole and reads back', async () => {
    const s3 = gw.client();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'mid-revoke', Body: 'OLD VERSION' }));
    const data = Buffer.alloc(3 * 1024 * 1024, 9);
    const body = new PassThrough();
    const put = s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'mid-revoke', Body: body, ContentLength: data.length }));
    body.write(data.subarray(0, data.length - 1000));
    await new Promise((r) => setTimeout(r, 200));
    const keys = gw.running.keys;
    const v = await keys.rotate(bucket);
    await keys.revoke(bucket, v - 1);
    body.end(data.subarray(data.length - 1000));
    const res = await put;
    expect(res.ETag).toBeTruthy();
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mid-revoke' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
    await keys.restore(bucket, v - 1);
  });

  it('CompleteMultipartUpload honours If-None-Match: *', async () => {
    const s3 = gw.client();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'lock', Body: 'FIRST WRITER' }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'lock' }));
    const p = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'lock', UploadId, PartNumber: 1, Body: 'SECOND WRITER' }));
    let status = 0;
    try {
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'lock', UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag }] } }));
    } catch (e) {
      status = (e as S3ServiceException).$metadata.httpStatusCode ?? 0;
    }
    expect(status).toBe(412);
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'lock' }));
    expect(await got.Body!.transformToString()).toBe('FIRST WRITER');
  });

  it('the admin port refuses an oversized unauthenticated body without buffering it', async () => {
    const admin: RunningAdmin = await startAdmin({ gateway: gw.running, metrics: createMetrics({ defaultMetrics: false }), resumeJobs: false });
    try {
      const u = new URL(admin.url);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: u.hostname, port: u.port, path: '/admin/keys', method: 'POST', headers: { 'content-length': String(64 * 1024 * 1024) } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.write(Buffer.alloc(1024));
      });
      expect(status).toBeGreaterThanOrEqual(400);
    } finally {
      await admin.close();
    }
  });
});

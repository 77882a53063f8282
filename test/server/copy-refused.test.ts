/**
 * CopyObject when the backend refuses the server-side copy itself, as S3 does for a copy source over 5 GiB
 * (400 InvalidRequest). lakecrypt takes copies up to 5 TiB, like MinIO, so it moves the bytes through itself
 * instead. A real MinIO behind a fault-injecting proxy that answers every backend copy the way S3 answers an
 * oversized one; the refusal is the same for a small object, so small objects show the path.
 */
import { randomBytes } from 'node:crypto';
import { CopyObjectCommand, CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import { META_OID } from '../../src/store/index.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

const MiB = 1024 * 1024;
const isBackendCopy = (req: { method?: string; headers: Record<string, unknown> }) =>
  req.method === 'PUT' && req.headers['x-amz-copy-source'] !== undefined;

describe('CopyObject when the backend refuses the server-side copy', () => {
  let proxy: FaultProxy;
  let backend: Backend;
  let gw: TestGateway;
  let s3: S3Client;
  const bucket = uniqueBucket('copyref');
  const metaBucket = uniqueBucket('lcmeta');
  const data = randomBytes(3 * MiB + 7);
  let refused = 0;

  const body = async (key: string) => Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());
  const oidOf = async (key: string) => (await backend.headObject(bucket, key))!.meta[META_OID];
  const headerCount = async (key: string) =>
    (await backend.listObjects(metaBucket, { prefix: gw.running.gateway.store.headerDir(bucket, key) })).objects.length;

  beforeAll(async () => {
    const m = minioCoords();
    proxy = await startFaultProxy(m.endpoint);
    backend = createBackend({ kind: 's3', endpoint: proxy.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region });
    // counts header objects (data format 1)
    gw = await startTestGateway('s3', { backend, metaBucket, inlineHeaderMax: 0 });
    s3 = gw.client();
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'src', Body: data, Metadata: { origin: 'first' } }));
    proxy.fault = (req) => {
      if (!isBackendCopy(req)) return null;
      refused++;
      return { status: 400, code: 'InvalidRequest' };
    };
  });
  afterAll(async () => {
    proxy.fault = () => null;
    await gw?.close();
    await backend?.close();
    await proxy?.close();
  });

  it('copies to another key through the gateway: same bytes, metadata and ETag, its own data object, one header', async () => {
    const before = refused;
    const src = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'src' }));
    const r = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst', CopySource: `${bucket}/src` }));
    expect(refused).toBe(before + 1);
    expect(r.CopyObjectResult?.ETag).toBe(src.ETag);
    expect((await body('dst')).equals(data)).toBe(true);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'dst' }));
    expect(head.Metadata).toEqual({ origin: 'first' });
    expect(head.ContentLength).toBe(data.length);
    // Re-sealed: a fresh oid (and DEKs), not the source's ciphertext under a second name.
    expect(await oidOf('dst')).not.toBe(await oidOf('src'));
    // The header written for the refused copy was taken back.
    await expect.poll(() => headerCount('dst'), { timeout: 5000 }).toBe(1);
    expect((await body('src')).equals(data)).toBe(true);
  });

  it('replaces the metadata in place through the gateway, and drops the old header', async () => {
    const before = refused;
    const oldOid = await oidOf('src');
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'src', CopySource: `${bucket}/src`, MetadataDirective: 'REPLACE', Metadata: { origin: 'second' } }));
    expect(refused).toBe(before + 1);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'src' }));
    expect(head.Metadata).toEqual({ origin: 'second' });
    expect((await body('src')).equals(data)).toBe(true);
    expect(await oidOf('src')).not.toBe(oldOid);
    await expect.poll(() => headerCount('src'), { timeout: 5000 }).toBe(1); // the replaced header goes after the answer
  });

  it('any other backend failure of the copy is the client\'s answer, not a silent re-seal', async () => {
    proxy.fault = (req) => (isBackendCopy(req) ? { status: 403, code: 'AccessDenied' } : null);
    const err = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'denied', CopySource: `${bucket}/src` })).catch((e: unknown) => e as { name: string });
    expect((err as { name: string }).name).toBe('AccessDenied');
    expect(await backend.headObject(bucket, 'denied')).toBeNull();
    expect(await headerCount('denied')).toBe(0);
    // In place: the refused copy leaves the object's metadata as it was.
    const inPlace = await s3
      .send(new CopyObjectCommand({ Bucket: bucket, Key: 'src', CopySource: `${bucket}/src`, MetadataDirective: 'REPLACE', Metadata: { origin: 'never' } }))
      .catch((e: unknown) => e as { name: string });
    expect((inPlace as { name: string }).name).toBe('AccessDenied');
    gw.running.gateway.store.headers.clear(); // read the stored header, not a cached one
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'src' }))).Metadata).toEqual({ origin: 'second' });
    expect((await body('src')).equals(data)).toBe(true);
    await expect.poll(() => headerCount('src'), { timeout: 5000 }).toBe(1);
  });

  it('with the backend copying again, a copy is a server-side copy (the source oid, no re-seal)', async () => {
    proxy.fault = () => null;
    proxy.requests.length = 0;
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'fast', CopySource: `${bucket}/src` }));
    expect(proxy.requests.filter(isBackendCopy).length).toBe(1);
    expect(await oidOf('fast')).toBe(await oidOf('src'));
    expect((await body('fast')).equals(data)).toBe(true);
  });

  it('a failed re-copy onto an earlier copy of the same source (same oid) leaves that copy readable, metadata and all', async () => {
    proxy.fault = (req) => (isBackendCopy(req) ? { status: 403, code: 'AccessDenied' } : null);
    expect(await oidOf('fast')).toBe(await oidOf('src'));
    const err = await s3
      .send(new CopyObjectCommand({ Bucket: bucket, Key: 'fast', CopySource: `${bucket}/src`, MetadataDirective: 'REPLACE', Metadata: { origin: 'never' } }))
      .catch((e: unknown) => e as { name: string });
    expect((err as { name: string }).name).toBe('AccessDenied');
    gw.running.gateway.store.headers.clear();
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'fast' }))).Metadata).toEqual({ origin: 'second' });
    expect((await body('fast')).equals(data)).toBe(true);
    proxy.fault = () => null;
  });
});

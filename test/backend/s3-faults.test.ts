/** s3 backend specifics: wire format of streamed bodies, retries only when replayable, error mapping. */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Backend } from '../../src/backend/s3.ts';
import { S3Error } from '../../src/errors.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { freePort } from '../../tools/ports.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('s3 backend against a fault-injecting proxy', () => {
  let proxy: FaultProxy;
  let b: S3Backend;
  const bucket = uniqueBucket('s3f');

  beforeAll(async () => {
    const m = minioCoords();
    proxy = await startFaultProxy(m.endpoint);
    b = new S3Backend({ endpoint: proxy.endpoint, accessKey: m.accessKey, secretKey: m.secretKey });
    await b.createBucket(bucket);
  });
  afterAll(async () => {
    proxy.fault = () => null;
    for (const o of (await b.listObjects(bucket, {})).objects) await b.deleteObject(bucket, o.key);
    await b.deleteBucket(bucket);
    await b.close();
    await proxy.close();
  });

  it('before the store answered anything, streams a Readable body aws-chunked with a CRC32 trailer (a store not known to drop a body cut short); MinIO keeps it byte for byte', async () => {
    const fresh = new S3Backend({ endpoint: proxy.endpoint, accessKey: minioCoords().accessKey, secretKey: minioCoords().secretKey });
    proxy.requests.length = 0;
    const data = randomBytes(3 * 65536 + 7);
    const { etag } = await fresh.putObject(bucket, 'framed', Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), { size: data.length });
    expect(etag).toBe(md5(data));
    const put = proxy.requests.find((r) => r.method === 'PUT')!;
    expect(put.headers['x-amz-content-sha256']).toBe('STREAMING-UNSIGNED-PAYLOAD-TRAILER');
    expect(put.headers['content-encoding']).toBe('aws-chunked');
    expect(put.headers['x-amz-decoded-content-length']).toBe(String(data.length));
    expect(put.headers['x-amz-trailer']).toBe('x-amz-checksum-crc32');
    // four frames (3 x 64 KiB and 7 bytes), the last chunk and the trailer
    expect(put.bodyBytes).toBe(Number(put.headers['content-length']));
    expect(put.bodyBytes).toBe(data.length + 3 * '10000\r\n\r\n'.length + '7\r\n\r\n'.length + '0\r\n'.length + 'x-amz-checksum-crc32:AAAAAA==\r\n\r\n'.length);
    expect((await fresh.getBuffer(bucket, 'framed')).data.equals(data)).toBe(true);
    // once MinIO answered (its Server header), streamed bodies go raw: the next test
    await fresh.close();
  });

  it('streams a Readable body with Content-Length, no chunked encoding, no SDK checksums, to a store that answered as MinIO', async () => {
    proxy.requests.length = 0;
    expect(await b.headObject(bucket, 'not-there')).toBeNull();
    expect(proxy.requests[0].method).toBe('HEAD');
    const data = randomBytes(4 * 1024 * 1024 + 5);
    const chunks = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
    const { etag } = await b.putObject(bucket, 'streamed', Readable.from(chunks), { size: data.length });
    expect(etag).toBe(md5(data));
    const put = proxy.requests.find((r) => r.method === 'PUT')!;
    expect(put.headers['content-length']).toBe(String(data.length));
    expect(put.headers['transfer-encoding']).toBeUndefined();
    expect(put.headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
    expect(Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum') || h === 'x-amz-sdk-checksum-algorithm')).toEqual([]);
    expect(put.bodyBytes).toBe(data.length);
  });

  it('retries a Buffer put on 503 SlowDown', async () => {
    proxy.requests.length = 0;
    let puts = 0;
    proxy.fault = (req) => (req.method === 'PUT' && ++puts <= 2 ? { status: 503, code: 'SlowDown' } : null);
    const data = Buffer.from('retry me');
    const { etag } = await b.putObject(bucket, 'retried', data, { size: data.length });
    expect(etag).toBe(md5(data));
    expect(puts).toBe(3);
    proxy.fault = () => null;
  });

  it('never retries a consumed stream: one attempt, then a mapped error', async () => {
    let puts = 0;
    proxy.fault = (req) => (req.method === 'PUT' && ++puts <= 5 ? { status: 503, code: 'SlowDown' } : null);
    const data = randomBytes(100_000);
    const err = await b.putObject(bucket, 'stream-fail', Readable.from([data]), { size: data.length }).catch((e) => e);
    expect(err).toBeInstanceOf(S3Error);
    expect(['SlowDown', 'ServiceUnavailable']).toContain((err as S3Error).code);
    expect(puts).toBe(1);
    proxy.fault = () => null;
  });

  it('retries GET after a connection reset; range body is a stream', async () => {
    const data = randomBytes(50_000);
    await b.putObject(bucket, 'get-reset', data, { size: data.length });
    let gets = 0;
    proxy.fault = (req) => (req.method === 'GET' && ++gets === 1 ? { reset: true } : null);
    const { body, info } = await b.getObject(bucket, 'get-reset', { start: 100, end: 199 });
    expect(body).toBeInstanceOf(Readable);
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data.subarray(100, 200))).toBe(true);
    expect(info.size).toBe(50_000);
    expect(gets).toBe(2);
    proxy.fault = () => null;
  });

  it('listing withMeta: retried on 503; a backend refusing metadata=true lists without it (meta undefined)', async () => {
    await b.putObject(bucket, 'lm/a b+', Buffer.from('x'), { size: 1, meta: { 'lc-oid': '01', 'lc-fmt': '1' } });
    let lists = 0;
    proxy.fault = (req) => (req.method === 'GET' && req.url?.includes('list-type=2') && ++lists === 1 ? { status: 503, code: 'SlowDown' } : null);
    const ok = await b.listObjects(bucket, { prefix: 'lm/', withMeta: true });
    expect(lists).toBe(2);
    expect(ok.objects.map((o) => [o.key, o.meta])).toEqual([['lm/a b+', { 'lc-oid': '01', 'lc-fmt': '1' }]]);
    proxy.requests.length = 0;
    proxy.fault = (req) => (req.url?.includes('metadata=true') ? { status: 400, code: 'InvalidArgument' } : null);
    const fallback = await b.listObjects(bucket, { prefix: 'lm/', withMeta: true });
    expect(fallback.objects.map((o) => o.key)).toEqual(['lm/a b+']);
    expect(fallback.objects[0]).toHaveProperty('meta', undefined);
    // not asked again
    const again = await b.listObjects(bucket, { prefix: 'lm/', withMeta: true });
    expect(again.objects[0]!.meta).toBeUndefined();
    expect(proxy.requests.filter((r) => r.url.includes('metadata=true'))).toHaveLength(1);
    proxy.fault = () => null;
  });

  it('retries DELETE, copy and a Buffer part on 503; never a streamed part', async () => {
    await b.putObject(bucket, 'rt-src', Buffer.from('src'), { size: 3, meta: { 'lc-oid': 'aa' } });
    let n = 0;
    proxy.fault = (req) => ((req.method === 'PUT' || req.method === 'DELETE') && ++n % 2 === 1 ? { status: 503, code: 'SlowDown' } : null);
    const c = await b.copyObject(bucket, 'rt-src', bucket, 'rt dst+%', { meta: { 'lc-oid': 'bb' } });
    expect(c.etag).toBe(md5(Buffer.from('src')));
    expect((await b.headObject(bucket, 'rt dst+%'))!.meta).toEqual({ 'lc-oid': 'bb' });
    await b.deleteObject(bucket, 'rt dst+%');
    expect(await b.headObject(bucket, 'rt dst+%')).toBeNull();
    proxy.fault = () => null;
    const id = await b.createMultipart(bucket, 'rt-mpu', {});
    let parts = 0;
    proxy.fault = (req) => (req.method === 'PUT' && (req.url ?? '').includes('partNumber') && ++parts === 1 ? { status: 503, code: 'SlowDown' } : null);
    const p1 = await b.uploadPart(bucket, 'rt-mpu', id, 1, Buffer.from('one'), 3);
    expect(p1.etag).toBe(md5(Buffer.from('one')));
    expect(parts).toBe(2);
    parts = 0;
    const err = await b.uploadPart(bucket, 'rt-mpu', id, 2, Readable.from([Buffer.from('two')]), 3).catch((e) => e);
    expect(err).toBeInstanceOf(S3Error);
    expect(parts).toBe(1);
    proxy.fault = () => null;
    await b.abortMultipart(bucket, 'rt-mpu', id);
  });

  it('CompleteMultipartUpload answered 200 with an <Error> body: retried when the code is transient, else that error (the upload stays open)', async () => {
    const id = await b.createMultipart(bucket, 'c200', {});
    const p1 = await b.uploadPart(bucket, 'c200', id, 1, Buffer.from('one'), 3);
    const isComplete = (req: { method?: string; url?: string }) => req.method === 'POST' && (req.url ?? '').includes('uploadId=');
    let completes = 0;
    proxy.fault = (req) => (isComplete(req) && ++completes === 1 ? { status: 200, code: 'InvalidPart' } : null);
    await expect(b.completeMultipart(bucket, 'c200', id, [{ partNumber: 1, etag: p1.etag }])).rejects.toMatchObject({ code: 'InvalidPart' });
    expect(completes).toBe(1);
    completes = 0;
    proxy.fault = (req) => (isComplete(req) && ++completes <= 2 ? { status: 200, code: completes === 1 ? 'InternalError' : 'SlowDown' } : null);
    const done = await b.completeMultipart(bucket, 'c200', id, [{ partNumber: 1, etag: p1.etag }]);
    expect(completes).toBe(3);
    proxy.fault = () => null;
    expect(done.etag).toBe(`${md5(Buffer.from(md5(Buffer.from('one')), 'hex'))}-1`);
    expect((await b.getBuffer(bucket, 'c200')).data.toString()).toBe('one');
  });

  it('the rare calls are retried like the others: Create/ListParts/Complete/Abort/ListUploads and the bucket calls on 503', async () => {
    const other = uniqueBucket('s3fr');
    let n = 0;
    // every first attempt of a request fails (odd-numbered requests), so each call below needs its retry
    proxy.fault = () => (++n % 2 === 1 ? { status: 503, code: 'SlowDown' } : null);
    await b.createBucket(other);
    expect(await b.bucketExists(other)).toBe(true);
    expect((await b.listBuckets()).map((x) => x.name)).toContain(other);
    const id = await b.createMultipart(other, 'k', { 'lc-oid': 'cc' });
    const p1 = await b.uploadPart(other, 'k', id, 1, Buffer.from('one'), 3);
    expect(await b.listParts(other, 'k', id)).toEqual([{ partNumber: 1, etag: p1.etag }]);
    expect((await b.listMultipartUploads(other)).map((u) => u.uploadId)).toEqual([id]);
    await b.completeMultipart(other, 'k', id, [{ partNumber: 1, etag: p1.etag }]);
    const id2 = await b.createMultipart(other, 'k2', {});
    await b.abortMultipart(other, 'k2', id2);
    expect(await b.listMultipartUploads(other)).toEqual([]);
    await b.deleteObject(other, 'k');
    await b.deleteBucket(other);
    expect(await b.bucketExists(other)).toBe(false);
    proxy.fault = () => null;
  });

  it('a refused conditional streamed PUT (Expect: 100-continue) sends no body and leaks no socket', async () => {
    const m = minioCoords();
    const small = new S3Backend({ endpoint: proxy.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, maxSockets: 1 });
    await small.putObject(bucket, 'cond-big', Buffer.from('exists'), { size: 6 });
    const data = randomBytes(2 * 1024 * 1024);
    for (let i = 0; i < 3; i++) {
      proxy.requests.length = 0;
      const body = Readable.from([data.subarray(0, 1 << 20), data.subarray(1 << 20)]);
      await expect(small.putObject(bucket, 'cond-big', body, { size: data.length, ifNoneMatch: '*' })).rejects.toMatchObject({ code: 'PreconditionFailed' });
      const put = proxy.requests.find((r) => r.method === 'PUT')!;
      expect(put.headers.expect).toBe('100-continue');
      expect(put.bodyBytes).toBeLessThan(data.length);
      // the single socket is usable again
      expect((await small.headObject(bucket, 'cond-big'))!.size).toBe(6);
    }
    const ok = await small.putObject(bucket, 'cond-big', Readable.from([data]), { size: data.length, ifMatch: md5(Buffer.from('exists')) });
    expect(ok.etag).toBe(md5(data));
    await small.close();
  });

  it('a failing streamed body aborts the PUT: nothing committed, the error surfaces', async () => {
    const body = new Readable({ read() {} });
    body.push(randomBytes(64 * 1024));
    const p = b.putObject(bucket, 'aborted', body, { size: 4 * 1024 * 1024 });
    setTimeout(() => body.destroy(new Error('producer failed')), 100);
    const err = await p.catch((e) => e);
    expect(err).toBeInstanceOf(S3Error);
    expect(await b.headObject(bucket, 'aborted')).toBeNull();
  });

  it('maps persistent 500s to ServiceUnavailable (after retries)', async () => {
    let n = 0;
    proxy.fault = (req) => (req.method === 'HEAD' ? (n++, { status: 500, code: 'InternalError' }) : null);
    const err = await b.headObject(bucket, 'whatever').catch((e) => e);
    expect(err).toBeInstanceOf(S3Error);
    expect(['InternalError', 'ServiceUnavailable']).toContain((err as S3Error).code);
    expect(n).toBeGreaterThan(1);
    proxy.fault = () => null;
  });
});

describe('s3 backend: unreachable endpoint', () => {
  it('surfaces ServiceUnavailable with the cause attached', async () => {
    const port = await freePort();
    const b = new S3Backend({ endpoint: `http://127.0.0.1:${port}`, accessKey: 'x', secretKey: 'y', maxAttempts: 2 });
    const err = await b.listBuckets().catch((e) => e);
    expect(err).toBeInstanceOf(S3Error);
    expect((err as S3Error).code).toBe('ServiceUnavailable');
    expect((err as S3Error).cause).toBeDefined();
    await b.close();
  });
});

/**
 * Range and partNumber GETs in one backend round trip (ObjectStore.openRange, src/store/layout-memory.ts): once a
 * key's layout was seen (a HEAD, a GET), a ranged GET is planned from it and is one getObject, no headObject. And
 * the remembered layout is never trusted: another gateway's overwrite, a delete, a smaller object, a remembered
 * layout that is wrong — each is answered as the long way answers it (right bytes, 416, 404), with the stale
 * memory costing at most the one discarded GET.
 *
 * Per backend (fs, s3 on the shared MinIO): gateway `gw` over a backend wrapper that records every call, and gateway
 * `other` on the same storage, meta bucket and CMK (its writes are unseen by gw's memory). The epoch poll
 * (`keystore/epoch`) is left out of the counts.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CreateBucketCommand, DeleteObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import type { ObjectStore } from '../../src/store/index.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { errorCode, signedRequest, type RawResponse } from '../../tools/sigv4.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { recording, type Call } from '../helpers/recording-backend.ts';
import { minioBackend, uniqueBucket } from '../helpers/s3.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 256 * KiB;
const EPOCH_KEY = 'keystore/epoch';

describe.each(['fs', 's3'] as const)('ranged GETs in one backend round trip on the %s backend', (kind) => {
  const tmp = makeTmpDir(`lc-range-trip-${kind}-`);
  const metaName = kind === 's3' ? `lcmeta-${randomBytes(4).toString('hex')}` : 'lakecrypt-meta';
  const storage = (): Backend => (kind === 's3' ? minioBackend() : createBackend({ kind: 'fs', dataDir: path.join(tmp.path, 'store') }));
  let inner: Backend;
  let otherBackend: Backend;
  let calls: Call[];
  let gw: TestGateway;
  let other: TestGateway;
  let s3: S3Client;
  let s3other: S3Client;
  const bucket = uniqueBucket(`range-trip-${kind}`);

  beforeAll(async () => {
    inner = storage();
    const rec = recording(inner);
    calls = rec.calls;
    gw = await startTestGateway(kind, { backend: rec.backend, dataDir: tmp.path, metaBucket: metaName, blockSize: BLOCK });
    otherBackend = storage();
    other = await startTestGateway(kind, { backend: otherBackend, dataDir: tmp.path, metaBucket: metaName, blockSize: BLOCK });
    s3 = gw.client();
    s3other = other.client();
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => {
    s3?.destroy();
    s3other?.destroy();
    await gw?.close();
    await other?.close();
    await inner?.close();
    await otherBackend?.close();
    tmp.cleanup();
  });

  const store = (): ObjectStore => gw.running.gateway.store;
  const meta = (): string => gw.running.gateway.metaBucket;
  /** Calls since `mark`, without the epoch poll. */
  const since = (mark: number): Call[] => calls.slice(mark).filter((c) => !(c.bucket === meta() && c.key === EPOCH_KEY));
  const put = (client: S3Client, key: string, body: Buffer) => client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  const get = (key: string, headers: Record<string, string>, query?: string): Promise<RawResponse> =>
    signedRequest(gw.url, { accessKey: gw.accessKey, secretKey: gw.secretKey }, { method: 'GET', path: `/${bucket}/${key}`, query, headers });
  /** A GET of `range` answered 206 with exactly those bytes of `plain`, and the backend calls it cost. */
  async function ranged(key: string, plain: Buffer, range: string, start: number, end: number): Promise<Call[]> {
    await store().settled();
    const mark = calls.length;
    const r = await get(key, { range });
    expect(r.status, `${range}: ${r.body.subarray(0, 300).toString()}`).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${plain.length}`);
    expect(r.body.equals(plain.subarray(start, end + 1)), range).toBe(true);
    await store().settled();
    return since(mark);
  }
  const oneGet = (key: string): Call[] => [{ op: 'getObject', bucket, key }];
  const theLongWay = (key: string): Call[] => [{ op: 'headObject', bucket, key }, { op: 'getObject', bucket, key }];

  it('after a HEAD, Range and partNumber GETs are one getObject each (no HEAD), byte for byte', async () => {
    const plain = randomBytes(3 * MiB + 5);
    await put(s3, 'k', plain);
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }));
    expect(await ranged('k', plain, 'bytes=1000-2000', 1000, 2000)).toEqual(oneGet('k'));
    expect(await ranged('k', plain, `bytes=${BLOCK - 7}-${2 * MiB}`, BLOCK - 7, 2 * MiB)).toEqual(oneGet('k'));
    expect(await ranged('k', plain, 'bytes=-100', plain.length - 100, plain.length - 1)).toEqual(oneGet('k'));
    expect(await ranged('k', plain, 'bytes=3000000-', 3000000, plain.length - 1)).toEqual(oneGet('k'));
    const mark = calls.length;
    const p1 = await get('k', {}, 'partNumber=1');
    expect(p1.status).toBe(206);
    expect(p1.body.equals(plain)).toBe(true);
    expect(since(mark)).toEqual(oneGet('k'));
    // a key never seen takes the long way once, then one trip
    await put(s3other, 'unseen', plain);
    expect(await ranged('unseen', plain, 'bytes=10-20', 10, 20)).toEqual(theLongWay('unseen'));
    expect(await ranged('unseen', plain, 'bytes=10-20', 10, 20)).toEqual(oneGet('unseen'));
  });

  it('conditions are judged on what the one GET returned: If-None-Match with the ETag is a 304, a wrong If-Match a 412', async () => {
    const plain = randomBytes(MiB);
    const { ETag } = await put(s3, 'cond', plain);
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cond' }));
    await store().settled();
    let mark = calls.length;
    const nm = await get('cond', { range: 'bytes=0-99', 'if-none-match': ETag! });
    expect(nm.status).toBe(304);
    expect(nm.headers.etag).toBe(ETag);
    await store().settled();
    expect(since(mark)).toEqual(oneGet('cond'));
    mark = calls.length;
    const m = await get('cond', { range: 'bytes=0-99', 'if-match': '"0123456789abcdef0123456789abcdef"' });
    expect(m.status).toBe(412);
    await store().settled();
    expect(since(mark)).toEqual(oneGet('cond'));
  });

  it('another gateway overwrote the key: the new bytes (never the old layout applied to them), for a larger, a smaller and a multipart-sized object', async () => {
    const first = randomBytes(2 * MiB);
    await put(s3, 'over', first);
    expect(await ranged('over', first, 'bytes=5-10', 5, 10)).toEqual(theLongWay('over'));
    for (const size of [3 * MiB + 17, 600 * KiB, 2 * MiB]) {
      const next = randomBytes(size);
      await put(s3other, 'over', next);
      // the remembered layout is stale: its GET is discarded, the long way answers
      expect(await ranged('over', next, 'bytes=100000-500000', 100000, 500000)).toEqual([...oneGet('over'), ...theLongWay('over')]);
      expect(await ranged('over', next, 'bytes=100000-500000', 100000, 500000)).toEqual(oneGet('over'));
    }
    // smaller than the remembered range's start: a 416 against the current size, from the long way
    const tiny = randomBytes(1000);
    await put(s3other, 'over', tiny);
    const r = await get('over', { range: 'bytes=700000-800000' });
    expect(r.status).toBe(416);
    expect(errorCode(r.body)).toBe('InvalidRange');
    expect(r.body.toString()).toContain('<ActualObjectSize>1000</ActualObjectSize>');
  });

  it('deleted by another gateway: NoSuchKey; a wrong remembered layout for the right oid is caught before anything is opened', async () => {
    const plain = randomBytes(MiB);
    await put(s3, 'gone', plain);
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'gone' }));
    await s3other.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone' }));
    const r = await get('gone', { range: 'bytes=0-10' });
    expect(r.status).toBe(404);
    expect(errorCode(r.body)).toBe('NoSuchKey');

    // the same oid remembered with another split of its bytes (as if re-sealed in place): the header read with the
    // one GET does not match it, so the read starts over the long way and the bytes are right
    const body = randomBytes(2 * MiB);
    await put(s3, 'relaid', body);
    const h = (await store().stat(bucket, 'relaid')).header;
    store().layouts.remember(bucket, 'relaid', { ...h, parts: [{ ...h.parts[0], plaintextSize: MiB }, { ...h.parts[0], partNumber: 2, plaintextSize: MiB }] });
    expect(await ranged('relaid', body, `bytes=${MiB - 10}-${MiB + 10}`, MiB - 10, MiB + 10)).toEqual([...oneGet('relaid'), ...theLongWay('relaid')]);
    expect(await ranged('relaid', body, `bytes=${MiB - 10}-${MiB + 10}`, MiB - 10, MiB + 10)).toEqual(oneGet('relaid'));
  });
});

/**
 * Conformance with S3 where an outside conformance suite found lakecrypt answering otherwise than MinIO (issues #23
 * item 3 and #19 item 4), on both backends (conformance-fs / conformance-s3):
 *  - a multipart part sent again (a client's retry; two attempts in flight) completes with the attempt that is the
 *    part — the one whose upload finished last — and refuses the other's ETag with InvalidPart, as S3 does;
 *  - If-None-Match: <etag> and If-Match on PutObject (412 / 404 / write), race-safe against a write in between;
 *  - a body that does not match its Content-MD5 or x-amz-checksum-* is BadDigest (malformed values stay
 *    InvalidDigest / InvalidRequest);
 *  - a copy (CopyObject, UploadPartCopy) from a bucket the user may not read is 403 AccessDenied;
 *  - GetObjectAttributes, with each part's plaintext size;
 *  - every InvalidPart / NoSuchUpload logs at warn which lookup failed (part number, key, upload id, the backend's
 *    answer), without plaintext or secrets.
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import { createLogger } from '../../src/ops/logger.ts';
import { MARKER, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { errorCode, signHeaders, signedRequest, type Creds, type RawResponse } from '../../tools/sigv4.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { crc32b64 } from '../s3/helpers.ts';
import { storeName, type SuiteStore } from './store.ts';

const MiB = 1024 * 1024;
const md5b64 = (b: Buffer) => createHash('md5').update(b).digest('base64');

/** Marked plaintext (the marker lets a test tell that no body reached the log). */
function marked(size: number, tag: string): Buffer {
  const b = Buffer.alloc(size);
  const line = Buffer.from(`${MARKER}-${tag}-`);
  for (let i = 0; i < size; i += line.length) line.copy(b, i, 0, Math.min(line.length, size - i));
  return b;
}

async function readBody(out: { Body?: unknown }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of out.Body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function s3err(p: Promise<unknown>): Promise<{ name: string; status: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as S3ServiceException;
    return { name: err.name, status: err.$metadata?.httpStatusCode ?? 0 };
  }
  throw new Error('expected an S3 error');
}

const messageOf = (r: RawResponse) => /<Message>([^<]*)<\/Message>/.exec(r.body.toString())?.[1] ?? '';

/**
 * An UploadPart whose last bytes wait for `release()`: the gateway has the rest of the body (and streams it to the
 * backend) but cannot finish the attempt until then.
 */
function heldUploadPart(url: string, creds: Creds, path: string, query: string, body: Buffer) {
  const u = new URL(url);
  const { headers } = signHeaders(creds, { method: 'PUT', host: u.host, path, query, headers: { 'content-length': String(body.length) }, payload: 'UNSIGNED-PAYLOAD' });
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const done = new Promise<{ status: number; etag: string }>((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: 'PUT', path: `${path}?${query}`, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, etag: String(res.headers.etag ?? '') }));
    });
    req.on('error', reject);
    req.write(body.subarray(0, body.length - 10));
    void released.then(() => req.end(body.subarray(body.length - 10)));
  });
  return { release, done };
}

interface LogLine {
  level: string;
  msg: string;
  code?: string;
  reason?: string;
  op?: string;
  bucket?: string;
  key?: string;
  uploadId?: string;
  partNumber?: number;
  etag?: string;
  backend?: { op: string; status?: number; code?: string };
  recordedEtags?: string[];
  named?: { partNumber: number; etag: string }[];
}

export function conformanceSuite(kind: 'fs' | 's3', store?: SuiteStore) {
  const on = storeName(kind, store);
  describe(`S3 conformance on the ${kind} backend${store ? ` (${store.label})` : ''}`, () => {
    let gw: TestGateway;
    let s3: S3Client;
    let root: Creds;
    const lines: string[] = [];
    const logged = (): LogLine[] => lines.map((l) => JSON.parse(l) as LogLine);
    const bucket = uniqueBucket(`conf-${kind}`);
    const foreign = uniqueBucket(`conf-foreign-${kind}`);
    const limited: Creds = { accessKey: `AKCONF${randomBytes(5).toString('hex').toUpperCase()}`, secretKey: randomBytes(24).toString('base64url') };
    const tenantUser: Creds = { accessKey: `AKTEN${randomBytes(5).toString('hex').toUpperCase()}`, secretKey: randomBytes(24).toString('base64url') };

    beforeAll(async () => {
      const log = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(...s.split('\n').filter(Boolean)) } });
      gw = await startTestGateway(kind, {
        minio: store?.coords(),
        log,
        tenants: [
          { name: 'conf-a', buckets: [bucket] },
          { name: 'conf-b', buckets: [foreign] },
        ],
        users: [
          { ...limited, buckets: [bucket], admin: false },
          { ...tenantUser, buckets: ['*'], admin: false, tenant: 'conf-a' },
        ],
      });
      s3 = gw.client();
      root = { accessKey: gw.accessKey, secretKey: gw.secretKey };
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      await s3.send(new CreateBucketCommand({ Bucket: foreign }));
    });
    afterAll(async () => {
      await gw?.close();
    });

    const text = async (key: string) => readBody(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })));
    const exists = async (b: string, key: string) => (await gw.backend.headObject(b, key)) !== null;
    const complete = (key: string, UploadId: string, parts: { PartNumber: number; ETag?: string }[]) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));

    it('a part sent again with a new body (a retry) completes with the second attempt and reads back its body; the first attempt\'s ETag is InvalidPart', async () => {
      const key = 'mpu/retry';
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const first = marked(6 * MiB, 'retry-first');
      const second = marked(5 * MiB, 'retry-second');
      const last = marked(1000, 'retry-last');
      const a = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: first }));
      const b = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: second }));
      const z = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 2, Body: last }));
      expect(b.ETag).not.toBe(a.ETag);
      // ListParts names the attempt that is the part, with its plaintext size.
      const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId }));
      expect(listed.Parts?.map((p) => [p.PartNumber, p.ETag, p.Size])).toEqual([
        [1, b.ETag, second.length],
        [2, z.ETag, last.length],
      ]);
      // The first attempt is no longer the part, as on S3: the backend's complete refuses it, the upload stays open.
      expect((await s3err(complete(key, UploadId!, [{ PartNumber: 1, ETag: a.ETag }, { PartNumber: 2, ETag: z.ETag }]))).name).toBe('InvalidPart');
      await complete(key, UploadId!, [{ PartNumber: 1, ETag: b.ETag }, { PartNumber: 2, ETag: z.ETag }]);
      expect((await text(key)).equals(Buffer.concat([second, last]))).toBe(true);
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength).toBe(second.length + last.length);
    });

    it('a part re-sent while the first attempt is still in flight: the attempt that finishes last is the part, ListParts names it, the other ETag is InvalidPart (logged as the backend\'s refusal)', async () => {
      const key = 'mpu/in-flight';
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const slow = marked(5 * MiB, 'flight-slow');
      const fast = marked(5 * MiB, 'flight-fast');
      const last = marked(777, 'flight-last');
      const held = heldUploadPart(gw.url, root, `/${bucket}/${key}`, `partNumber=1&uploadId=${encodeURIComponent(UploadId!)}`, slow);
      const quick = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: fast }));
      held.release();
      const slowAnswer = await held.done;
      expect(slowAnswer.status).toBe(200);
      expect(slowAnswer.etag).not.toBe(quick.ETag);
      const z = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 2, Body: last }));
      const listed = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId }));
      expect(listed.Parts?.map((p) => p.ETag)).toEqual([slowAnswer.etag, z.ETag]);

      const refused = await s3err(complete(key, UploadId!, [{ PartNumber: 1, ETag: quick.ETag }, { PartNumber: 2, ETag: z.ETag }]));
      expect(refused).toEqual({ name: 'InvalidPart', status: 400 });
      // The gateway had a record for the named ETag: the log says the backend refused, and what it answered.
      await expect.poll(() => logged().some((l) => l.uploadId === UploadId && l.code === 'InvalidPart'), { timeout: 5000 }).toBe(true);
      const line = logged().find((l) => l.uploadId === UploadId && l.code === 'InvalidPart')!;
      expect(line).toMatchObject({ level: 'warn', op: 'CompleteMultipartUpload', bucket, key, backend: { op: 'CompleteMultipartUpload', status: 400, code: 'InvalidPart' } });
      expect(line.reason).toMatch(/backend's CompleteMultipartUpload refused/);
      // which part: the backend's own word (fs; versitygw's InvalidPart body names it, as S3's does), or else the
      // parts the request named (MinIO does not say)
      if (on !== 'minio') expect([line.partNumber, line.etag]).toEqual([1, quick.ETag!.replace(/"/g, '')]);
      else expect(line.named).toEqual([{ partNumber: 1, etag: quick.ETag!.replace(/"/g, '') }, { partNumber: 2, etag: z.ETag!.replace(/"/g, '') }]);

      await complete(key, UploadId!, [{ PartNumber: 1, ETag: slowAnswer.etag }, { PartNumber: 2, ETag: z.ETag }]);
      expect((await text(key)).equals(Buffer.concat([slow, last]))).toBe(true);
    });

    it('If-None-Match: <etag> on PutObject and CompleteMultipartUpload: 412 when the current ETag is named, a write otherwise; If-None-Match: * unchanged', async () => {
      const key = 'cond/inm';
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'one' }));
      const etag = put.ETag!;
      const other = '"0123456789abcdef0123456789abcdef"';
      for (const value of [etag, etag.replace(/"/g, ''), `W/${etag}`, `${other}, ${etag}`]) {
        const r = await signedRequest(gw.url, root, { method: 'PUT', path: `/${bucket}/${key}`, headers: { 'if-none-match': value }, body: Buffer.from('two') });
        expect([r.status, errorCode(r.body)], value).toEqual([412, 'PreconditionFailed']);
      }
      expect((await text(key)).toString()).toBe('one');
      const written = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'three', IfNoneMatch: other }));
      expect((await text(key)).toString()).toBe('three');
      // a key that does not exist matches no ETag: written
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-new`, Body: 'fresh', IfNoneMatch: etag }));
      expect((await text(`${key}-new`)).toString()).toBe('fresh');
      // `*` still means "only if absent"
      expect((await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'four', IfNoneMatch: '*' })))).status).toBe(412);
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag).toBe(written.ETag);
      // the same on CompleteMultipartUpload
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const p = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: 'five' }));
      const parts = { Parts: [{ PartNumber: 1, ETag: p.ETag }] };
      expect((await s3err(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: parts, IfNoneMatch: written.ETag })))).status).toBe(412);
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: parts, IfNoneMatch: etag }));
      expect((await text(key)).toString()).toBe('five');
    });

    it('If-Match on PutObject: 412 on another ETag, 404 NoSuchKey on a missing key (as MinIO answers), a write on a match', async () => {
      const key = 'cond/im';
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'one' }));
      expect(await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x', IfMatch: '"0123456789abcdef0123456789abcdef"' })))).toEqual({ name: 'PreconditionFailed', status: 412 });
      expect(await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-missing`, Body: 'x', IfMatch: put.ETag })))).toEqual({ name: 'NoSuchKey', status: 404 });
      expect(await exists(bucket, `${key}-missing`)).toBe(false);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'two', IfMatch: put.ETag }));
      expect((await text(key)).toString()).toBe('two');
    });

    it('a conditional PUT checked against one version never overwrites another that lands before its commit (412, the other write kept)', async () => {
      // Another writer's PUT lands after the gateway judged the condition and before its backend commit.
      const interlope = (key: string) => {
        const original = gw.backend.putObject.bind(gw.backend);
        gw.backend.putObject = async (b, k, ...rest) => {
          if (b !== bucket || k !== key) return original(b, k, ...rest);
          gw.backend.putObject = original;
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'interloper' }));
          return original(b, k, ...rest);
        };
      };
      const key = 'cond/race';
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'one' }));
      interlope(key);
      expect((await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'mine', IfNoneMatch: '"0123456789abcdef0123456789abcdef"' })))).status).toBe(412);
      expect((await text(key)).toString()).toBe('interloper');
      // the same when the key was absent at the check
      interlope(`${key}-absent`);
      expect((await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-absent`, Body: 'mine', IfNoneMatch: '"0123456789abcdef0123456789abcdef"' })))).status).toBe(412);
      expect((await text(`${key}-absent`)).toString()).toBe('interloper');
    });

    it('a body that does not match its checksum is BadDigest in S3\'s words; malformed values stay InvalidRequest / InvalidDigest; nothing is stored', async () => {
      const data = marked(100_000, 'digest');
      const put = (key: string, headers: Record<string, string>, body = data) => signedRequest(gw.url, root, { method: 'PUT', path: `/${bucket}/${key}`, headers, body });
      const wrong: Record<string, string> = {
        CRC32: await crc32b64(Buffer.from('other')),
        CRC32C: await crc32b64(Buffer.from('other')),
        CRC64NVME: Buffer.alloc(8).toString('base64'),
        SHA1: Buffer.alloc(20).toString('base64'),
        SHA256: Buffer.alloc(32).toString('base64'),
      };
      for (const [alg, value] of Object.entries(wrong)) {
        const r = await put('digest/bad', { [`x-amz-checksum-${alg.toLowerCase()}`]: value });
        expect([r.status, errorCode(r.body), messageOf(r)], alg).toEqual([400, 'BadDigest', `The ${alg} you specified did not match the calculated checksum.`]);
      }
      const md5 = await put('digest/bad', { 'content-md5': md5b64(Buffer.from('other')) });
      expect([md5.status, errorCode(md5.body), messageOf(md5)]).toEqual([400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.']);
      // a body larger than the whole-body limit streams: refused all the same, before its commit
      const big = marked(9 * MiB, 'digest-big');
      const bigBad = await put('digest/bad', { 'x-amz-checksum-crc32': await crc32b64(Buffer.from('other')) }, big);
      expect([bigBad.status, errorCode(bigBad.body)]).toEqual([400, 'BadDigest']);
      // malformed values are not digests at all
      expect(errorCode((await put('digest/bad', { 'x-amz-checksum-crc32': 'not base64!' })).body)).toBe('InvalidRequest');
      expect(errorCode((await put('digest/bad', { 'x-amz-checksum-crc32': Buffer.alloc(8).toString('base64') })).body)).toBe('InvalidRequest');
      const badMd5 = await put('digest/bad', { 'content-md5': 'abc' });
      expect([errorCode(badMd5.body), messageOf(badMd5)]).toEqual(['InvalidDigest', 'The Content-MD5 you specified is not valid.']);
      expect(await exists(bucket, 'digest/bad')).toBe(false);

      // an UploadPart that does not match is BadDigest too, and leaves no part
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'digest/mpu' }));
      const part = await signedRequest(gw.url, root, {
        method: 'PUT',
        path: `/${bucket}/digest/mpu`,
        query: `partNumber=1&uploadId=${encodeURIComponent(UploadId!)}`,
        headers: { 'x-amz-checksum-crc32': await crc32b64(Buffer.from('other')) },
        body: data,
      });
      expect([part.status, errorCode(part.body), messageOf(part)]).toEqual([400, 'BadDigest', 'The CRC32 you specified did not match the calculated checksum.']);
      expect((await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'digest/mpu', UploadId }))).Parts ?? []).toEqual([]);
      // and a good one goes through
      const good = await put('digest/good', { 'x-amz-checksum-crc32': await crc32b64(data), 'content-md5': md5b64(data) });
      expect(good.status).toBe(200);
    });

    it('a copy from a bucket the user may not read is 403 AccessDenied (CopyObject, UploadPartCopy; a user limited to buckets, a tenant\'s user), whether or not the source exists', async () => {
      await s3.send(new PutObjectCommand({ Bucket: foreign, Key: 'src', Body: marked(1000, 'foreign') }));
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'copy/part' }));
      for (const creds of [limited, tenantUser]) {
        const c = gw.client(creds);
        for (const source of [`${foreign}/src`, `${foreign}/missing`, 'no-such-bucket-conf/src']) {
          expect(await s3err(c.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst', CopySource: source }))), `${creds.accessKey} ${source}`).toEqual({ name: 'AccessDenied', status: 403 });
          expect(await s3err(c.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'copy/part', UploadId, PartNumber: 1, CopySource: source }))), source).toEqual({
            name: 'AccessDenied',
            status: 403,
          });
        }
        // the user's own bucket is reachable, the refusal is the source's
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy/own', Body: 'own' }));
        await c.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/own-copy', CopySource: `${bucket}/copy/own` }));
      }
      expect(await exists(bucket, 'copy/dst')).toBe(false);
      expect((await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'copy/part', UploadId }))).Parts ?? []).toEqual([]);
      expect((await text('copy/own-copy')).toString()).toBe('own');
    });

    it('GetObjectAttributes: ETag, checksum, size and storage class; a multipart object\'s parts with their plaintext sizes and checksums, paged', async () => {
      const single = marked(12_345, 'attrs-single');
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'attrs/single', Body: single, ChecksumAlgorithm: 'CRC32' }));
      const a = await s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 'attrs/single', ObjectAttributes: ['ETag', 'Checksum', 'ObjectParts', 'ObjectSize', 'StorageClass'] }));
      expect(a.ETag).toBe(put.ETag!.replace(/"/g, ''));
      expect(a.Checksum).toEqual({ ChecksumCRC32: put.ChecksumCRC32, ChecksumType: 'FULL_OBJECT' });
      expect(a.ObjectSize).toBe(single.length);
      expect(a.StorageClass).toBe('STANDARD');
      expect(a.ObjectParts).toMatchObject({ TotalPartsCount: 1, IsTruncated: false, Parts: [{ PartNumber: 1, Size: single.length }] });

      const key = 'attrs/multi';
      const sizes = [5 * MiB, 5 * MiB, 4321];
      const bodies = sizes.map((n, i) => marked(n, `attrs-part${i + 1}`));
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: 'CRC32' }));
      const parts = [];
      for (let i = 0; i < bodies.length; i++) {
        const p = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: bodies[i], ChecksumAlgorithm: 'CRC32' }));
        parts.push({ PartNumber: i + 1, ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32 });
      }
      const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
      const all = await s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: key, ObjectAttributes: ['ETag', 'Checksum', 'ObjectParts', 'ObjectSize'] }));
      expect(all.ETag).toBe(done.ETag!.replace(/"/g, ''));
      expect(all.ObjectSize).toBe(sizes.reduce((s, n) => s + n, 0));
      // the composite checksum without HEAD's -<parts>
      expect(all.Checksum).toEqual({ ChecksumCRC32: head.ChecksumCRC32!.replace(/-3$/, ''), ChecksumType: 'COMPOSITE' });
      expect(all.ObjectParts?.TotalPartsCount).toBe(3);
      expect(all.ObjectParts?.Parts).toEqual(parts.map((p, i) => ({ PartNumber: p.PartNumber, Size: sizes[i], ChecksumCRC32: p.ChecksumCRC32 })));
      // paged: two, then the rest after marker 2
      const page1 = await s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: key, ObjectAttributes: ['ObjectParts'], MaxParts: 2 }));
      expect(page1.ObjectParts).toMatchObject({ TotalPartsCount: 3, MaxParts: 2, IsTruncated: true, NextPartNumberMarker: '2' });
      expect(page1.ObjectParts?.Parts?.map((p) => p.PartNumber)).toEqual([1, 2]);
      const page2 = await s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: key, ObjectAttributes: ['ObjectParts'], MaxParts: 2, PartNumberMarker: '2' }));
      expect(page2.ObjectParts).toMatchObject({ IsTruncated: false, PartNumberMarker: '2' });
      expect(page2.ObjectParts?.Parts).toEqual([{ PartNumber: 3, Size: 4321, ChecksumCRC32: parts[2].ChecksumCRC32 }]);
      expect(page2.ETag).toBeUndefined(); // only what was asked for

      expect(await s3err(s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 'attrs/none', ObjectAttributes: ['ETag'] })))).toEqual({ name: 'NoSuchKey', status: 404 });
      const bad = await signedRequest(gw.url, root, { method: 'GET', path: `/${bucket}/attrs/single`, query: 'attributes=', headers: { 'x-amz-object-attributes': 'ETag,Colour' } });
      expect([bad.status, errorCode(bad.body)]).toEqual([400, 'InvalidArgument']);
      const none = await signedRequest(gw.url, root, { method: 'GET', path: `/${bucket}/attrs/single`, query: 'attributes=' });
      expect([none.status, errorCode(none.body)]).toEqual([400, 'InvalidArgument']);
    });

    it('InvalidPart and NoSuchUpload log at warn which lookup failed: part number, key, upload id, the backend\'s answer; never a body or a secret', async () => {
      const key = 'log/mpu';
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const p = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: marked(1000, 'log-part') }));
      const wrongEtag = '"0123456789abcdef0123456789abcdef"';
      expect((await s3err(complete(key, UploadId!, [{ PartNumber: 1, ETag: wrongEtag }]))).name).toBe('InvalidPart');
      await expect.poll(() => logged().some((l) => l.uploadId === UploadId && l.code === 'InvalidPart'), { timeout: 5000 }).toBe(true);
      const invalid = logged().find((l) => l.uploadId === UploadId && l.code === 'InvalidPart')!;
      expect(invalid).toMatchObject({
        level: 'warn',
        op: 'CompleteMultipartUpload',
        bucket,
        key,
        uploadId: UploadId,
        partNumber: 1,
        etag: wrongEtag.replace(/"/g, ''),
        backend: { op: 'meta GetObject', status: 404, code: 'NoSuchKey' },
        recordedEtags: [p.ETag!.replace(/"/g, '')],
      });
      expect(invalid.reason).toMatch(/part record for this ETag is missing/);

      const bogus = `conf-${randomBytes(8).toString('hex')}`;
      expect((await s3err(s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: bogus, PartNumber: 3, Body: marked(100, 'log-nosuch') })))).name).toBe('NoSuchUpload');
      expect((await s3err(complete(key, bogus, [{ PartNumber: 1, ETag: p.ETag }]))).name).toBe('NoSuchUpload');
      await expect.poll(() => logged().filter((l) => l.uploadId === bogus && l.code === 'NoSuchUpload').length, { timeout: 5000 }).toBe(2);
      const [onPart, onComplete] = logged().filter((l) => l.uploadId === bogus);
      expect(onPart).toMatchObject({ level: 'warn', op: 'UploadPart', bucket, key, partNumber: 3, backend: { op: 'meta GetObject', status: 404, code: 'NoSuchKey' } });
      expect(onComplete).toMatchObject({ level: 'warn', op: 'CompleteMultipartUpload', bucket, key, backend: { status: 404, code: 'NoSuchKey' } });
      expect(onPart.reason).toMatch(/upload record is missing/);

      // an upload id presented for another key does not open there: NoSuchUpload, logged as a record refused
      expect((await s3err(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'log/elsewhere', UploadId, PartNumber: 1, Body: 'x' })))).name).toBe('NoSuchUpload');
      await expect.poll(() => logged().some((l) => l.uploadId === UploadId && l.key === 'log/elsewhere'), { timeout: 5000 }).toBe(true);
      expect(logged().find((l) => l.uploadId === UploadId && l.key === 'log/elsewhere')!.reason).toMatch(/upload record was found but refused/);

      const all = lines.join('\n');
      expect(all).not.toContain(MARKER);
      for (const secret of [gw.secretKey, limited.secretKey, tenantUser.secretKey]) expect(all).not.toContain(secret);
    });
  });
}

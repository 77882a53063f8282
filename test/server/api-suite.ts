import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import {
  S3Client,
  CreateBucketCommand,
  HeadBucketCommand,
  DeleteBucketCommand,
  ListBucketsCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  CopyObjectCommand,
  ListObjectsV2Command,
  ListObjectsCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
  ListPartsCommand,
  ListMultipartUploadsCommand,
  GetBucketLocationCommand,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import * as Minio from 'minio';
import { S3Error } from '../../src/errors.ts';
import { startTestGateway, type TestGateway, MARKER } from '../../tools/gateway.ts';
import { rekeyObject, revokeObject } from '../../src/admin/objects.ts';
import { errorCode, signedRequest } from '../../tools/sigv4.ts';
import { storeName, type SuiteStore } from './store.ts';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const MiB = 1024 * 1024;

async function body(out: { Body?: unknown }): Promise<Buffer> {
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

/** Deterministic, marked plaintext so the backend scan can look for it. */
export function marked(size: number, tag: string): Buffer {
  const b = Buffer.alloc(size);
  const line = Buffer.from(`${MARKER}-${tag}-`);
  for (let i = 0; i < size; i += line.length) line.copy(b, i, 0, Math.min(line.length, size - i));
  return b;
}

export function apiSuite(kind: 'fs' | 's3', store?: SuiteStore) {
  const on = storeName(kind, store);
  describe(`S3 API on the ${kind} backend${store ? ` (${store.label})` : ''}`, () => {
    let gw: TestGateway;
    let s3: S3Client;
    let minio: Minio.Client;
    const bucket = `api-${kind}-${randomBytes(3).toString('hex')}`;

    beforeAll(async () => {
      gw = await startTestGateway(kind, { minio: store?.coords() });
      s3 = gw.client();
      const u = new URL(gw.url);
      minio = new Minio.Client({
        endPoint: u.hostname,
        port: Number(u.port),
        useSSL: false,
        accessKey: gw.accessKey,
        secretKey: gw.secretKey,
        region: 'us-east-1',
        pathStyle: true,
      });
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    });
    afterAll(async () => {
      await gw?.close();
    });

    it('creates, heads, lists and locates buckets; refuses bad names and the reserved one', async () => {
      await s3.send(new HeadBucketCommand({ Bucket: bucket }));
      const list = await s3.send(new ListBucketsCommand({}));
      const names = list.Buckets!.map((b) => b.Name);
      expect(names).toContain(bucket);
      expect(names).not.toContain(gw.running.gateway.metaBucket);
      const loc = await s3.send(new GetBucketLocationCommand({ Bucket: bucket }));
      expect(loc.LocationConstraint ?? '').toBe('');
      expect((await s3err(s3.send(new HeadBucketCommand({ Bucket: 'no-such-bucket-x' })))).status).toBe(404);
      expect((await s3err(s3.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })))).name).toBe('InvalidBucketName');
      expect((await s3err(s3.send(new CreateBucketCommand({ Bucket: gw.running.gateway.metaBucket })))).status).toBe(409);
    });

    it('round-trips objects of boundary sizes with metadata, one ETag everywhere', async () => {
      for (const size of [0, 1, 65535, 65536, 65537, 3 * MiB + 7]) {
        const data = marked(size, `sz${size}`);
        const key = `sizes/obj-${size}`;
        const put = await s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: data,
            ContentType: 'text/x-test',
            CacheControl: 'max-age=5',
            ContentDisposition: 'attachment; filename="x.txt"',
            ContentEncoding: 'identity',
            Metadata: { color: `${MARKER}-meta-blue` },
          }),
        );
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        expect(head.ContentLength).toBe(size);
        expect(head.ETag).toBe(put.ETag);
        expect(head.ContentType).toBe('text/x-test');
        expect(head.CacheControl).toBe('max-age=5');
        expect(head.ContentDisposition).toBe('attachment; filename="x.txt"');
        expect(head.ContentEncoding).toBe('identity');
        expect(head.Metadata).toEqual({ color: `${MARKER}-meta-blue` });
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        expect(got.ETag).toBe(put.ETag);
        expect(md5(await body(got))).toBe(md5(data));
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key }));
        expect(listed.Contents![0]!.Size).toBe(size);
        expect(listed.Contents![0]!.ETag).toBe(put.ETag);
      }
    });

    it('serves every Range shape exactly with a stable ETag', async () => {
      const data = marked(300_000, 'range');
      const key = 'range/obj';
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
      const cases: [string, number, number][] = [
        ['bytes=0-0', 0, 0],
        ['bytes=299999-299999', 299999, 299999],
        ['bytes=65530-65545', 65530, 65545],
        ['bytes=100000-', 100000, 299999],
        ['bytes=-1000', 299000, 299999],
        ['bytes=-400000', 0, 299999],
        ['bytes=131071-262144', 131071, 262144],
        ['bytes=5-999999', 5, 299999],
      ];
      for (const [range, a, b] of cases) {
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
        expect(got.ETag).toBe(put.ETag);
        expect(got.ContentRange).toBe(`bytes ${a}-${b}/300000`);
        const bytes = await body(got);
        expect(bytes.equals(data.subarray(a, b + 1))).toBe(true);
      }
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=300000-' })))).status).toBe(416);
    });

    it('honours conditional GET headers and response overrides', async () => {
      const key = 'cond/obj';
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'conditional' }));
      const ok = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: put.ETag }));
      expect((await body(ok)).toString()).toBe('conditional');
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: '"abc"' })))).status).toBe(412);
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfNoneMatch: put.ETag })))).status).toBe(304);
      // A 304 still names the version it refers to.
      const raw = await fetch(new URL(`/${bucket}/${key}`, gw.url), { method: 'HEAD' }).catch(() => null);
      expect(raw?.status).toBe(403); // anonymous: refused, never a 304 leak
      const nm = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
        (h) => h.ETag,
        () => undefined,
      );
      expect(nm).toBe(put.ETag);
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, PartNumber: 2 })))).status).toBe(416);
      const lastModified = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).LastModified!;
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfUnmodifiedSince: new Date(Date.now() - 3600_000) })))).status).toBe(412);
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfModifiedSince: lastModified })))).status).toBe(304);
      const o = await s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, ResponseContentType: 'application/x-over', ResponseContentDisposition: 'inline' }),
      );
      expect(o.ContentType).toBe('application/x-over');
      expect(o.ContentDisposition).toBe('inline');
      await body(o);
    });

    it('conditional PUT: If-None-Match * and If-Match are atomic', async () => {
      const key = 'cond/put';
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'one', IfNoneMatch: '*' }));
      expect((await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'two', IfNoneMatch: '*' })))).status).toBe(412);
      expect((await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'two', IfMatch: '"0000"' })))).status).toBe(412);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect((await body(got)).toString()).toBe('one');
    });

    it('conditional CompleteMultipartUpload: If-None-Match * and If-Match on the ETag clients see, atomic with the commit; a refused one leaves the upload open', async () => {
      const key = 'cond/mpu';
      const first = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'first' }));
      const g = gw.running.gateway;
      const headers = async () => (await gw.backend.listObjects(g.metaBucket, { prefix: g.store.headerDir(bucket, key) })).objects.length;
      const text = async () => (await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })))).toString();
      const start = async (content: string) => {
        const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
        const p = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: content }));
        return (cond: { IfMatch?: string; IfNoneMatch?: string }) =>
          s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag }] }, ...cond }));
      };

      const second = await start('second');
      expect((await s3err(second({ IfNoneMatch: '*' }))).status).toBe(412);
      expect((await s3err(second({ IfMatch: '"0123456789abcdef0123456789abcdef"' }))).status).toBe(412);
      expect(await text()).toBe('first');
      await second({ IfMatch: first.ETag });
      expect(await text()).toBe('second');
      const secondOid = (await gw.backend.headObject(bucket, key))!.meta['lc-oid'];
      await expect.poll(headers, { timeout: 5000 }).toBe(1); // first's header dropped; the upload's, rewritten, is second's

      // Another writer replaces the object after the gateway checked If-Match and before the backend commits.
      const third = await start('third');
      const checked = (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag;
      const original = gw.backend.completeMultipart.bind(gw.backend);
      gw.backend.completeMultipart = async (...args) => {
        gw.backend.completeMultipart = original;
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'interloper' }));
        return original(...args);
      };
      expect((await s3err(third({ IfMatch: checked }))).status).toBe(412);
      expect(await text()).toBe('interloper');
      await third({});
      expect(await text()).toBe('third');
      // The interloper (a small PUT, its header inline: one backend write, no look at what it replaced) left the
      // second's header object behind for gc (docs/DESIGN.md "Write order"); the third's is the only other one.
      const thirdOid = (await gw.backend.headObject(bucket, key))!.meta['lc-oid'];
      const oidsNow = async () => (await gw.backend.listObjects(g.metaBucket, { prefix: g.store.headerDir(bucket, key) })).objects.map((o) => o.key.split('/').pop()).sort();
      await expect.poll(oidsNow, { timeout: 5000 }).toEqual([secondOid, thirdOid].sort());
    });

    it('a complete the backend committed but answered PreconditionFailed (a retry after a lost answer) leaves the object readable', async () => {
      const key = 'cond/lost-answer';
      const content = 'committed after all';
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const p = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: content }));
      const original = gw.backend.completeMultipart.bind(gw.backend);
      gw.backend.completeMultipart = async (...args) => {
        gw.backend.completeMultipart = original;
        await original(...args);
        throw new S3Error('PreconditionFailed');
      };
      const refused = s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.ETag }] } }));
      expect((await s3err(refused)).status).toBe(412);
      expect((await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })))).toString()).toBe(content);
    });

    it('verifies checksums: default CRC32, each algorithm by header, BadDigest on mismatch, checksum mode', async () => {
      const key = 'ck/obj';
      const data = marked(100_000, 'ck');
      for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const) {
        const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-${alg}`, Body: data, ChecksumAlgorithm: alg }));
        const field = `Checksum${alg}` as const;
        expect(put[field]).toBeTruthy();
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${key}-${alg}`, ChecksumMode: 'ENABLED' }));
        expect(head[field]).toBe(put[field]);
        const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${key}-${alg}`, ChecksumMode: 'ENABLED', Range: 'bytes=0-9' }));
        expect(ranged[field]).toBeUndefined();
        await body(ranged);
      }
      // A stream body makes the SDK use aws-chunked with a CRC32 trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
      const streamed = await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: `${key}-stream`, Body: Readable.from([data.subarray(0, 50_000), data.subarray(50_000)]), ContentLength: data.length }),
      );
      expect(streamed.ChecksumCRC32).toBeTruthy();
      const g = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${key}-stream`, ChecksumMode: 'ENABLED' }));
      expect((await body(g)).equals(data)).toBe(true);
      const bad = await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-bad`, Body: data, ChecksumSHA256: Buffer.alloc(32).toString('base64') })));
      expect(bad.name).toBe('BadDigest');
      const badMd5 = await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-bad`, Body: data, ContentMD5: createHash('md5').update('x').digest('base64') })));
      expect(badMd5.name).toBe('BadDigest');
      expect((await s3err(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${key}-bad` })))).status).toBe(404);
    });

    it('copies within a dataset server-side with COPY and REPLACE directives and conditions', async () => {
      const data = marked(200_000, 'copy');
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy/src', Body: data, ContentType: 'text/a', Metadata: { a: '1' } }));
      await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst', CopySource: `${bucket}/copy/src` }));
      const h1 = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/dst' }));
      expect(h1.ContentType).toBe('text/a');
      expect(h1.Metadata).toEqual({ a: '1' });
      await s3.send(
        new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst2', CopySource: `${bucket}/copy/src`, MetadataDirective: 'REPLACE', ContentType: 'text/b', Metadata: { b: '2' } }),
      );
      const h2 = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'copy/dst2' }));
      expect(h2.ContentType).toBe('text/b');
      expect(h2.Metadata).toEqual({ b: '2' });
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy/dst2', Range: 'bytes=70000-140000' }));
      expect((await body(got)).equals(data.subarray(70000, 140001))).toBe(true);
      expect((await s3err(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/dst3', CopySource: `${bucket}/copy/src`, CopySourceIfMatch: '"nope"' })))).status).toBe(412);
      expect((await s3err(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy/src', CopySource: `${bucket}/copy/src` })))).name).toBe('InvalidRequest');
      // The source is untouched by copies.
      const src = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy/src' }));
      expect(src.ETag).toBe(put.ETag);
      expect((await body(src)).equals(data)).toBe(true);
    });

    it('lists with prefix, delimiter, pagination, start-after, marker and url encoding', async () => {
      // S3 orders keys by UTF-8 bytes: 'é' (0xC3 0xA9) sorts after 'z'.
      const keys = ['l/a', 'l/b/1', 'l/b/2', 'l/c', 'l/d d', 'l/z/x/y', 'l/é'];
      for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }));
      const d = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'l/', Delimiter: '/' }));
      expect(d.Contents!.map((c) => c.Key)).toEqual(['l/a', 'l/c', 'l/d d', 'l/é']);
      expect(d.CommonPrefixes!.map((c) => c.Prefix)).toEqual(['l/b/', 'l/z/']);
      const seen: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'l/', MaxKeys: 2, ContinuationToken: token }));
        seen.push(...page.Contents!.map((c) => c.Key!));
        token = page.NextContinuationToken;
      } while (token);
      expect(seen).toEqual(keys);
      const after = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'l/', StartAfter: 'l/c' }));
      expect(after.Contents!.map((c) => c.Key)).toEqual(['l/d d', 'l/z/x/y', 'l/é']);
      const v1 = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: 'l/', Marker: 'l/b/2', MaxKeys: 2 }));
      expect(v1.Contents!.map((c) => c.Key)).toEqual(['l/c', 'l/d d']);
      expect(v1.IsTruncated).toBe(true);
      const enc = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'l/d', EncodingType: 'url' }));
      // S3 url-encodes keys in the form encoding (space as '+'); the JS SDK hands them over as sent.
      expect(enc.Contents!.map((c) => decodeURIComponent(c.Key!.replace(/\+/g, ' ')))).toEqual(['l/d d']);
    });

    it('deletes one and many objects', async () => {
      for (const k of ['del/1', 'del/2', 'del/3']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'del/1' }));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'del/never-existed' }));
      const res = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'del/2' }, { Key: 'del/3' }] } }));
      expect(res.Deleted!.map((d) => d.Key).sort()).toEqual(['del/2', 'del/3']);
      const left = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'del/' }));
      expect(left.KeyCount).toBe(0);
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'del/2' })))).name).toBe('NoSuchKey');
    });

    it('multipart: parts out of order and in parallel, ListParts, UploadPartCopy, composite checksum, abort', async () => {
      const key = 'mp/obj';
      const parts = [marked(5 * MiB, 'p1'), marked(5 * MiB, 'p2'), marked(1234, 'p3')];
      const create = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'text/mp', Metadata: { m: 'v' }, ChecksumAlgorithm: 'CRC32' }));
      const uploadId = create.UploadId!;
      const done = await Promise.all(
        [2, 0, 1].map(async (i) => {
          const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: i + 1, Body: parts[i], ChecksumAlgorithm: 'CRC32' }));
          return { PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32: r.ChecksumCRC32 };
        }),
      );
      done.sort((a, b) => a.PartNumber - b.PartNumber);
      const lp = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
      expect(lp.Parts!.map((p) => [p.PartNumber, p.Size])).toEqual([[1, 5 * MiB], [2, 5 * MiB], [3, 1234]]);
      const ups = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      expect(ups.Uploads!.some((u) => u.UploadId === uploadId)).toBe(true);
      const c = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: done } }));
      expect(c.ETag).toMatch(/-3"$/);
      expect(c.ChecksumCRC32).toMatch(/-3$/);
      const all = Buffer.concat(parts);
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ContentLength).toBe(all.length);
      expect(head.ETag).toBe(c.ETag);
      expect(head.ContentType).toBe('text/mp');
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key }));
      expect(listed.Contents![0]!.Size).toBe(all.length);
      expect(listed.Contents![0]!.ETag).toBe(c.ETag);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(md5(await body(got))).toBe(md5(all));
      const edge = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${5 * MiB - 10}-${5 * MiB + 10}` }));
      expect((await body(edge)).equals(all.subarray(5 * MiB - 10, 5 * MiB + 11))).toBe(true);

      // UploadPartCopy from the object just written, then abort another upload.
      const c2 = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/copy' }));
      const pc1 = await s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copy', UploadId: c2.UploadId, PartNumber: 1, CopySource: `${bucket}/${key}`, CopySourceRange: `bytes=0-${5 * MiB - 1}` }));
      const pc2 = await s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'mp/copy', UploadId: c2.UploadId, PartNumber: 2, CopySource: `${bucket}/${key}`, CopySourceRange: `bytes=${5 * MiB}-${all.length - 1}` }));
      await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'mp/copy',
          UploadId: c2.UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: pc1.CopyPartResult!.ETag }, { PartNumber: 2, ETag: pc2.CopyPartResult!.ETag }] },
        }),
      );
      const copied = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/copy' }));
      expect(md5(await body(copied))).toBe(md5(all));

      const c3 = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/aborted' }));
      await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'mp/aborted', UploadId: c3.UploadId, PartNumber: 1, Body: 'x' }));
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mp/aborted', UploadId: c3.UploadId }));
      expect((await s3err(s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp/aborted', UploadId: c3.UploadId })))).name).toBe('NoSuchUpload');
    });

    it('multipart with an odd layout (part not a whole number of chunks, part numbers with gaps) lists exact sizes', async () => {
      const key = 'mp/odd';
      const parts = [marked(5 * MiB + 1, 'odd1'), marked(5 * MiB + 12345, 'odd2'), marked(777, 'odd3')];
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const numbers = [2, 5, 9];
      const done = [];
      for (let i = 0; i < parts.length; i++) {
        const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: numbers[i], Body: parts[i] }));
        done.push({ PartNumber: numbers[i], ETag: r.ETag });
      }
      const c = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: done } }));
      const all = Buffer.concat(parts);
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: key }));
      expect(listed.Contents![0]!.Size).toBe(all.length);
      expect(listed.Contents![0]!.ETag).toBe(c.ETag);
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ContentLength).toBe(all.length);
      expect(head.ETag).toBe(c.ETag);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(md5(await body(got))).toBe(md5(all));
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${5 * MiB - 3}-${5 * MiB + 3}` }));
      expect((await body(r)).equals(all.subarray(5 * MiB - 3, 5 * MiB + 4))).toBe(true);
    });

    it('multipart FULL_OBJECT CRC32C checksum: combined over the whole plaintext and returned in checksum mode', async () => {
      const key = 'mp/full';
      const parts = [marked(5 * MiB, 'f1'), marked(100_000, 'f2')];
      const { UploadId } = await s3.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: 'CRC32C', ChecksumType: 'FULL_OBJECT' }),
      );
      const done = [];
      for (let i = 0; i < parts.length; i++) {
        const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: parts[i], ChecksumAlgorithm: 'CRC32C' }));
        done.push({ PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32C: r.ChecksumCRC32C });
      }
      const c = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: done } }));
      // The whole-object CRC32C of the concatenation, computed independently.
      const whole = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-single`, Body: Buffer.concat(parts), ChecksumAlgorithm: 'CRC32C' }));
      expect(c.ChecksumCRC32C).toBe(whole.ChecksumCRC32C);
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
      expect(head.ChecksumCRC32C).toBe(whole.ChecksumCRC32C);
      expect(head.ChecksumType).toBe('FULL_OBJECT');
      // The SDK validates the full-object checksum of a whole GET against the bytes it receives.
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
      expect(md5(await body(got))).toBe(md5(Buffer.concat(parts)));
    });

    it('multipart errors: EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload', async () => {
      const key = 'mp/err';
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const p1 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: 'small' }));
      const p2 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 2, Body: 'small' }));
      const small = await s3err(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] } })));
      expect(small.name).toBe('EntityTooSmall');
      const badPart = await s3err(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"ffff"' }] } })));
      expect(badPart.name).toBe('InvalidPart');
      const order = await s3err(s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 2, ETag: p2.ETag }, { PartNumber: 1, ETag: p1.ETag }] } })));
      expect(order.name).toBe('InvalidPartOrder');
      const none = await s3err(s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: 'not-an-upload', PartNumber: 1, Body: 'x' })));
      expect(none.name).toBe('NoSuchUpload');
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }));
    });

    it('lib-storage Upload: parallel multipart of a stream, exact size back', async () => {
      const data = marked(17 * MiB + 3, 'libstorage');
      const up = new Upload({ client: s3, params: { Bucket: bucket, Key: 'ls/big', Body: Readable.from([data]) }, queueSize: 4, partSize: 5 * MiB });
      const res = await up.done();
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'ls/big' }));
      expect(head.ContentLength).toBe(data.length);
      expect(head.ETag).toBe(res.ETag);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ls/big' }));
      expect(md5(await body(got))).toBe(md5(data));
    });

    it('minio JS client: signed streaming chunks, stat, list, remove', async () => {
      const data = marked(7 * MiB + 11, 'minio');
      await minio.putObject(bucket, 'mc/obj', data, data.length, { 'Content-Type': 'text/minio' });
      const stat = await minio.statObject(bucket, 'mc/obj');
      expect(stat.size).toBe(data.length);
      const stream = await minio.getObject(bucket, 'mc/obj');
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      expect(md5(Buffer.concat(chunks))).toBe(md5(data));
      const part = await minio.getPartialObject(bucket, 'mc/obj', 1000, 100);
      const pc: Buffer[] = [];
      for await (const c of part) pc.push(c as Buffer);
      expect(Buffer.concat(pc).equals(data.subarray(1000, 1100))).toBe(true);
      const names: string[] = [];
      for await (const o of minio.listObjectsV2(bucket, 'mc/', true)) names.push((o as { name: string }).name);
      expect(names).toEqual(['mc/obj']);
      await minio.removeObject(bucket, 'mc/obj');
      await expect(minio.statObject(bucket, 'mc/obj')).rejects.toThrow();
    });

    it('refuses to delete a non-empty bucket, deletes an empty one', async () => {
      const b = `${bucket}-tmp`;
      await s3.send(new CreateBucketCommand({ Bucket: b }));
      await s3.send(new PutObjectCommand({ Bucket: b, Key: 'x', Body: 'x' }));
      expect((await s3err(s3.send(new DeleteBucketCommand({ Bucket: b })))).name).toBe('BucketNotEmpty');
      await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'x' }));
      await s3.send(new DeleteBucketCommand({ Bucket: b }));
      expect((await s3err(s3.send(new HeadBucketCommand({ Bucket: b })))).status).toBe(404);
    });

    it('ETag: plaintext MD5 for single PUTs up to 8 MiB or with Content-MD5 (and copies), never bare hex otherwise; the same in PUT, HEAD, GET, listings and If-Match', async () => {
      const cases: { key: string; data: Buffer; contentMd5?: boolean }[] = [
        { key: 'etag/small', data: marked(100_000, 'et-small') },
        { key: 'etag/empty', data: Buffer.alloc(0) },
        { key: 'etag/whole', data: marked(8 * MiB, 'et-whole') },
        // Past the whole-body limit but declared: the MD5 is known before the commit.
        { key: 'etag/declared', data: marked(9 * MiB + 11, 'et-md5'), contentMd5: true },
      ];
      const digests: string[] = [];
      for (const c of cases) {
        const hex = md5(c.data);
        digests.push(hex);
        const put = await s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: c.key,
            Body: c.data,
            ContentMD5: c.contentMd5 ? createHash('md5').update(c.data).digest('base64') : undefined,
          }),
        );
        expect(put.ETag, c.key).toBe(`"${hex}"`);
        expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: c.key }))).ETag, c.key).toBe(`"${hex}"`);
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: c.key }));
        expect(got.ETag, c.key).toBe(`"${hex}"`);
        expect(md5(await body(got))).toBe(hex);
        // Stored sealed: the backend's metadata never holds the MD5 in the clear.
        const info = await gw.backend.headObject(bucket, c.key);
        expect(info!.meta['lc-etag']).toMatch(/^h\d+\.[A-Za-z0-9_-]{59}$/);
        expect(JSON.stringify(info!.meta)).not.toContain(hex);
        expect(info!.etag).not.toBe(hex);
      }
      // Past 8 MiB without Content-MD5 the body streams and its ETag is the backend's with S3's "-N" shape: never
      // 32 bare hex digits that a client would take for the content's MD5.
      const big = marked(8 * MiB + 1, 'et-big');
      const streamed = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'etag/streamed', Body: big }));
      const backendEtag = (await gw.backend.headObject(bucket, 'etag/streamed'))!.etag;
      expect(streamed.ETag).toBe(`"${backendEtag}-1"`);
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'etag/streamed' }))).ETag).toBe(streamed.ETag);
      expect(md5(await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'etag/streamed', IfMatch: streamed.ETag }))))).toBe(md5(big));
      // Copies keep the source's ETag, across keys and in place (metadata REPLACE).
      await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'etag/copy', CopySource: `${bucket}/etag/small` }));
      await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'etag/small', CopySource: `${bucket}/etag/small`, MetadataDirective: 'REPLACE', Metadata: { x: 'y' } }));
      for (const key of ['etag/copy', 'etag/small']) {
        expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag, key).toBe(`"${digests[0]}"`);
      }
      // Into another bucket (another dataset: the bytes are re-sealed, streamed past 8 MiB): the MD5 ETag stays.
      const other = `${bucket}-b`;
      await s3.send(new CreateBucketCommand({ Bucket: other }));
      const crossed = await s3.send(new CopyObjectCommand({ Bucket: other, Key: 'declared', CopySource: `${bucket}/etag/declared` }));
      expect(crossed.CopyObjectResult!.ETag).toBe(`"${digests[3]}"`);
      expect((await s3.send(new HeadObjectCommand({ Bucket: other, Key: 'declared' }))).ETag).toBe(`"${digests[3]}"`);
      expect((await s3.send(new ListObjectsV2Command({ Bucket: other }))).Contents![0]!.ETag).toBe(`"${digests[3]}"`);
      await s3.send(new DeleteObjectCommand({ Bucket: other, Key: 'declared' }));
      await s3.send(new DeleteBucketCommand({ Bucket: other }));
      // Multipart: S3's "-N" form, never mistaken for an MD5.
      const mp = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'etag/multi' }));
      const parts = [];
      for (const n of [1, 2]) {
        const up = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'etag/multi', UploadId: mp.UploadId, PartNumber: n, Body: marked(5 * MiB, `et-p${n}`) }));
        parts.push({ PartNumber: n, ETag: up.ETag });
      }
      const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'etag/multi', UploadId: mp.UploadId, MultipartUpload: { Parts: parts } }));
      expect(done.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'etag/multi' }))).ETag).toBe(done.ETag);
      // Listings say what HEAD says, for every object (one listing request, no per-object lookups needed).
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'etag/' }));
      expect(listed.Contents!.length).toBe(7);
      for (const o of listed.Contents!) {
        expect(o.ETag, o.Key).toBe((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: o.Key }))).ETag);
      }
      const v1 = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: 'etag/s' }));
      expect(v1.Contents!.map((o) => o.ETag)).toEqual([`"${digests[0]}"`, streamed.ETag]);
      // If-Match on PUT names the ETag clients see.
      expect((await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'etag/small', Body: 'x', IfMatch: '"0123456789abcdef0123456789abcdef"' })))).status).toBe(412);
      const replaced = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'etag/small', Body: 'new', IfMatch: `"${digests[0]}"` }));
      expect(replaced.ETag).toBe(`"${md5(Buffer.from('new'))}"`);
      expect((await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'etag/nothing', Body: 'x', IfMatch: `"${digests[0]}"` })))).status).toBe(404);
      // (not the empty object's MD5: any empty backend object, e.g. another test's, has that ETag)
      expect(await gw.scanBackendFor(digests.filter((d) => d !== md5(Buffer.alloc(0))))).toEqual([]);
    });

    it('keys up to S3\'s 1,024 bytes work in every operation (PUT, GET, HEAD, copy, multipart, listing, revoke, re-key); 1,025 bytes is KeyTooLongError', async () => {
      // 1,024 bytes in segments no backend refuses (MinIO keeps a path segment <= 255 bytes), ASCII and 2-byte UTF-8
      const fill = (prefix: string, unit: string, seg: number): string => {
        let k = prefix;
        while (Buffer.byteLength(k) + Buffer.byteLength(unit) <= 1024) k += Buffer.byteLength(k.slice(k.lastIndexOf('/') + 1)) >= seg ? '/' : unit;
        while (Buffer.byteLength(k) < 1024) k += 'z';
        return k;
      };
      const ascii = fill('long/a/', 'a', 200);
      const utf8 = fill('long/u/', '\u00e9', 200);
      const asciiCopy = ascii.slice(0, -1) + 'c';
      for (const k of [ascii, utf8, asciiCopy]) expect(Buffer.byteLength(k)).toBe(1024);
      const data = marked(70_000, 'long');
      for (const k of [ascii, utf8]) {
        const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: data, Metadata: { m: 'v' } }));
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: k }));
        expect(got.ETag).toBe(put.ETag);
        expect((await body(got)).equals(data)).toBe(true);
        const ranged = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: k, Range: 'bytes=65530-65545' }));
        expect((await body(ranged)).equals(data.subarray(65530, 65546))).toBe(true);
        expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: k }))).Metadata).toEqual({ m: 'v' });
      }
      await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: asciiCopy, CopySource: `${bucket}/${encodeURIComponent(ascii)}` }));
      expect((await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: asciiCopy })))).equals(data)).toBe(true);
      await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: asciiCopy, CopySource: `${bucket}/${encodeURIComponent(utf8)}`, MetadataDirective: 'REPLACE', Metadata: { r: '1' } }));
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: asciiCopy }))).Metadata).toEqual({ r: '1' });
      // multipart onto a 1,024-byte key, one part uploaded, one copied from another 1,024-byte key
      const mpKey = utf8.slice(0, -1) + 'm';
      const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: mpKey }));
      const p1 = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: mpKey, UploadId: up.UploadId, PartNumber: 1, Body: marked(5 * MiB, 'lp1') }));
      const p2 = await s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: mpKey, UploadId: up.UploadId, PartNumber: 2, CopySource: `${bucket}/${encodeURIComponent(ascii)}` }));
      expect((await s3.send(new ListPartsCommand({ Bucket: bucket, Key: mpKey, UploadId: up.UploadId }))).Parts!.length).toBe(2);
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: mpKey, UploadId: up.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.CopyPartResult!.ETag }] } }));
      const mpGot = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: mpKey })));
      expect(mpGot.length).toBe(5 * MiB + data.length);
      expect(mpGot.subarray(5 * MiB).equals(data)).toBe(true);
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'long/' }));
      expect(listed.Contents!.map((c) => c.Key).sort()).toEqual([ascii, asciiCopy, utf8, mpKey].sort());
      // re-key and revoke (the admin API's functions) on 1,024-byte keys
      const store = gw.running.gateway.store;
      await rekeyObject(store, bucket, ascii);
      expect((await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: ascii })))).equals(data)).toBe(true);
      await revokeObject(store, gw.running.keys, bucket, utf8, undefined, 'test');
      expect((await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: utf8 })))).name).toBe('KeyRevoked');
      // one byte more: S3's KeyTooLongError on every operation that names the key
      const tooLong = ascii + 'x';
      const tooLongErr = { name: 'KeyTooLongError', status: 400 };
      expect(await s3err(s3.send(new PutObjectCommand({ Bucket: bucket, Key: tooLong, Body: 'x' })))).toEqual(tooLongErr);
      expect(await s3err(s3.send(new GetObjectCommand({ Bucket: bucket, Key: tooLong })))).toEqual(tooLongErr);
      expect((await s3err(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: tooLong })))).status).toBe(400);
      expect(await s3err(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: tooLong, CopySource: `${bucket}/${encodeURIComponent(ascii)}` })))).toEqual(tooLongErr);
      expect(await s3err(s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: tooLong })))).toEqual(tooLongErr);
      for (const k of [ascii, utf8, asciiCopy, mpKey]) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
      expect((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'long/' }))).KeyCount).toBe(0);
    });

    it('a 1,024-byte key in one path segment is stored (fs) or refused with a clean 4xx by a backend that cannot (MinIO: 255-byte segments)', async () => {
      const key = 'S'.repeat(1024);
      const res = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'one segment' })).then(() => null, (e: S3ServiceException) => e);
      if (kind === 'fs') {
        expect(res).toBeNull();
        expect((await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })))).toString()).toBe('one segment');
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } else if (res) {
        expect(res.$metadata.httpStatusCode).toBe(400);
      }
    });

    it('a key with a `..`, `.` or empty path segment is a 400 on every operation on an S3 backend (MinIO refuses it, versitygw would store it as another key), never a 5xx; the key it would alias is untouched', async () => {
      const c = { accessKey: gw.accessKey, secretKey: gw.secretKey };
      const victims = ['b', 'lead', 'e/f'];
      for (const v of victims) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: v, Body: `victim ${v}` }));
      for (const path of [`/${bucket}/dots/../b`, `/${bucket}/./b`, `/${bucket}/dots/%2E%2E/b`, `/${bucket}//lead`, `/${bucket}/e//f`]) {
        const answers: [string, number, string][] = [];
        for (const [method, query, headers] of [
          ['PUT', '', {}], ['GET', '', {}], ['HEAD', '', {}], ['GET', '', { range: 'bytes=0-1' }], ['DELETE', '', {}], ['POST', 'uploads', {}],
        ] as const) {
          const r = await signedRequest(gw.url, c, { method, path, query, headers, body: method === 'PUT' ? Buffer.from('dots') : undefined });
          answers.push([`${method}${query}${Object.keys(headers).join('')}`, r.status, errorCode(r.body)]);
        }
        if (kind === 's3') {
          for (const [op, status, code] of answers) {
            expect([op, status], `${path} ${op}`).toEqual([op, 400]);
            if (op !== 'HEAD') expect(code, `${path} ${op}`).toBe('InvalidArgument');
          }
        } else {
          // the fs backend keeps any key S3 does
          expect(answers.map(([op, status]) => [op, status])).toEqual([['PUT', 200], ['GET', 200], ['HEAD', 200], ['GETrange', 206], ['DELETE', 204], ['POSTuploads', 200]]);
        }
      }
      for (const v of victims) expect((await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: v })))).toString()).toBe(`victim ${v}`);
      for (const v of victims) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: v }));
    });

    it('a directory marker (an empty `dir/`) and a key under an object\'s name: stored, except on a store that keeps objects as files (versitygw: 400 InvalidArgument, said so)', async () => {
      const answer = async (key: string) =>
        s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: '' })).then(() => 200, (e: S3ServiceException) => `${e.$metadata.httpStatusCode} ${e.name} ${e.message}`);
      const got = { 'marker/': await answer('marker/'), nest: await answer('nest'), 'nest/child': await answer('nest/child') };
      if (on === 'versitygw') {
        // a 'dir/' is a directory there and cannot hold data, and lakecrypt's empty object is not empty ciphertext;
        // 'nest' is a file, so nothing can go under it
        const why = /^400 InvalidArgument The storage backend keeps objects as files/;
        expect(got).toEqual({ 'marker/': expect.stringMatching(why), nest: 200, 'nest/child': expect.stringMatching(why) });
      } else {
        expect(got).toEqual({ 'marker/': 200, nest: 200, 'nest/child': 200 });
        expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'marker/' }))).ContentLength).toBe(0);
      }
      for (const k of Object.keys(got)) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }));
    });

    it('stores no plaintext marker in the backend', async () => {
      const hits = await gw.scanBackendFor([MARKER]);
      expect(hits).toEqual([]);
    });
  });
}

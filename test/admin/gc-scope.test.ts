/**
 * gc judges only its own deployment's objects (src/admin/gc.ts). Two lakecrypt deployments — each its own meta bucket
 * and CMK — on one MinIO: both write data objects with `lc-oid`, each keeps the headers in its own meta bucket. A gc
 * of A with no age cut-off finds and removes A's orphan data and abandoned upload, and leaves B's object (whose
 * header A cannot see) and B's open upload alone. Before the fix it deleted B's object: in CI another suite's gc
 * removed this suite's large objects, answered 404 afterwards.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { runGc } from '../../src/admin/gc.ts';
import { META_OID, isInline } from '../../src/store/index.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { uniqueBucket } from '../helpers/s3.ts';

const MiB = 1024 * 1024;
let a: TestGateway;
let b: TestGateway;
let sa: S3Client;
let sb: S3Client;
const bucketA = uniqueBucket('gc-a');
const bucketB = uniqueBucket('gc-b');

beforeAll(async () => {
  a = await startTestGateway('s3');
  b = await startTestGateway('s3'); // its own meta bucket, keystore and CMK
  sa = a.client();
  sb = b.client();
  await sa.send(new CreateBucketCommand({ Bucket: bucketA }));
  await sb.send(new CreateBucketCommand({ Bucket: bucketB }));
}, 120_000);

afterAll(async () => {
  sa?.destroy();
  sb?.destroy();
  await b?.close();
  await a?.close();
});

const body = async (s: S3Client, bucket: string, key: string) => Buffer.from(await (await s.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());

describe('gc scope', () => {
  it("a gc with no cut-off removes its own orphans and abandoned upload, never another deployment's objects or uploads on the same backend", async () => {
    // B: an object whose header lives in B's meta bucket, and an upload in progress
    const kept = randomBytes(12 * MiB); // streamed: its header is written first, to the meta bucket
    await sb.send(new PutObjectCommand({ Bucket: bucketB, Key: 'kept', Body: kept }));
    const infoB = (await b.backend.headObject(bucketB, 'kept'))!;
    expect(isInline(infoB.meta)).toBe(false); // a header object of its own, which A's meta bucket does not hold
    const upB = await sb.send(new CreateMultipartUploadCommand({ Bucket: bucketB, Key: 'upload' }));
    const part = randomBytes(5 * MiB);
    const p1 = await sb.send(new UploadPartCommand({ Bucket: bucketB, Key: 'upload', UploadId: upB.UploadId, PartNumber: 1, Body: part }));

    // A: a real orphan (its header removed, as a crash before the commit would leave) and an abandoned upload
    await sa.send(new PutObjectCommand({ Bucket: bucketA, Key: 'orphan', Body: randomBytes(12 * MiB) }));
    const oid = (await a.backend.headObject(bucketA, 'orphan'))!.meta[META_OID];
    await a.backend.deleteObject(a.running.gateway.metaBucket, a.running.gateway.store.headerPath(bucketA, 'orphan', oid));
    await sa.send(new CreateMultipartUploadCommand({ Bucket: bucketA, Key: 'abandoned' }));

    const ctx = { backend: a.backend, store: a.running.gateway.store, keys: a.running.keys, metaBucket: a.running.gateway.metaBucket };
    const dry = await runGc(ctx, { apply: false, olderThanMs: 0 });
    // every bucket on the shared MinIO was walked (other suites' too): only A's own dataset yields orphans
    expect(dry.orphanData).toEqual([`${bucketA}/orphan`]);
    const applied = await runGc(ctx, { apply: true, olderThanMs: 0 });
    expect(applied.orphanData).toEqual([`${bucketA}/orphan`]);
    expect(await a.backend.headObject(bucketA, 'orphan')).toBeNull();
    expect((await sa.send(new ListMultipartUploadsCommand({ Bucket: bucketA }))).Uploads ?? []).toEqual([]);

    // B's object and upload are untouched: read back, and the upload completes
    expect((await body(sb, bucketB, 'kept')).equals(kept)).toBe(true);
    await sb.send(new CompleteMultipartUploadCommand({ Bucket: bucketB, Key: 'upload', UploadId: upB.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }] } }));
    expect((await body(sb, bucketB, 'upload')).equals(part)).toBe(true);
  }, 120_000);
});

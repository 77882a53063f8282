/**
 * Bucket versioning (lakecrypt issue #23 item 1): PutBucketVersioning on an S3 backend, whose own versioning holds
 * the ciphertext versions while every version keeps its own header (docs/DESIGN.md "Versions"). Reads, deletes,
 * delete markers, copies and listings by version id; a bucket emptied as Terraform does; KEK revocation, block
 * revocation, re-key and gc across versions. The same suite runs on the fs backend, whose versions are kept by
 * src/backend/fs-versions.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revokeObject } from '../../src/admin/objects.ts';
import { runGc } from '../../src/admin/gc.ts';
import { listPages } from '../../src/admin/util.ts';
import type { RewrapState } from '../../src/admin/rewrap.ts';
import { peekHeader } from '../../src/engine/index.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { pollUntil } from '../../tools/wait.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { AdminClient } from '../../src/cli/client.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { cleanEnv, expectClean, run } from '../clients/util.ts';
import { pythonExe, pythonHas } from '../clients/python.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import path from 'node:path';

const TIMEOUT = 120_000;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const enc = encodeURIComponent;

async function s3err(p: Promise<unknown>): Promise<{ name: string; status: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as S3ServiceException;
    return { name: err.name, status: err.$metadata?.httpStatusCode ?? 0 };
  }
  throw new Error('expected an S3 error');
}

async function get(s3: S3Client, Bucket: string, Key: string, VersionId?: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket, Key, VersionId }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** A gateway of `kind` with the admin API beside it (as test/admin/helpers.ts's harness, which runs on s3 only). */
async function startHarness(kind: 'fs' | 's3'): Promise<{ gw: TestGateway; s3: S3Client; client: AdminClient; close(): Promise<void> }> {
  const gw = await startTestGateway(kind, { blockSize: 65536 });
  let admin: RunningAdmin;
  try {
    admin = await startAdmin({ gateway: gw.running, metrics: createMetrics(), resumeJobs: false });
  } catch (e) {
    await gw.close();
    throw e;
  }
  return {
    gw,
    s3: gw.client({ accessKey: gw.accessKey, secretKey: gw.secretKey }),
    client: new AdminClient({ url: admin.url, accessKey: gw.accessKey, secretKey: gw.secretKey }),
    async close() {
      await admin.close();
      await gw.close();
    },
  };
}

/** Version ids as each backend issues them: MinIO's UUIDs, the fs backend's 32 hex digits (fs-versions.ts). */
const VERSION_ID = { s3: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, fs: /^[0-9a-f]{32}$/ };

versionsEnabledSuite('s3');
versionsEnabledSuite('fs');

function versionsEnabledSuite(kind: 'fs' | 's3') {
  describe(`bucket versioning on the ${kind} backend`, () => {
    let h: Awaited<ReturnType<typeof startHarness>>;
    let s3: S3Client;
    const meta = () => h.gw.running.gateway.store.metaBucket;
    /** Header paths of one bucket, with the header key number each is sealed under. */
    const headers = async (bucket: string): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      for await (const page of listPages(h.gw.backend, meta(), `h/${bucket}/`)) {
        for (const o of page) out.set(o.key, peekHeader((await h.gw.backend.getBuffer(meta(), o.key)).data).keyNumber);
      }
      return out;
    };

    /** A bucket with versioning enabled and three versions of `k` (v[0] oldest), each a different size. */
    async function threeVersions(): Promise<{ bucket: string; bodies: Buffer[]; ids: string[] }> {
      const bucket = uniqueBucket('vers');
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
      const bodies = [randomBytes(1000), randomBytes(70_000), randomBytes(5)];
      const ids: string[] = [];
      for (const b of bodies) {
        const r = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: b }));
        expect(r.VersionId).toMatch(VERSION_ID[kind]);
        expect(r.ETag).toBe(`"${md5(b)}"`);
        ids.push(r.VersionId!);
      }
      return { bucket, bodies, ids };
    }

    beforeAll(async () => {
      h = await startHarness(kind);
      s3 = h.s3;
    }, TIMEOUT);
    afterAll(async () => {
      await h?.close();
    });

    it('PutBucketVersioning Enabled/Suspended is what GetBucketVersioning answers; a bad body is MalformedXML', async () => {
      const bucket = uniqueBucket('vstate');
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      expect((await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status).toBeUndefined();
      await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
      expect((await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status).toBe('Enabled');
      await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }));
      expect((await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }))).Status).toBe('Suspended');
      expect(await s3err(s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'On' as 'Enabled' } })))).toEqual({
        name: 'MalformedXML',
        status: 400,
      });
    }, TIMEOUT);

    it('every version reads back its own bytes by id; a delete makes a marker; listing shows versions and the marker', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      for (const [i, id] of ids.entries()) {
        expect((await get(s3, bucket, 'k', id)).equals(bodies[i])).toBe(true);
        const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k', VersionId: id }));
        expect(head.ContentLength).toBe(bodies[i].length);
        expect(head.ETag).toBe(`"${md5(bodies[i])}"`);
        expect(head.VersionId).toBe(id);
      }
      // a range of an old version
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k', VersionId: ids[1], Range: 'bytes=65530-65545' }));
      expect(Buffer.from(await r.Body!.transformToByteArray()).equals(bodies[1].subarray(65530, 65546))).toBe(true);
      expect((await get(s3, bucket, 'k')).equals(bodies[2])).toBe(true);
      // three versions, three headers: none was dropped by the overwrites
      expect((await headers(bucket)).size).toBe(3);

      const del = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k' }));
      expect(del.DeleteMarker).toBe(true);
      expect(del.VersionId).toBeTruthy();
      expect(await s3err(get(s3, bucket, 'k'))).toMatchObject({ status: 404 });
      expect((await get(s3, bucket, 'k', ids[0])).equals(bodies[0])).toBe(true);
      expect((await headers(bucket)).size).toBe(3);

      const v = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      expect(v.Versions!.map((x) => [x.VersionId, x.IsLatest, x.Size, x.ETag])).toEqual(
        [2, 1, 0].map((i) => [ids[i], false, bodies[i].length, `"${md5(bodies[i])}"`]),
      );
      expect(v.DeleteMarkers!.map((x) => [x.Key, x.VersionId, x.IsLatest])).toEqual([['k', del.VersionId, true]]);

      // deleting one version for good: it is gone, with its header; the others stay
      const gone = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', VersionId: ids[1] }));
      expect(gone.VersionId).toBe(ids[1]);
      expect(await s3err(get(s3, bucket, 'k', ids[1]))).toMatchObject({ name: 'NoSuchVersion', status: 404 });
      expect((await headers(bucket)).size).toBe(2);
      // removing the marker makes the newest version current again
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k', VersionId: del.VersionId }));
      expect((await get(s3, bucket, 'k')).equals(bodies[2])).toBe(true);
    }, TIMEOUT);

    it('CopySource by versionId, onto another key and onto its own key (a restore): each copy its own version', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      const c = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'copy', CopySource: `${bucket}/k?versionId=${ids[0]}` }));
      expect(c.CopySourceVersionId).toBe(ids[0]);
      expect((await get(s3, bucket, 'copy')).equals(bodies[0])).toBe(true);
      const restore = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'k', CopySource: `${bucket}/k?versionId=${ids[1]}` }));
      expect(restore.VersionId).toBeTruthy();
      expect((await get(s3, bucket, 'k')).equals(bodies[1])).toBe(true);
      for (const [i, id] of ids.entries()) expect((await get(s3, bucket, 'k', id)).equals(bodies[i])).toBe(true);
      // an unknown version of the source
      expect(await s3err(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'x', CopySource: `${bucket}/k?versionId=0b2c3d4e-1111-2222-3333-444455556666` })))).toMatchObject({ status: 404 });
    }, TIMEOUT);

    it('a multipart upload over versions is one more version: the older ones keep their headers and read back', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'k' }));
      const parts = [randomBytes(5 * 1024 * 1024), randomBytes(1234)];
      const etags: string[] = [];
      for (const [i, p] of parts.entries()) {
        etags.push((await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'k', UploadId: up.UploadId, PartNumber: i + 1, Body: p }))).ETag!);
      }
      const done = await s3.send(new CompleteMultipartUploadCommand({
        Bucket: bucket, Key: 'k', UploadId: up.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }));
      await h.gw.running.gateway.store.settled();
      // Complete names the version it made, as S3 does: the latest one in the listing
      const latest = (await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }))).Versions!.find((x) => x.IsLatest)!;
      expect(done.VersionId).toBeTruthy();
      expect(done.VersionId).toBe(latest.VersionId);
      expect((await get(s3, bucket, 'k')).equals(Buffer.concat(parts))).toBe(true);
      for (const [i, id] of ids.entries()) expect((await get(s3, bucket, 'k', id)).equals(bodies[i])).toBe(true);
      const v = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      expect(v.Versions!.map((x) => x.Size)).toEqual([parts[0].length + parts[1].length, ...[2, 1, 0].map((i) => bodies[i].length)]);
      expect((await headers(bucket)).size).toBe(4);
    }, TIMEOUT);

    it('a bucket emptied as Terraform does (ListObjectVersions + DeleteObjects by key and version) is deleted, and no header is left', async () => {
      const { bucket } = await threeVersions();
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'other', Body: 'x' }));
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'other' }));
      const v = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      const all = [...(v.Versions ?? []), ...(v.DeleteMarkers ?? [])].map((x) => ({ Key: x.Key!, VersionId: x.VersionId! }));
      expect(all.length).toBe(5);
      const d = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: all } }));
      expect(d.Errors ?? []).toEqual([]);
      expect(d.Deleted!.length).toBe(5);
      expect(d.Deleted!.filter((x) => x.DeleteMarker).map((x) => x.Key)).toEqual(['other']);
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      expect((await headers(bucket)).size).toBe(0);
    }, TIMEOUT);

    it('a KEK revocation denies every version, and a restore brings them all back', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k' }));
      await h.client.post(`/admin/keys/${enc(bucket)}/revoke`, { version: 1 });
      for (const id of ids) expect(await s3err(get(s3, bucket, 'k', id))).toMatchObject({ name: 'KeyRevoked', status: 403 });
      await h.client.post(`/admin/keys/${enc(bucket)}/restore`, { version: 1 });
      for (const [i, id] of ids.entries()) expect((await get(s3, bucket, 'k', id)).equals(bodies[i])).toBe(true);
    }, TIMEOUT);

    it('a block revocation of an old version denies that version only', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      // version 1 (70,000 bytes) has two 64 KiB blocks: revoke its second
      const r = await revokeObject(h.gw.running.gateway.store, h.gw.running.keys, bucket, 'k', 1, 'test', ids[1]);
      expect(r).toMatchObject({ block: 1, resealed: true, versionId: ids[1] });
      // the admin API (and so the CLI) takes the version too: block 0 of the oldest version
      expect(await h.client.post('/admin/objects/revoke', { bucket, key: 'k', block: 0, versionId: ids[0] })).toMatchObject({ block: 0, versionId: ids[0] });
      expect(await s3err(get(s3, bucket, 'k', ids[0]))).toMatchObject({ status: 403 });
      expect(await s3err(get(s3, bucket, 'k', ids[1]))).toMatchObject({ status: 403 });
      const first = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k', VersionId: ids[1], Range: 'bytes=0-99' }));
      expect(Buffer.from(await first.Body!.transformToByteArray()).equals(bodies[1].subarray(0, 100))).toBe(true);
      expect((await get(s3, bucket, 'k', ids[2])).equals(bodies[2])).toBe(true);
    }, TIMEOUT);

    it('a rotation and re-key job reseals the headers of non-current versions too; every version still reads', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k' }));
      await h.client.post(`/admin/keys/${enc(bucket)}/rotate`);
      await h.client.post(`/admin/rewrap/${enc(bucket)}`, { rekey: true });
      let job: RewrapState | undefined;
      await pollUntil(async () => {
        job = (await h.client.get<{ job: RewrapState }>(`/admin/rewrap/${enc(bucket)}`, { scan: '0' })).job;
        return job?.state === 'done' || job?.state === 'failed';
      }, { timeoutMs: 60_000, intervalMs: 50, retryErrors: false });
      expect(job).toMatchObject({ state: 'done', rewrapped: 3, failed: 0 });
      const after = await headers(bucket);
      expect([...after.values()]).toEqual([job!.rekeyTo, job!.rekeyTo, job!.rekeyTo]);
      for (const [i, id] of ids.entries()) expect((await get(s3, bucket, 'k', id)).equals(bodies[i])).toBe(true);
    }, TIMEOUT);

    it('gc keeps the headers of non-current versions and removes a real orphan', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k' }));
      const orphan = `h/${bucket}/${createHash('sha256').update('k').digest('hex')}/${randomBytes(16).toString('hex')}`;
      await h.gw.backend.putObject(meta(), orphan, Buffer.from('x'), { size: 1 });
      const ctx = { backend: h.gw.backend, store: h.gw.running.gateway.store, keys: h.gw.running.keys, metaBucket: meta() };
      const report = await runGc(ctx, { apply: true, olderThanMs: 0 });
      expect(report.orphanHeaders.filter((p) => p.startsWith(`h/${bucket}/`))).toEqual([orphan]);
      expect([...(await headers(bucket)).keys()].sort()).not.toContain(orphan);
      expect((await headers(bucket)).size).toBe(3);
      h.gw.running.gateway.store.headers.clear();
      for (const [i, id] of ids.entries()) expect((await get(s3, bucket, 'k', id)).equals(bodies[i])).toBe(true);
    }, TIMEOUT);

    it("boto3: versioning enabled, bucket.object_versions read back version by version, then object_versions.delete() and bucket.delete()", async () => {
      expect(pythonHas(['boto3']), 'pip install boto3 (scripts/test-deps.sh)').toEqual([]);
      const bucket = uniqueBucket('vboto');
      const tmp = makeTmpDir('lc-vboto-');
      const script = [
        'import hashlib, json, os, sys, boto3',
        'from botocore.config import Config',
        's3 = boto3.resource("s3", endpoint_url=sys.argv[1], aws_access_key_id=os.environ["LC_ACCESS_KEY"], aws_secret_access_key=os.environ["LC_SECRET_KEY"], region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))',
        'b = s3.create_bucket(Bucket=sys.argv[2])',
        'b.Versioning().enable()',
        'written = {}',
        'for key in ["a", "b/c"]:',
        '    for i in range(2):',
        '        body = os.urandom(1000 + 70000 * i)',
        '        written[b.put_object(Key=key, Body=body).version_id] = hashlib.md5(body).hexdigest()',
        'b.Object("a").delete()',
        'seen = {}',
        'markers = 0',
        'for v in b.object_versions.page_size(2):',
        '    if v.size is None:',
        '        markers += 1',
        '        continue',
        '    seen[v.id] = [hashlib.md5(v.get()["Body"].read()).hexdigest(), v.e_tag.strip(chr(34))]',
        'res = b.object_versions.delete()',
        'errors = [e for r in res for e in r.get("Errors", [])]',
        'b.delete()',
        'print(json.dumps({"written": written, "seen": seen, "markers": markers, "errors": errors}))',
      ].join('\n');
      try {
        const env = cleanEnv(path.join(tmp.path, 'py-home'), { LC_ACCESS_KEY: h.gw.accessKey, LC_SECRET_KEY: h.gw.secretKey });
        const r = expectClean(await run(pythonExe(), ['-c', script, h.gw.url, bucket], { env }));
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { written: Record<string, string>; seen: Record<string, string[]>; markers: number; errors: unknown[] };
        expect(Object.keys(out.written).length).toBe(4);
        expect(out.seen).toEqual(Object.fromEntries(Object.entries(out.written).map(([id, m]) => [id, [m, m]])));
        expect(out.markers).toBe(1);
        expect(out.errors).toEqual([]);
        expect((await headers(bucket)).size).toBe(0);
      } finally {
        tmp.cleanup();
      }
    }, TIMEOUT);

    it('Suspended: a new write replaces the null version (and its header), older versions stay', async () => {
      const { bucket, bodies, ids } = await threeVersions();
      await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }));
      const a = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'null one' }));
      const b = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'null two' }));
      expect([a.VersionId ?? 'null', b.VersionId ?? 'null']).toEqual(['null', 'null']);
      await h.gw.running.gateway.store.settled();
      expect((await get(s3, bucket, 'k')).toString()).toBe('null two');
      expect((await get(s3, bucket, 'k', 'null')).toString()).toBe('null two');
      for (const [i, id] of ids.entries()) expect((await get(s3, bucket, 'k', id)).equals(bodies[i])).toBe(true);
      expect((await headers(bucket)).size).toBe(4);
    }, TIMEOUT);
  });
}

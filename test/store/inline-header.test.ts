/**
 * Inline headers (data format 2, src/store/inline-header.ts; issue #22): a small single-PUT object on a bucket whose
 * versioning was never enabled keeps its sealed header in its data object's backend metadata (`lc-h`, `lc-fmt: 2`),
 * so the PUT is one backend write and a cold GET or HEAD one backend read.
 *
 * Per backend (fs, s3 on the shared MinIO): gateway `gw` (inline on, the default) over a backend wrapper that
 * records every call (`calls`), gateway `off` (inlineHeaderMax 0) on the same storage, meta bucket and CMK, and the
 * admin API beside `gw`. Backend calls are counted by bucket; the epoch poll (`keystore/epoch`, every 100 ms) is
 * left out of the counts. A GET is made cold by clearing the gateway's header cache (keys stay cached).
 */
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGc } from '../../src/admin/gc.ts';
import { revokeObject } from '../../src/admin/objects.ts';
import type { RewrapState } from '../../src/admin/rewrap.ts';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import { AdminClient } from '../../src/cli/client.ts';
import { peekHeader } from '../../src/engine/index.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { META_FMT, META_HEADER, META_OID, type ObjectStore } from '../../src/store/index.ts';
import { MARKER, startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { signedRequest, type RawResponse } from '../../tools/sigv4.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil } from '../../tools/wait.ts';
import { recording, type Call } from '../helpers/recording-backend.ts';
import { minioBackend, uniqueBucket } from '../helpers/s3.ts';

const KiB = 1024;
const BLOCK = 64 * KiB;
const EPOCH_KEY = 'keystore/epoch';
const WRITES = new Set(['putObject', 'copyObject', 'deleteObject', 'createMultipart', 'uploadPart', 'completeMultipart', 'abortMultipart', 'createBucket', 'putBucketVersioning']);
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const enc = encodeURIComponent;

/** The same backend with its bucket listing cut to `buckets`: gc then sees this suite's buckets only, never another test's. */
function onlyBuckets(inner: Backend, buckets: Set<string>): Backend {
  return new Proxy(inner, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (prop === 'listBuckets') return async () => (await target.listBuckets()).filter((b) => buckets.has(b.name));
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe.each(['fs', 's3'] as const)('inline headers (data format 2) on the %s backend', (kind) => {
  const tmp = makeTmpDir(`lc-inline-${kind}-`);
  const metaName = kind === 's3' ? `lcmeta-${randomBytes(4).toString('hex')}` : 'lakecrypt-meta';
  const storage = (): Backend => (kind === 's3' ? minioBackend() : createBackend({ kind: 'fs', dataDir: path.join(tmp.path, 'store') }));
  const mine = new Set<string>();
  let inner: Backend;
  let offBackend: Backend;
  let calls: Call[];
  let gw: TestGateway;
  let off: TestGateway;
  let admin: RunningAdmin;
  let api: AdminClient;
  let s3: S3Client;
  let s3off: S3Client;

  beforeAll(async () => {
    inner = storage();
    const rec = recording(inner);
    calls = rec.calls;
    gw = await startTestGateway(kind, { backend: rec.backend, dataDir: tmp.path, metaBucket: metaName, blockSize: BLOCK });
    offBackend = storage();
    off = await startTestGateway(kind, { backend: offBackend, dataDir: tmp.path, metaBucket: metaName, blockSize: BLOCK, inlineHeaderMax: 0 });
    admin = await startAdmin({ gateway: gw.running, metrics: createMetrics(), resumeJobs: false });
    api = new AdminClient({ url: admin.url, accessKey: gw.accessKey, secretKey: gw.secretKey });
    s3 = gw.client();
    s3off = off.client();
  });
  afterAll(async () => {
    s3?.destroy();
    s3off?.destroy();
    await admin?.close();
    await gw?.close();
    await off?.close();
    await inner?.close();
    await offBackend?.close();
    tmp.cleanup();
  });

  const store = (): ObjectStore => gw.running.gateway.store;
  const meta = (): string => gw.running.gateway.metaBucket;
  const creds = () => ({ accessKey: gw.accessKey, secretKey: gw.secretKey });
  /** Calls since `mark`, without the epoch poll. */
  const since = (mark: number): Call[] => calls.slice(mark).filter((c) => !(c.bucket === meta() && c.key === EPOCH_KEY));
  const cold = () => {
    store().headers.clear();
    off.running.gateway.store.headers.clear();
  };

  async function newBucket(prefix = 'inl'): Promise<string> {
    const b = uniqueBucket(`${prefix}-${kind}`);
    await s3.send(new CreateBucketCommand({ Bucket: b }));
    mine.add(b);
    return b;
  }
  async function put(client: S3Client, bucket: string, key: string, body: Buffer, userMeta?: Record<string, string>): Promise<string> {
    return (await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, Metadata: userMeta }))).ETag!;
  }
  async function get(client: S3Client, bucket: string, key: string): Promise<Buffer> {
    const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await r.Body!.transformToByteArray());
  }
  /** A raw signed request to `gw`: the exact status, the error code (x-lakecrypt-error-code, HEAD too) and the bytes. */
  async function raw(method: 'GET' | 'HEAD', bucket: string, key: string, headers?: Record<string, string>): Promise<RawResponse & { code: string }> {
    const r = await signedRequest(gw.url, creds(), { method, path: `/${bucket}/${key.split('/').map(enc).join('/')}`, headers });
    return { ...r, code: String(r.headers['x-lakecrypt-error-code'] ?? '') };
  }
  /** The data object's backend metadata, read from the backend directly. */
  async function dataMeta(bucket: string, key: string): Promise<Record<string, string>> {
    const info = await inner.headObject(bucket, key);
    expect(info, `${bucket}/${key}`).not.toBeNull();
    return info!.meta;
  }
  const headerObject = async (bucket: string, key: string, oid: string) => inner.headObject(meta(), store().headerPath(bucket, key, oid));
  /** Replace the data object's backend metadata in place (its bytes kept), as someone with backend access could. */
  async function setDataMeta(bucket: string, key: string, m: Record<string, string>): Promise<void> {
    await inner.copyObject(bucket, key, bucket, key, { meta: m });
  }
  /** A body of `size` bytes that contains MARKER (so a plaintext leak is findable). */
  const body = (size: number): Buffer => {
    const b = randomBytes(size);
    Buffer.from(MARKER).copy(b, 0);
    Buffer.from(MARKER).copy(b, size - MARKER.length);
    return b;
  };
  /** Open inline header bytes with the gateway's own door, as a read would. */
  const openInline = (bucket: string, key: string, m: Record<string, string>) =>
    store().door.open(Buffer.from(m[META_HEADER], 'base64'), { bucket, key, oidHex: m[META_OID] });

  it('a small PUT is one backend write, on the data bucket: the data object carries its sealed header, no plaintext or user metadata', async () => {
    const bucket = await newBucket();
    // the first write to a bucket asks its versioning state (cached per bucket) and makes the dataset's keys
    await put(s3, bucket, 'warm', Buffer.from('warm'));
    await store().settled();
    const secret = `metaval-${randomBytes(8).toString('hex')}`;
    const metaName2 = `mname${randomBytes(4).toString('hex')}`;
    for (const [key, userMeta] of [['plain', undefined], ['with-meta', { [metaName2]: secret }]] as const) {
      const data = body(4 * KiB);
      const mark = calls.length;
      const etag = await put(s3, bucket, key, data, userMeta);
      await store().settled();
      const done = since(mark);
      expect(done.filter((c) => WRITES.has(c.op)), JSON.stringify(done)).toEqual([{ op: 'putObject', bucket, key }]);
      expect(done.filter((c) => c.bucket === meta()), JSON.stringify(done)).toEqual([]);
      expect(etag).toBe(`"${md5(data)}"`);

      const m = await dataMeta(bucket, key);
      expect(m[META_FMT]).toBe('2');
      expect(m[META_HEADER]).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
      // nothing else in the backend metadata: no user metadata name or value, no size or content type in clear
      expect(Object.keys(m).sort()).toEqual(['lc-etag', 'lc-fmt', 'lc-h', 'lc-oid']);
      expect(await headerObject(bucket, key, m[META_OID])).toBeNull();
      const sealed = Buffer.from(m[META_HEADER], 'base64');
      const stored = (await inner.getBuffer(bucket, key)).data;
      for (const needle of [MARKER, secret, metaName2]) {
        expect(JSON.stringify(m)).not.toContain(needle);
        expect(sealed.includes(Buffer.from(needle)), needle).toBe(false);
        expect(stored.includes(Buffer.from(needle)), needle).toBe(false);
      }
      // and the sealed header is the real one: it opens to the object's keys, size and metadata
      const h = await openInline(bucket, key, m);
      expect(h.parts.map((p) => p.plaintextSize)).toEqual([4 * KiB]);
      expect(h.meta.user).toEqual(userMeta ?? {});
      expect(h.checksums.md5).toBe(md5(data));
    }
  });

  it('a cold GET is one getObject and a cold HEAD one headObject, with the bytes, MD5 ETag and user metadata; DELETE touches no header', async () => {
    const bucket = await newBucket();
    const data = body(4 * KiB);
    await put(s3, bucket, 'k', data, { colour: 'blue' });
    expect((await get(s3, bucket, 'k')).equals(data)).toBe(true); // keys warm

    cold();
    let mark = calls.length;
    const g = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k' }));
    expect(Buffer.from(await g.Body!.transformToByteArray()).equals(data)).toBe(true);
    await store().settled();
    expect(since(mark), 'cold GET').toEqual([{ op: 'getObject', bucket, key: 'k' }]);
    expect(g.ETag).toBe(`"${md5(data)}"`);
    expect(g.Metadata).toEqual({ colour: 'blue' });
    expect(g.ContentLength).toBe(4 * KiB);

    cold();
    mark = calls.length;
    const hd = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k' }));
    await store().settled();
    expect(since(mark), 'cold HEAD').toEqual([{ op: 'headObject', bucket, key: 'k' }]);
    expect(hd.ETag).toBe(`"${md5(data)}"`);
    expect(hd.Metadata).toEqual({ colour: 'blue' });
    expect(hd.ContentLength).toBe(4 * KiB);

    // listings give the MD5 and the plaintext size from the sealed metadata, as for format 1
    const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(l.Contents?.map((o) => [o.Key, o.ETag, o.Size])).toEqual([['k', `"${md5(data)}"`, 4 * KiB]]);

    mark = calls.length;
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'k' }));
    await store().settled();
    expect(since(mark).filter((c) => c.bucket === meta()), 'DELETE').toEqual([]);
    expect(await inner.headObject(bucket, 'k')).toBeNull();
  });

  it('inlineHeaderMax 0 writes format 1 (a header object), and each gateway reads what the other wrote', async () => {
    const bucket = await newBucket();
    const a = body(4 * KiB);
    await put(s3off, bucket, 'old', a, { who: 'off' });
    const mo = await dataMeta(bucket, 'old');
    expect(mo[META_FMT]).toBe('1');
    expect(mo[META_HEADER]).toBeUndefined();
    expect(await headerObject(bucket, 'old', mo[META_OID])).not.toBeNull();

    const b = body(4 * KiB);
    await put(s3, bucket, 'new', b, { who: 'on' });
    const mn = await dataMeta(bucket, 'new');
    expect(mn[META_FMT]).toBe('2');
    expect(await headerObject(bucket, 'new', mn[META_OID])).toBeNull();

    cold();
    for (const [client, key, data, who] of [
      [s3, 'old', a, 'off'],
      [s3off, 'new', b, 'on'],
      [s3, 'new', b, 'on'],
      [s3off, 'old', a, 'off'],
    ] as const) {
      const g = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(Buffer.from(await g.Body!.transformToByteArray()).equals(data), key).toBe(true);
      expect(g.ETag).toBe(`"${md5(data)}"`);
      expect(g.Metadata).toEqual({ who });
    }
    // a cold read of the format-1 object costs its header object too
    cold();
    const mark = calls.length;
    expect((await get(s3, bucket, 'old')).equals(a)).toBe(true);
    expect(since(mark).map((c) => `${c.op} ${c.bucket === meta() ? 'meta' : 'data'}`).sort()).toEqual(['getBuffer meta', 'getObject data']);
  });

  it('a header too big for the metadata (a 1000-byte key and 1.5 KB of user metadata) falls back to format 1; the largest inline one keeps the metadata under 2 KiB', async () => {
    const bucket = await newBucket();
    // 1000 bytes in path segments of < 255 (one file name each on the fs backend)
    const key = Array.from({ length: 9 }, (_, i) => String(i).padEnd(99, 'k')).join('/') + '/';
    const longKey = key + 'x'.repeat(1000 - key.length);
    expect(Buffer.byteLength(longKey)).toBe(1000);
    const userMeta = { a: 'A'.repeat(500), b: 'B'.repeat(500), c: 'C'.repeat(500) };
    const data = body(4 * KiB);
    await put(s3, bucket, longKey, data, userMeta);
    const m = await dataMeta(bucket, longKey);
    expect(m[META_FMT]).toBe('1');
    expect(m[META_HEADER]).toBeUndefined();
    expect(await headerObject(bucket, longKey, m[META_OID])).not.toBeNull();
    cold();
    const g = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: longKey }));
    expect(Buffer.from(await g.Body!.transformToByteArray()).equals(data)).toBe(true);
    expect(g.Metadata).toEqual(userMeta);

    // such a PUT over an inline object: the replaced version's header went with it, nothing to delete in the meta bucket
    await put(s3, bucket, 'k', body(KiB));
    expect((await dataMeta(bucket, 'k'))[META_FMT]).toBe('2');
    const mark = calls.length;
    await put(s3, bucket, 'k', data, userMeta);
    await store().settled();
    const m2 = await dataMeta(bucket, 'k');
    expect(m2[META_FMT]).toBe('1');
    expect(since(mark).filter((c) => c.bucket === meta() && WRITES.has(c.op))).toEqual([{ op: 'putObject', bucket: meta(), key: store().headerPath(bucket, 'k', m2[META_OID]) }]);

    // growing user metadata: inline while it fits, then format 1; the data object's metadata stays within S3's 2 KiB
    let lastInline = 0;
    let sawFormat1 = false;
    for (let n = 200; n <= 1400 && !sawFormat1; n += 100) {
      await put(s3, bucket, `grow/${n}`, Buffer.from('g'), { v: 'v'.repeat(n) });
      const gm = await dataMeta(bucket, `grow/${n}`);
      if (gm[META_FMT] === '2') {
        lastInline = Object.entries(gm).reduce((s, [k, v]) => s + k.length + v.length, 0);
        expect(gm[META_HEADER].length).toBeLessThanOrEqual(1536);
      } else sawFormat1 = true;
    }
    expect(sawFormat1).toBe(true);
    expect(lastInline).toBeGreaterThan(0);
    expect(lastInline).toBeLessThanOrEqual(2048);
  });

  it('a bucket whose versioning was enabled through the gateway gets format 1 at once; its older inline version still reads', async () => {
    const bucket = await newBucket('inlv');
    const v0 = body(4 * KiB);
    await put(s3, bucket, 'k', v0); // the policy has now seen the bucket unversioned
    expect((await dataMeta(bucket, 'k'))[META_FMT]).toBe('2');
    await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    const v1 = body(4 * KiB);
    await put(s3, bucket, 'k', v1);
    await put(s3, bucket, 'other', v1);
    for (const key of ['k', 'other']) {
      const m = await dataMeta(bucket, key);
      expect(m[META_FMT], key).toBe('1');
      expect(await headerObject(bucket, key, m[META_OID]), key).not.toBeNull();
    }
    cold();
    const versions = (await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'k' }))).Versions ?? [];
    expect(versions.length).toBe(2);
    const older = versions.find((v) => !v.IsLatest)!;
    const g = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k', VersionId: older.VersionId }));
    expect(Buffer.from(await g.Body!.transformToByteArray()).equals(v0)).toBe(true);
    expect((await get(s3, bucket, 'k')).equals(v1)).toBe(true);
    // the non-current inline version still references its header key: the scan counts it beside the two header objects
    expect(await admin.rewrap.scan(bucket)).toMatchObject({ total: 3, byHeaderKey: { 1: 3 } });
  });

  it('a tampered lc-h is refused (500 IntegrityError on GET and HEAD, never plaintext): a flipped byte, one from another key, none', async () => {
    const bucket = await newBucket();
    const elsewhere = await newBucket();
    const keys = ['flip-aad', 'flip-body', 'flip-tag', 'moved', 'moved-all', 'moved-dataset', 'removed', 'donor'];
    for (const k of keys) await put(s3, bucket, k, body(4 * KiB));
    await put(s3, elsewhere, 'donor', body(4 * KiB));
    const donor = await dataMeta(bucket, 'donor');
    const foreign = await dataMeta(elsewhere, 'donor');
    const flip = (m: Record<string, string>, at: (len: number) => number) => {
      const b = Buffer.from(m[META_HEADER], 'base64');
      b[at(b.length)] ^= 0x01;
      return { ...m, [META_HEADER]: b.toString('base64') };
    };
    const tamper: Record<string, (m: Record<string, string>) => Record<string, string>> = {
      'flip-aad': (m) => flip(m, () => 63), // createdAt, in the fixed fields (the AAD)
      'flip-body': (m) => flip(m, (n) => Math.floor((82 + n) / 2)),
      'flip-tag': (m) => flip(m, (n) => n - 1),
      moved: (m) => ({ ...m, [META_HEADER]: donor[META_HEADER] }),
      'moved-all': () => ({ ...donor }), // oid, header and sealed ETag of another key of the same size
      'moved-dataset': () => ({ ...foreign }), // the same from another bucket (another dataset)
      removed: (m) => {
        const rest = { ...m };
        delete rest[META_HEADER];
        return rest;
      },
    };
    for (const [key, how] of Object.entries(tamper)) {
      await setDataMeta(bucket, key, how(await dataMeta(bucket, key)));
      expect((await dataMeta(bucket, key))[META_FMT], key).toBe('2');
    }
    cold();
    for (const key of Object.keys(tamper)) {
      const g = await raw('GET', bucket, key);
      expect([g.status, g.code], `GET ${key}`).toEqual([500, 'IntegrityError']);
      expect(g.body.includes(Buffer.from(MARKER)), key).toBe(false);
      const hd = await raw('HEAD', bucket, key);
      expect([hd.status, hd.code], `HEAD ${key}`).toEqual([500, 'IntegrityError']);
      const rg = await raw('GET', bucket, key, { range: 'bytes=0-99' });
      expect([rg.status, rg.code], `ranged GET ${key}`).toEqual([500, 'IntegrityError']);
    }
    // the untouched donor still reads
    expect((await raw('GET', bucket, 'donor')).status).toBe(200);
  });

  it('a DEK revocation reseals the inline header with the DEK erased; a replay of the old lc-h is still refused', async () => {
    const bucket = await newBucket();
    const data = body(100 * KiB); // two 64 KiB blocks
    await put(s3, bucket, 'k', data);
    const before = await dataMeta(bucket, 'k');
    expect(before[META_FMT]).toBe('2');
    expect((await get(s3, bucket, 'k')).equals(data)).toBe(true);

    const r = await api.post<{ resealed: boolean; block: number }>('/admin/objects/revoke', { bucket, key: 'k', block: 0 });
    expect(r).toMatchObject({ resealed: true, block: 0 });
    const after = await dataMeta(bucket, 'k');
    expect(after[META_OID]).toBe(before[META_OID]);
    expect(after[META_FMT]).toBe('2');
    expect(after[META_HEADER]).not.toBe(before[META_HEADER]);
    expect(await headerObject(bucket, 'k', after[META_OID])).toBeNull();
    const h = await openInline(bucket, 'k', after);
    expect(h.parts[0].deks[0]).toBeNull();
    expect(h.parts[0].deks[1]).toBeInstanceOf(Buffer);
    expect((await inner.getBuffer(bucket, 'k')).data.length).toBe((await inner.headObject(bucket, 'k'))!.size); // data kept

    const refused = async (what: string) => {
      cold();
      const g = await raw('GET', bucket, 'k');
      expect([g.status, g.code], what).toEqual([403, 'KeyRevoked']);
      expect(g.body.includes(Buffer.from(MARKER)), what).toBe(false);
      // the other block still reads
      const tail = await raw('GET', bucket, 'k', { range: `bytes=${BLOCK}-${BLOCK + 99}` });
      expect(tail.status, what).toBe(206);
      expect(tail.body.equals(data.subarray(BLOCK, BLOCK + 100)), what).toBe(true);
    };
    await refused('after the revocation');

    // replay: the pre-revocation lc-h (its DEK 0 intact) written back is refused by the dataset's revocation list
    expect((await openInline(bucket, 'k', before)).parts[0].deks[0]).toBeInstanceOf(Buffer);
    await setDataMeta(bucket, 'k', before);
    await refused('after a replay of the old lc-h');

    // a whole-object revocation, through the module itself: every DEK erased
    await put(s3, bucket, 'all', body(100 * KiB));
    const all = await revokeObject(store(), gw.running.keys, bucket, 'all', undefined, 'test');
    expect(all).toMatchObject({ resealed: true, block: 'all' });
    expect((await openInline(bucket, 'all', await dataMeta(bucket, 'all'))).parts[0].deks).toEqual([null, null]);
    cold();
    expect(await raw('GET', bucket, 'all')).toMatchObject({ status: 403, code: 'KeyRevoked' });
  });

  it('a DEK revocation or a re-key of an inline object whose bucket has had versioning enabled since makes no new version', async () => {
    const bucket = await newBucket('inlv');
    const data = body(4 * KiB);
    await put(s3, bucket, 'k', data);
    expect((await dataMeta(bucket, 'k'))[META_FMT]).toBe('2');
    await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    await api.post('/admin/objects/revoke', { bucket, key: 'k', block: 0 });
    cold();
    expect(await raw('GET', bucket, 'k')).toMatchObject({ status: 403, code: 'KeyRevoked' });
    // an in-place copy on a versioning bucket is a new version: the client's version list would grow by a revocation
    const versions = async () => ((await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }))).Versions ?? []).map((v) => v.VersionId);
    expect(await versions()).toEqual(['null']);
    // nor does a re-key of the bucket's headers
    await api.post(`/admin/rewrap/${enc(bucket)}`, { rekey: true });
    await pollUntil(async () => {
      const job = (await api.get<{ job?: RewrapState }>(`/admin/rewrap/${enc(bucket)}`, { scan: '0' })).job;
      return job?.state === 'done' || job?.state === 'failed';
    }, { timeoutMs: 60_000, intervalMs: 50, retryErrors: false });
    expect(await versions()).toEqual(['null']);
    expect(await raw('GET', bucket, 'k')).toMatchObject({ status: 403, code: 'KeyRevoked' });
  });

  it('a re-key reseals every inline header under the new header key and retires the old; a replayed old lc-h is refused', async () => {
    const ds = await newBucket('inlrk');
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 6; i++) {
      const b = body(1000 + i * 20_000);
      bodies.set(`o/${i}`, b);
      await put(s3, ds, `o/${i}`, b);
    }
    // one format-1 object beside them (the meta bucket's walk and the inline walk in one job)
    const f1 = body(2 * KiB);
    bodies.set('f1', f1);
    await put(s3off, ds, 'f1', f1);
    const old = new Map<string, Record<string, string>>();
    for (const k of bodies.keys()) if (k !== 'f1') old.set(k, await dataMeta(ds, k));
    expect([...old.values()].every((m) => m[META_FMT] === '2' && peekHeader(Buffer.from(m[META_HEADER], 'base64')).keyNumber === 1)).toBe(true);

    await api.post(`/admin/rewrap/${enc(ds)}`, { rekey: true });
    let job: RewrapState | undefined;
    await pollUntil(async () => {
      job = (await api.get<{ job: RewrapState }>(`/admin/rewrap/${enc(ds)}`, { scan: '0' })).job;
      return job?.state === 'done' || job?.state === 'failed';
    }, { timeoutMs: 60_000, intervalMs: 50, retryErrors: false });
    expect(job).toMatchObject({ state: 'done', rekeyTo: 2, rewrapped: 7, failed: 0, headerKeysRetired: [1] });
    const view = await api.get<{ headerKeys: { n: number }[] }>(`/admin/keys/${enc(ds)}`);
    expect(view.headerKeys.map((k) => k.n)).toEqual([2]);
    for (const [k, m0] of old) {
      const m = await dataMeta(ds, k);
      expect(m[META_OID], k).toBe(m0[META_OID]);
      expect(m[META_FMT], k).toBe('2');
      expect(peekHeader(Buffer.from(m[META_HEADER], 'base64')).keyNumber, k).toBe(2);
    }
    const f1m = await dataMeta(ds, 'f1');
    expect(peekHeader((await inner.getBuffer(meta(), store().headerPath(ds, 'f1', f1m[META_OID]))).data).keyNumber).toBe(2);
    cold();
    for (const [k, b] of bodies) expect((await get(s3, ds, k)).equals(b), k).toBe(true);
    expect(await admin.rewrap.scan(ds)).toMatchObject({ total: 7, byHeaderKey: { 2: 7 } });

    // the pre-re-key lc-h names the retired header key: refused, never plaintext
    await setDataMeta(ds, 'o/0', old.get('o/0')!);
    cold();
    const g = await raw('GET', ds, 'o/0');
    expect(g.status).toBeGreaterThanOrEqual(400);
    expect(g.body.includes(Buffer.from(MARKER))).toBe(false);
    expect([g.status, g.code]).toEqual([403, 'KeyRevoked']);
  });

  it('the scan counts inline headers, so a dataset holding only inline objects is not deleted', async () => {
    const ds = await newBucket('inlds');
    for (let i = 0; i < 3; i++) await put(s3, ds, `o/${i}`, body(KiB));
    expect((await dataMeta(ds, 'o/0'))[META_FMT]).toBe('2');
    expect(await admin.rewrap.scan(ds)).toMatchObject({ total: 3, format1: 0, byHeaderKey: { 1: 3 }, byVersion: { 1: 3 } });
    const refused = await api.post(AdminClient.path('admin', 'datasets', ds, 'delete'), { confirm: true }).then(
      () => null,
      (e: { code?: string; message: string }) => e,
    );
    expect(refused?.code).toBe('InvalidRequest');
    expect(refused?.message).toMatch(/\b3 header\(s\) still reference dataset /);
    // a prefix dataset holding inline objects only: refused as well
    await api.post(AdminClient.path('admin', 'datasets', `${ds}/p`, 'create'));
    await pollUntil(() => gw.running.keys.datasetFor(ds, 'p/x') === `${ds}/p`, { timeoutMs: 5000, intervalMs: 20 });
    await put(s3, ds, 'p/x', body(KiB));
    expect((await dataMeta(ds, 'p/x'))[META_FMT]).toBe('2');
    expect((await admin.rewrap.scan(`${ds}/p`)).total).toBe(1);
    await expect(api.post(AdminClient.path('admin', 'datasets', `${ds}/p`, 'delete'), { confirm: true })).rejects.toMatchObject({ code: 'InvalidRequest' });
    cold();
    expect((await raw('GET', ds, 'p/x')).status).toBe(200);
    expect((await raw('GET', ds, 'o/2')).status).toBe(200);
  });

  it('copies of an inline object (to another key, and in place with new metadata) read back', async () => {
    const bucket = await newBucket();
    const data = body(4 * KiB);
    await put(s3, bucket, 'src', data, { v: '1' });
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst', CopySource: `${bucket}/src` }));
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'src', CopySource: `${bucket}/src`, MetadataDirective: 'REPLACE', Metadata: { v: '2' } }));
    await store().settled();
    cold();
    for (const [key, v] of [['src', '2'], ['dst', '1']]) {
      const g = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(Buffer.from(await g.Body!.transformToByteArray()).equals(data), key).toBe(true);
      expect(g.Metadata, key).toEqual({ v });
      expect(g.ETag, key).toBe(`"${md5(data)}"`);
    }
  });

  it('gc reports no inline object as data without a header, and removes the header a small inline overwrite left', async () => {
    const bucket = await newBucket('inlgc');
    await put(s3, bucket, 'small', body(KiB));
    await put(s3off, bucket, 'old', body(KiB)); // format 1
    const oldOid = (await dataMeta(bucket, 'old'))[META_OID];
    const left = store().headerPath(bucket, 'old', oldOid);
    const fresh = body(KiB);
    await put(s3, bucket, 'old', fresh); // format 2 over it: its old header stays for gc
    await store().settled();
    expect((await dataMeta(bucket, 'old'))[META_FMT]).toBe('2');
    expect(await inner.headObject(meta(), left)).not.toBeNull();

    // every bucket of this suite (tampered and revoked objects included), none of any other test's
    const ctx = { backend: onlyBuckets(inner, mine), store: store(), keys: gw.running.keys, metaBucket: meta() };
    const dry = await runGc(ctx, { apply: false, olderThanMs: 0 });
    expect(dry.orphanData).toEqual([]);
    expect(dry.orphanHeaders).toEqual([left]);
    const applied = await runGc(ctx, { apply: true, olderThanMs: 0 });
    expect(applied).toMatchObject({ orphanData: [], orphanHeaders: [left], removed: 1 });
    expect(await inner.headObject(meta(), left)).toBeNull();
    cold();
    expect((await get(s3, bucket, 'old')).equals(fresh)).toBe(true);
    expect((await raw('GET', bucket, 'small')).status).toBe(200);
  });

  it('a PUT to a missing bucket answers NoSuchBucket (the versioning look-up does not turn it into a 500)', async () => {
    const r = await signedRequest(gw.url, creds(), { method: 'PUT', path: `/${uniqueBucket('absent')}/k`, body: Buffer.from('x') });
    expect([r.status, r.headers['x-lakecrypt-error-code']]).toEqual([404, 'NoSuchBucket']);
  });
});

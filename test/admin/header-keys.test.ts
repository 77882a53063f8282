/**
 * Header keys (docs/FORMAT.md 3.4): a KEK rotation is followed by a re-wrap of the dataset's few header keys, not
 * of its headers; a re-key reseals every header under a fresh header key; a dataset from before format 2 has its
 * format-1 headers resealed as format 2 once. In-process gateway + admin on the shared MinIO, no reads between
 * the rotation and the job unless a test says so (a read re-wraps the header keys itself).
 */
import { createHash, randomBytes } from 'node:crypto';
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listPages } from '../../src/admin/util.ts';
import { RewrapManager, type RewrapState } from '../../src/admin/rewrap.ts';
import { peekHeader, sealHeader, openHeader } from '../../src/engine/index.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { pollUntil } from '../../tools/wait.ts';
import { getObj, markLegacyDataset, putText, startAdminHarness, type AdminHarness } from './helpers.ts';

const N = 24;
let h: AdminHarness;
let s3: S3Client;

beforeAll(async () => {
  // this suite inspects header objects in the meta bucket (data format 1); inline headers (format 2): test/store/inline-header.test.ts
  h = await startAdminHarness({ keyDeletionWaitSeconds: 1, inlineHeaderMax: 0 });
  s3 = h.s3;
});
afterAll(async () => {
  s3?.destroy();
  await h?.close();
});

const meta = () => h.gw.running.gateway.store.metaBucket;
const enc = encodeURIComponent;

async function dataset(): Promise<{ ds: string; bodies: Map<string, Buffer> }> {
  const ds = uniqueBucket('hk');
  await s3.send(new CreateBucketCommand({ Bucket: ds }));
  const bodies = new Map<string, Buffer>();
  for (let i = 0; i < N; i++) {
    const b = randomBytes(100 + i * 997);
    bodies.set(`o/${i}`, b);
    await putText(s3, ds, `o/${i}`, b);
  }
  return { ds, bodies };
}

/** Header object path -> ETag (and the raw bytes' fixed fields). */
async function headers(ds: string): Promise<Map<string, { etag: string; version: number; keyNumber: number }>> {
  const out = new Map<string, { etag: string; version: number; keyNumber: number }>();
  for await (const page of listPages(h.gw.backend, meta(), `h/${ds}/`)) {
    for (const o of page) {
      const p = peekHeader((await h.gw.backend.getBuffer(meta(), o.key)).data);
      out.set(o.key, { etag: o.etag, version: p.version, keyNumber: p.keyNumber });
    }
  }
  return out;
}

async function runJob(ds: string, body: Record<string, unknown> = {}): Promise<RewrapState> {
  await h.client.post(`/admin/rewrap/${enc(ds)}`, body);
  let job: RewrapState | undefined;
  await pollUntil(async () => {
    job = (await h.client.get<{ job: RewrapState }>(`/admin/rewrap/${enc(ds)}`, { scan: '0' })).job;
    return job?.state === 'done' || job?.state === 'failed';
  }, { timeoutMs: 30_000, intervalMs: 20, retryErrors: false });
  return job!;
}

async function readsAll(ds: string, bodies: Map<string, Buffer>): Promise<void> {
  for (const [k, b] of bodies) {
    const g = await getObj(s3, ds, k);
    expect(g.status, k).toBe(200);
    expect(g.body!.equals(b), k).toBe(true);
  }
}

describe('header keys', () => {
  it('a rotation is re-wrapped by moving the header keys: no header is rewritten, the old version is then unreferenced', async () => {
    const { ds, bodies } = await dataset();
    const before = await headers(ds);
    expect(before.size).toBe(N);
    expect([...before.values()].every((x) => x.version === 2 && x.keyNumber === 1)).toBe(true);
    await h.client.post(`/admin/keys/${enc(ds)}/rotate`);

    // Until the re-wrap every header still depends on version 1 (through header key 1): revoking it denies them.
    const st = await h.client.get<{ pending: number; byVersion: Record<string, number> }>(`/admin/rewrap/${enc(ds)}`);
    expect(st).toMatchObject({ pending: N, byVersion: { 1: N } });
    await h.client.post(`/admin/keys/${enc(ds)}/revoke`, { version: 1 });
    expect(await getObj(s3, ds, 'o/0')).toMatchObject({ status: 403, code: 'KeyRevoked' });
    await h.client.post(`/admin/keys/${enc(ds)}/restore`, { version: 1 });
    // a destroy is refused while header key 1 is under version 1
    await expect(h.client.post(`/admin/keys/${enc(ds)}/destroy`, { version: 1, confirm: true })).rejects.toMatchObject({ code: 'InvalidRequest' });

    const job = await runJob(ds);
    expect(job).toMatchObject({ state: 'done', mode: 'header-keys', headerKeysRewrapped: 1, headerKeysPending: 0, rewrapped: 0, pending: 0, dataBytesRead: 0 });
    // not one header object changed
    const after = await headers(ds);
    expect([...after.entries()].map(([k, v]) => [k, v.etag])).toEqual([...before.entries()].map(([k, v]) => [k, v.etag]));
    const view = await h.client.get<{ headerKeys: { n: number; generation: number; kekVersion: number }[] }>(`/admin/keys/${enc(ds)}`);
    expect(view.headerKeys.map((k) => [k.n, k.generation, k.kekVersion])).toEqual([[1, 1, 2]]);
    expect(JSON.stringify(view)).not.toContain('blob');
    expect(await h.client.get(`/admin/rewrap/${enc(ds)}`)).toMatchObject({ pending: 0, byVersion: { 2: N } });

    // Now version 1 is referenced by nothing: scheduled without force, destroyed when due, and everything reads.
    expect(await h.client.post(`/admin/keys/${enc(ds)}/destroy`, { version: 1, confirm: true })).toMatchObject({ version: 1, state: 'pending-destruction', referencingHeaders: 0, forced: false });
    await pollUntil(async () => (await h.client.get<{ versions: { version: number; state: string }[] }>(`/admin/keys/${enc(ds)}`)).versions[0].state === 'destroyed', {
      timeoutMs: 15_000,
      intervalMs: 100,
      retryErrors: false,
    });
    await readsAll(ds, bodies);
    const events = (await h.gw.running.audit.list({ since: 1, limit: 100000 })).filter((e) => e.details.dataset === ds).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['header-key.create', 'kek.rotate', 'header-key.rewrap', 'rewrap.done', 'kek.destroy']));

    // New writes go under a header key of the new generation, made at the first write after the rotation.
    await putText(s3, ds, 'new', 'new object');
    const added = [...(await headers(ds)).entries()].filter(([k]) => !before.has(k));
    expect(added.map(([, v]) => [v.version, v.keyNumber])).toEqual([[2, 2]]);
    const view2 = await h.client.get<{ headerKeys: { n: number; generation: number; kekVersion: number }[] }>(`/admin/keys/${enc(ds)}`);
    expect(view2.headerKeys.map((k) => [k.n, k.generation, k.kekVersion])).toEqual([[1, 1, 2], [2, 2, 2]]);
  });

  it('a read after a rotation re-wraps the header keys itself (one keystore write for all)', async () => {
    const { ds, bodies } = await dataset();
    await h.client.post(`/admin/keys/${enc(ds)}/rotate`);
    expect((await h.client.get<{ pending: number }>(`/admin/rewrap/${enc(ds)}`)).pending).toBe(N);
    expect((await getObj(s3, ds, 'o/3')).status).toBe(200);
    await pollUntil(async () => (await h.client.get<{ pending: number }>(`/admin/rewrap/${enc(ds)}`)).pending === 0, { timeoutMs: 5000, intervalMs: 20, retryErrors: false });
    await readsAll(ds, bodies);
  });

  it('a re-key reseals every header under a fresh header key, which new writes use too', async () => {
    const { ds, bodies } = await dataset();
    const before = await headers(ds);
    const job = await runJob(ds, { rekey: true });
    expect(job).toMatchObject({ state: 'done', mode: 'headers', rekeyTo: 2, rewrapped: N, alreadyCurrent: 0, failed: 0, pending: 0, dataBytesRead: 0, headerKeysRetired: [1] });
    // the old header key is gone from the keystore: no header can name it any more
    const view = await h.client.get<{ headerKeys: { n: number }[]; lastHeaderKey: number }>(`/admin/keys/${enc(ds)}`);
    expect(view.headerKeys.map((k) => k.n)).toEqual([2]);
    expect(view.lastHeaderKey).toBe(2);
    const after = await headers(ds);
    expect(after.size).toBe(N);
    for (const [k, v] of after) {
      expect(v).toMatchObject({ version: 2, keyNumber: 2 });
      expect(v.etag).not.toBe(before.get(k)!.etag);
    }
    await readsAll(ds, bodies);
    await putText(s3, ds, 'after-rekey', 'x');
    const added = [...(await headers(ds)).entries()].filter(([k]) => !after.has(k));
    expect(added.map(([, v]) => v.keyNumber)).toEqual([2]);
  });

  it('a dataset from before format 2: format-1 headers read, are resealed as format 2 by the job, and the record says so', async () => {
    const { ds, bodies } = await dataset();
    const keys = h.gw.running.keys;
    // Turn every header into format 1 (sealed under KEK version 1 directly), as an older gateway wrote them.
    const kek = await keys.kek(ds, 1);
    for await (const page of listPages(h.gw.backend, meta(), `h/${ds}/`)) {
      for (const o of page) {
        const data = (await h.gw.backend.getBuffer(meta(), o.key)).data;
        const key = [...bodies.keys()].find((k) => o.key.includes(`/${sha(k)}/`))!;
        const f = openHeader(data, { bucket: ds, key }, await keys.headerKey(ds, peekHeader(data).keyNumber));
        const v1 = sealHeader({ ...f, version: 1, keyNumber: 1 }, kek);
        await h.gw.backend.putObject(meta(), o.key, v1, { size: v1.length });
      }
    }
    await markLegacyDataset(keys, ds);
    h.gw.running.gateway.store.headers.clear();
    expect([...(await headers(ds)).values()].every((x) => x.version === 1)).toBe(true);
    await h.client.post(`/admin/keys/${enc(ds)}/rotate`);
    const job = await runJob(ds);
    expect(job).toMatchObject({ state: 'done', mode: 'headers', rewrapped: N, failed: 0, pending: 0, dataBytesRead: 0 });
    expect([...(await headers(ds)).values()].every((x) => x.version === 2)).toBe(true);
    expect((await keys.datasetRecord(ds, true))!.headerFormat).toBe(2);
    await readsAll(ds, bodies);
  });
  it('a re-key retires only keys older than its own: one made by a rotation during it stays', async () => {
    const { ds } = await dataset();
    const keys = h.gw.running.keys;
    const fresh = await keys.startHeaderKey(ds); // key 2, generation 1
    await keys.rotate(ds);
    await putText(s3, ds, 'after-rotation', 'x'); // makes key 3, generation 2
    const view = await keys.show(ds);
    expect(view!.headerKeys.map((k) => [k.n, k.generation])).toEqual([[1, 1], [2, 1], [3, 2]]);
    // nothing referenced: only key 1 (older than the re-key's key 2) may go; 3 is newer, and current
    expect(await keys.retireHeaderKeys(ds, fresh, new Set())).toEqual([1]);
    expect((await keys.show(ds))!.headerKeys.map((k) => k.n)).toEqual([2, 3]);
    // a keystore import of the record from before does not bring key 1 back
    const exported = await keys.exportKeystore();
    const doc = JSON.parse(exported.toString()) as { records: { datasetId: string; headerKeys: unknown[] }[] };
    const rec = doc.records.find((r) => r.datasetId === keys.datasetId(ds))!;
    rec.headerKeys = [...rec.headerKeys, { ...(rec.headerKeys[0] as object), n: 1 }];
    await keys.importKeystore(Buffer.from(JSON.stringify(doc)));
    expect((await keys.show(ds))!.headerKeys.map((k) => k.n)).toEqual([2, 3]);
  });

  it('a rotation during a re-key does not drop it: the next start is a re-key under a key of the new version', async () => {
    const { ds, bodies } = await dataset();
    const rewrap = new RewrapManager({ backend: h.gw.backend, store: h.gw.running.gateway.store, keys: h.gw.running.keys, metaBucket: meta(), ratePerSec: 20, rekeyGraceMs: 0 });
    try {
      const first = await rewrap.start(ds, 'test', { rekey: true });
      expect(first.rekeyTo).toBe(2);
      await pollUntil(async () => ((await rewrap.status(ds))?.done ?? 0) >= 3, { timeoutMs: 10_000, intervalMs: 20, retryErrors: false });
      await h.gw.running.keys.rotate(ds);
      await rewrap.close(); // as a gateway restart would
      const again = new RewrapManager({ backend: h.gw.backend, store: h.gw.running.gateway.store, keys: h.gw.running.keys, metaBucket: meta(), rekeyGraceMs: 0 });
      try {
        const second = await again.start(ds, 'policy'); // what the rotation policy or a plain `rewrap run` does
        expect(second.targetVersion).toBe(2);
        expect(second.rekeyTo).toBe(3);
        const done = (await again.wait(ds))!;
        expect(done).toMatchObject({ state: 'done', mode: 'headers', rekeyTo: 3, failed: 0 });
        expect([...(await headers(ds)).values()].every((x) => x.keyNumber === 3)).toBe(true);
        expect(done.headerKeysRetired).toEqual([1, 2]);
        await readsAll(ds, bodies);
      } finally {
        await again.close();
      }
    } finally {
      await rewrap.close();
    }
  });

  it('a multipart upload open across a re-key completes: its records are resealed, later parts use the new key', async () => {
    const ds = uniqueBucket('hk-mpu');
    await s3.send(new CreateBucketCommand({ Bucket: ds }));
    const part1 = randomBytes(5 * 1024 * 1024);
    const part2 = randomBytes(1000);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: ds, Key: 'big' }));
    const e1 = (await s3.send(new UploadPartCommand({ Bucket: ds, Key: 'big', UploadId, PartNumber: 1, Body: part1 }))).ETag!;
    const job = await runJob(ds, { rekey: true });
    expect(job).toMatchObject({ state: 'done', rekeyTo: 2, failed: 0, headerKeysRetired: [1] });
    const e2 = (await s3.send(new UploadPartCommand({ Bucket: ds, Key: 'big', UploadId, PartNumber: 2, Body: part2 }))).ETag!;
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: ds, Key: 'big', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: e2 }] } }));
    const g = await getObj(s3, ds, 'big');
    expect(g.status).toBe(200);
    expect(g.body!.equals(Buffer.concat([part1, part2]))).toBe(true);
  });

  it('a header key record whose generation was edited in the keystore does not open (generation is in the AAD)', async () => {
    const { ds } = await dataset();
    const keys = h.gw.running.keys;
    await keys.keystore.updateRecord(keys.datasetId(ds), (rec) => {
      rec!.headerKeys![0]!.generation = 7;
      return rec!;
    });
    keys.clearCaches();
    h.gw.running.gateway.store.headers.clear();
    expect(await getObj(s3, ds, 'o/1')).toMatchObject({ status: 500, code: 'IntegrityError' });
  });
});

const sha = (k: string): string => createHash('sha256').update(k).digest('hex');

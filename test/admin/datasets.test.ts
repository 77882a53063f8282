/**
 * Issue 18, item 3: datasets as run-time objects. Two gateways (A, B) share one fs backend directory and CMK key
 * files, each with its own admin port; B learns of A's changes only through the keystore epoch poll, as a gateway
 * in another process would.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adoptStatePath } from '../../src/admin/adopt.ts';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { createBackend, type Backend } from '../../src/backend/index.ts';
import { AdminClient } from '../../src/cli/client.ts';
import { datasetIdOf, peekHeader } from '../../src/engine/index.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { META_OID } from '../../src/store/index.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil, sleep } from '../../tools/wait.ts';
import { getObj, putText, runCli } from './helpers.ts';

const N = 200;
/** Objects under the prefix before the dataset is created: N under `finance/`, one under `finance-old/`. */
const EXISTING = N + 1;
const BUCKET = 'lake';
const PREFIX_DS = 'lake/finance';
const P = (...segments: string[]) => AdminClient.path(...segments);

let a: TestGateway;
let b: TestGateway;
let adminA: RunningAdmin;
let adminB: RunningAdmin;
let apiA: AdminClient;
let apiB: AdminClient;
let s3a: S3Client;
let s3b: S3Client;
const tmp = makeTmpDir('lakecrypt-datasets-');
const bodies = new Map<string, Buffer>();
const others = new Map<string, Buffer>();

const errOf = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string; message: string }) => ({ code: e.code, message: e.message }));

/** The dataset the current header of bucket/key names (from its fixed fields in the meta bucket). */
async function headerDataset(gw: TestGateway, bucket: string, key: string): Promise<string> {
  const backend: Backend = gw.backend;
  const info = await backend.headObject(bucket, key);
  const oid = info!.meta[META_OID];
  const meta = gw.running.gateway.metaBucket;
  const { data } = await backend.getBuffer(meta, gw.running.gateway.store.headerPath(bucket, key, oid));
  const id = peekHeader(data).datasetId;
  for (const name of [BUCKET, PREFIX_DS, 'elsewhere']) if (id.equals(datasetIdOf(name))) return name;
  return `unknown:${id.toString('hex').slice(0, 8)}`;
}

async function readAll(s3: S3Client, objs: Map<string, Buffer>): Promise<{ ok: number; codes: Record<string, number> }> {
  let ok = 0;
  const codes: Record<string, number> = {};
  const keys = [...objs.keys()];
  for (let i = 0; i < keys.length; i += 16) {
    await Promise.all(
      keys.slice(i, i + 16).map(async (k) => {
        const r = await getObj(s3, BUCKET, k);
        if (r.status === 200 && r.body!.equals(objs.get(k)!)) ok++;
        else codes[r.code ?? String(r.status)] = (codes[r.code ?? String(r.status)] ?? 0) + 1;
      }),
    );
  }
  return { ok, codes };
}

beforeAll(async () => {
  const store = path.join(tmp.path, 'store');
  // this suite inspects header objects in the meta bucket (data format 1); inline headers (format 2): test/store/inline-header.test.ts
  a = await startTestGateway('fs', { blockSize: 65536, backend: createBackend({ kind: 'fs', dataDir: store }), dataDir: tmp.path, epochPollMs: 100, inlineHeaderMax: 0 });
  b = await startTestGateway('fs', { blockSize: 65536, backend: createBackend({ kind: 'fs', dataDir: store }), dataDir: tmp.path, epochPollMs: 100, inlineHeaderMax: 0 });
  adminA = await startAdmin({ gateway: a.running, metrics: createMetrics(), resumeJobs: false });
  adminB = await startAdmin({ gateway: b.running, metrics: createMetrics(), resumeJobs: false });
  apiA = new AdminClient({ url: adminA.url, accessKey: a.accessKey, secretKey: a.secretKey });
  apiB = new AdminClient({ url: adminB.url, accessKey: b.accessKey, secretKey: b.secretKey });
  s3a = a.client();
  s3b = b.client();
  await s3a.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await s3a.send(new CreateBucketCommand({ Bucket: 'elsewhere' }));
  const keys = Array.from({ length: N }, (_, i) => `finance/obj-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < keys.length; i += 20) {
    await Promise.all(
      keys.slice(i, i + 20).map(async (k, j) => {
        // sizes from a few bytes to a few chunks (64 KiB each)
        const body = randomBytes(((i + j) * 997) % 200_000);
        bodies.set(k, body);
        await putText(s3a, BUCKET, k, body);
      }),
    );
  }
  for (const k of ['other/one', 'other/two']) {
    const body = randomBytes(3000);
    others.set(k, body);
    await putText(s3a, BUCKET, k, body);
  }
  // a prefix is matched as S3 matches prefixes: "lake/finance" (no trailing '/') covers `finance-old/...` too
  const old = randomBytes(3000);
  bodies.set('finance-old/x', old);
  await putText(s3a, BUCKET, 'finance-old/x', old);
}, 120_000);

afterAll(async () => {
  s3a?.destroy();
  s3b?.destroy();
  await adminA?.close();
  await adminB?.close();
  await a?.close();
  await b?.close();
  tmp.cleanup();
});

describe('a prefix dataset created over existing objects (two gateways, one backend)', () => {
  it('keeps every object readable at once, routes new writes on both gateways within 1 s, adopts the rest, then revokes them all', async () => {
    expect(await headerDataset(a, BUCKET, 'finance/obj-0000')).toBe(BUCKET);

    // 1. create through A's admin API
    const t0 = Date.now();
    const created = await apiA.post<{ created: boolean; registered: boolean; dataset: string }>(P('admin', 'datasets', PREFIX_DS, 'create'));
    expect(created).toMatchObject({ created: true, registered: true, dataset: PREFIX_DS });

    // 2. a new write through B is sealed under the new dataset within 1 s (B learns of it through the epoch poll)
    let routedAfter = -1;
    let n = 0;
    await pollUntil(
      async () => {
        const key = `finance/new-${n++}`;
        await putText(s3b, BUCKET, key, Buffer.from(`fresh ${key}`));
        bodies.set(key, Buffer.from(`fresh ${key}`));
        if ((await headerDataset(b, BUCKET, key)) !== PREFIX_DS) return false;
        routedAfter = Date.now() - t0;
        return true;
      },
      { timeoutMs: 1000, intervalMs: 20 },
    );
    console.log(`routing change reached gateway B: a write through B was sealed under ${PREFIX_DS} ${routedAfter} ms after the create call began (${n} write(s))`);
    expect(routedAfter).toBeLessThanOrEqual(1000);
    // the writes through B before it saw the change went to the parent: they count as such below
    const parentNew = n - 1;

    // 3. every object still reads on both gateways, byte for byte
    for (const s3 of [s3a, s3b]) expect(await readAll(s3, bodies)).toEqual({ ok: bodies.size, codes: {} });

    // 4. show: the objects still under the parent
    const show = await apiA.get<{ pending: number; pendingByParent: Record<string, number>; objects: number; registered: boolean }>(P('admin', 'datasets', PREFIX_DS));
    expect(show).toMatchObject({ pending: EXISTING + parentNew, pendingByParent: { [BUCKET]: EXISTING + parentNew }, objects: EXISTING + parentNew + 1, registered: true });
    const keysShow = await apiB.get<{ underParents: { pending: number } }>(P('admin', 'keys', PREFIX_DS));
    expect(keysShow.underParents.pending).toBe(EXISTING + parentNew);

    // 5. a revoke of the new dataset warns that those objects are not covered (and indeed they still read)
    const rv = await apiB.post<{ warning?: string; revoked: number[] }>(P('admin', 'keys', PREFIX_DS, 'revoke'));
    expect(rv.warning).toBe(`${EXISTING + parentNew} objects under the prefix are still sealed under ${BUCKET} and are not covered (run \`lakecrypt datasets adopt ${PREFIX_DS}\`)`);
    expect((await getObj(s3a, BUCKET, 'finance/obj-0001')).status).toBe(200);
    await apiB.post(P('admin', 'keys', PREFIX_DS, 'restore'));

    // (a copy of one object as it is before the adoption, sealed under the parent, for the rollback check below)
    const store = a.running.gateway.store;
    const rbKey = 'finance/obj-0007';
    const rbData = await a.backend.getBuffer(BUCKET, rbKey);
    const rbOid = rbData.info.meta['lc-oid']!;
    const rbHeader = (await a.backend.getBuffer(store.metaBucket, store.headerPath(BUCKET, rbKey, rbOid))).data;

    // 6. adopt, stopped midway, then resumed to the end
    await apiA.post(P('admin', 'datasets', PREFIX_DS, 'adopt'), { rate: 40 });
    await pollUntil(async () => ((await apiA.get<{ job: { adopted: number } }>(P('admin', 'datasets', PREFIX_DS, 'adopt'), { scan: '0' })).job.adopted >= 10), { timeoutMs: 30_000, intervalMs: 50 });
    const stopped = await apiA.post<{ state: string; adopted: number; cursor?: string }>(P('admin', 'datasets', PREFIX_DS, 'adopt'), { stop: true });
    expect(stopped.state).toBe('stopped');
    expect(stopped.cursor).toBeTruthy();
    expect(stopped.adopted).toBeLessThan(N);
    const mid = await apiA.get<{ pending: number }>(P('admin', 'datasets', PREFIX_DS, 'adopt'));
    expect(mid.pending).toBeGreaterThan(0);
    expect(mid.pending).toBeLessThan(EXISTING + parentNew);
    // resumed on gateway B, unthrottled
    const t1 = Date.now();
    const resumed = await apiB.post<{ state: string; adopted: number; cursor?: string }>(P('admin', 'datasets', PREFIX_DS, 'adopt'), { rate: 0 });
    expect(resumed.state).toBe('running');
    expect(resumed.cursor).toBe(stopped.cursor);
    const done = await pollUntil(
      async () => {
        const s = await apiB.get<{ job: { state: string; adopted: number; pending?: number; objectsPerSec?: number; failed: number; errors: string[] } }>(P('admin', 'datasets', PREFIX_DS, 'adopt'), { scan: '0' });
        return s.job.state !== 'running' && s.job;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    const secs = (Date.now() - t1) / 1000;
    expect(done).toMatchObject({ state: 'done', failed: 0, pending: 0, adopted: EXISTING + parentNew });
    console.log(`adopt: ${done.adopted} objects in total, the resumed run took ${secs.toFixed(2)} s (${done.objectsPerSec} objects/s by the job; fs backend, 2 cores)`);

    // 7. nothing left under the parent; every object reads on both gateways and names the new dataset
    const after = await apiA.get<{ pending: number; objects: number }>(P('admin', 'datasets', PREFIX_DS));
    expect(after).toMatchObject({ pending: 0, objects: bodies.size });
    for (const s3 of [s3a, s3b]) expect(await readAll(s3, bodies)).toEqual({ ok: bodies.size, codes: {} });
    expect(await headerDataset(a, BUCKET, 'finance/obj-0123')).toBe(PREFIX_DS);
    expect(await headerDataset(a, BUCKET, 'other/one')).toBe(BUCKET);

    // 8. revoking the new dataset now denies every object under it on both gateways; the rest still reads
    const rv2 = await apiA.post<{ warning?: string }>(P('admin', 'keys', PREFIX_DS, 'revoke'));
    expect(rv2.warning).toBeUndefined();
    for (const s3 of [s3a, s3b]) {
      await pollUntil(async () => (await readAll(s3, bodies)).codes.KeyRevoked === bodies.size, { timeoutMs: 5000, intervalMs: 100 });
      expect(await readAll(s3, others)).toEqual({ ok: others.size, codes: {} });
    }
    // 9. the adoption closed the dataset: a backend that rolls an object back to its pre-adoption copy (sealed
    // under the parent, whose keys are not revoked) does not get it served around the revocation
    expect((await b.running.keys.registeredDataset(PREFIX_DS))?.closedAt).toBeDefined();
    await a.backend.putObject(store.metaBucket, store.headerPath(BUCKET, rbKey, rbOid), rbHeader, { size: rbHeader.length });
    await a.backend.putObject(BUCKET, rbKey, rbData.data, { size: rbData.data.length, meta: rbData.info.meta });
    for (const s3 of [s3a, s3b]) {
      const got = await getObj(s3, BUCKET, rbKey);
      expect(got.status, 'a rolled-back pre-adoption copy').not.toBe(200);
      expect(got.code).toBe('IntegrityError');
    }
    await apiA.post(P('admin', 'keys', PREFIX_DS, 'restore'));
    // still refused with the dataset restored: the copy names the parent, which nothing under the prefix may now
    expect((await getObj(s3a, BUCKET, rbKey)).code).toBe('IntegrityError');

    // the audit trail names the admin who created and adopted
    const trail = await a.running.audit.list({ since: 1, limit: 100000 });
    expect(trail.find((e) => e.event === 'dataset.create' && e.details.dataset === PREFIX_DS)?.actor).toBe(`admin:${a.accessKey}`);
    expect(trail.find((e) => e.event === 'dataset.adopt.resume' && e.details.dataset === PREFIX_DS)?.actor).toBe(`admin:${b.accessKey}`);
    expect(await a.backend.headObject(a.running.gateway.metaBucket, adoptStatePath(PREFIX_DS))).not.toBeNull();
  }, 240_000);
});

describe('dataset names', () => {
  it.each([
    ['Bad Name!', /only lowercase letters, digits/],
    ['lake//x', /'\/\/'/],
    ['lake/../x', /'\.\.' segment/],
    ['-bucket', /must start with a lowercase letter or a digit/],
    ['lake/', /prefix after '\/' is empty/],
    ['ab', /3 to 63 characters/],
    [`lake/${'x'.repeat(1025)}`, /at most 1024 bytes/],
    ['lake/a\u0001b', /control characters/],
  ])('refuses %# with InvalidArgument naming the rule', async (name, rule) => {
    for (const op of ['datasets', 'keys'] as const) {
      const e = await errOf(apiA.post(P('admin', op, name, 'create')));
      expect(e?.code).toBe('InvalidArgument');
      expect(e?.message).toMatch(rule);
    }
  });

  it('the CLI refuses them too, and creates, lists and shows valid ones', async () => {
    const env = { LAKECRYPT_ADMIN_URL: adminA.url, LAKECRYPT_ACCESS_KEY: a.accessKey, LAKECRYPT_SECRET_KEY: a.secretKey };
    const bad = await runCli(['datasets', 'create', 'Bad Name!'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/InvalidArgument: invalid dataset name "Bad Name!": the bucket name may contain only/);
    const ok = await runCli(['datasets', 'create', 'lake/cli-made/'], env);
    expect(ok.stdout).toMatch(/^created: lake\/cli-made\//);
    const list = await runCli(['--json', 'datasets', 'list'], env);
    expect((JSON.parse(list.stdout) as { datasets: { dataset: string }[] }).datasets.map((d) => d.dataset)).toContain('lake/cli-made/');
    const show = await runCli(['datasets', 'show', 'lake/cli-made/'], env);
    expect(show.stdout).toMatch(/underParent:\s+0\n/);
    const del = await runCli(['datasets', 'delete', 'lake/cli-made/', '--yes'], env);
    expect(del.stdout).toMatch(/^deleted: lake\/cli-made\//);
  }, 60_000);
});

describe('datasets delete', () => {
  it('is refused while objects reference the dataset', async () => {
    const e = await errOf(apiA.post(P('admin', 'datasets', PREFIX_DS, 'delete'), { confirm: true }));
    expect(e?.code).toBe('InvalidRequest');
    expect(e?.message).toMatch(/header\(s\) still reference dataset lake\/finance/);
    expect((await errOf(apiA.post(P('admin', 'datasets', 'lake/typo', 'delete'), {})))?.code).toBe('InvalidRequest');
  });

  it('removes a stray unused dataset: gone from the list on both gateways, its keys gone', async () => {
    await apiB.post(P('admin', 'datasets', 'lake/typo', 'create'));
    const names = async (api: AdminClient) => (await api.get<{ datasets: { dataset: string }[] }>(P('admin', 'datasets'))).datasets.map((d) => d.dataset);
    expect(await names(apiA)).toContain('lake/typo');
    const r = await apiA.post<{ deleted: boolean; recordDeleted: boolean }>(P('admin', 'datasets', 'lake/typo', 'delete'), { confirm: true });
    expect(r).toMatchObject({ deleted: true, recordDeleted: true });
    expect(await names(apiA)).not.toContain('lake/typo');
    expect(await names(apiB)).not.toContain('lake/typo');
    // routing on B (not only its list, which reads the registry): within the epoch poll
    await pollUntil(() => b.running.keys.datasetFor(BUCKET, 'typo/x') === BUCKET, { timeoutMs: 1000, intervalMs: 20 });
    expect((await errOf(apiB.get(P('admin', 'keys', 'lake/typo'))))?.code).toBe('NoSuchKey');
    const trail = await a.running.audit.list({ since: 1, limit: 100000 });
    expect(trail.find((e) => e.event === 'dataset.delete' && e.details.dataset === 'lake/typo')?.actor).toBe(`admin:${a.accessKey}`);
  }, 30_000);

  it('removes a badly named record that an older `keys create` made', async () => {
    await a.running.keys.activeKek('Bad Name!');
    expect(await apiA.get(P('admin', 'keys', 'Bad Name!'))).toMatchObject({ dataset: 'Bad Name!' });
    await apiA.post(P('admin', 'datasets', 'Bad Name!', 'delete'), { confirm: true });
    expect((await errOf(apiA.get(P('admin', 'keys', 'Bad Name!'))))?.code).toBe('NoSuchKey');
  });
});

describe('tamper guarantees hold with reads following the header', () => {
  it('refuses a header naming an unrelated dataset, or an ancestor header of another key', async () => {
    const meta = a.running.gateway.metaBucket;
    const store = a.running.gateway.store;
    const hp = async (bucket: string, key: string) => store.headerPath(bucket, key, (await a.backend.headObject(bucket, key))!.meta[META_OID]);
    await putText(s3a, 'elsewhere', 'x', randomBytes(500));
    await putText(s3a, BUCKET, 'finance/victim', randomBytes(500));
    await putText(s3a, BUCKET, 'other/donor', randomBytes(500));
    const victim = await hp(BUCKET, 'finance/victim');
    for (const [donorBucket, donorKey] of [
      ['elsewhere', 'x'],
      [BUCKET, 'other/donor'],
    ] as const) {
      const { data } = await a.backend.getBuffer(meta, await hp(donorBucket, donorKey));
      await a.backend.putObject(meta, victim, data, { size: data.length });
      store.headers.clear();
      b.running.gateway.store.headers.clear();
      for (const s3 of [s3a, s3b]) expect(await getObj(s3, BUCKET, 'finance/victim')).toMatchObject({ status: 500, code: 'IntegrityError' });
    }
    await sleep(0);
  });
});

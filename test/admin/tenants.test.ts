/**
 * Issue 18, item 4: tenants and scoped admins. Two tenants (ta, tb), each rooted in its own local CMK, each with an
 * S3 user and an admin; one gateway (fs backend) and its admin port. A tenant's users reach only its buckets, a
 * bucket its user creates belongs to it (dataset under its CMK), its admin manages only its datasets and its CMK
 * (anything else: 403, audited with the admin's access key), its audit view holds only its entries.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, ListBucketsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type RunningAdmin } from '../../src/admin/server.ts';
import { AdminClient } from '../../src/cli/client.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import type { AuditEntry } from '../../src/keys/audit.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { getObj, putText, runCli } from './helpers.ts';

const P = (...segments: string[]) => AdminClient.path(...segments);
const secret = () => randomBytes(18).toString('base64url');
const A = { tenant: 'ta', cmk: 'cmk-a', bucket: 'ta-lake', newBucket: 'ta-made', admin: { accessKey: 'ta-admin', secretKey: secret() }, user: { accessKey: 'ta-user', secretKey: secret() } };
const B = { tenant: 'tb', cmk: 'cmk-b', bucket: 'tb-lake', admin: { accessKey: 'tb-admin', secretKey: secret() }, user: { accessKey: 'tb-user', secretKey: secret() } };

let gw: TestGateway;
let admin: RunningAdmin;
let root: AdminClient;
let adminA: AdminClient;
let adminB: AdminClient;
let s3root: S3Client;
let s3a: S3Client;
let s3b: S3Client;
const tmp = makeTmpDir('lakecrypt-tenants-');

const errOf = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string; message: string }) => ({ code: e.code, message: e.message }));
type Listed = { datasets: { dataset: string; cmkId: string | null }[] };
const auditOf = async (c: AdminClient, limit = 500) => (await c.get<{ entries: AuditEntry[] }>('/admin/audit', { limit: String(limit) })).entries;

beforeAll(async () => {
  const cmks = {
    default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }),
    [A.cmk]: new LocalCmkProvider({ id: A.cmk, dataDir: tmp.path }),
    [B.cmk]: new LocalCmkProvider({ id: B.cmk, dataDir: tmp.path }),
  };
  gw = await startTestGateway('fs', {
    dataDir: tmp.path,
    cmks,
    blockSize: 65536,
    tenants: [
      { name: A.tenant, cmk: A.cmk, buckets: [A.bucket], admins: [A.admin] },
      { name: B.tenant, cmk: B.cmk, buckets: [B.bucket], admins: [B.admin] },
    ],
    users: [
      // '*' = every bucket of its tenant; a bucket no tenant owns only when named (that is how it creates one)
      { ...A.user, buckets: ['*', A.newBucket], admin: false, tenant: A.tenant },
      { ...B.user, buckets: ['*'], admin: false, tenant: B.tenant },
    ],
  });
  admin = await startAdmin({ gateway: gw.running, metrics: createMetrics(), resumeJobs: false });
  root = new AdminClient({ url: admin.url, accessKey: gw.accessKey, secretKey: gw.secretKey });
  adminA = new AdminClient({ url: admin.url, ...A.admin });
  adminB = new AdminClient({ url: admin.url, ...B.admin });
  s3root = gw.client();
  s3a = gw.client(A.user);
  s3b = gw.client(B.user);
  for (const b of [A.bucket, B.bucket]) await s3root.send(new CreateBucketCommand({ Bucket: b }));
  await putText(s3a, A.bucket, 'a.txt', 'tenant a data');
  await putText(s3b, B.bucket, 'b.txt', 'tenant b data');
}, 60_000);

afterAll(async () => {
  await admin?.close();
  await gw?.close();
});

describe('tenant S3 users', () => {
  it("A's user cannot read or list B's bucket; B's user reads it", async () => {
    expect(await getObj(s3a, B.bucket, 'b.txt')).toMatchObject({ status: 403, code: 'AccessDenied' });
    expect((await getObj(s3b, B.bucket, 'b.txt')).body?.toString()).toBe('tenant b data');
    const listed = (await s3a.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name) ?? [];
    expect(listed).toContain(A.bucket);
    expect(listed).not.toContain(B.bucket);
  });

  it("a bucket A's user creates belongs to A: its dataset is rooted in A's CMK, B's user cannot reach it", async () => {
    await s3a.send(new CreateBucketCommand({ Bucket: A.newBucket }));
    await putText(s3a, A.newBucket, 'n.txt', 'new bucket data');
    expect((await getObj(s3a, A.newBucket, 'n.txt')).body?.toString()).toBe('new bucket data');
    const show = await root.get<{ cmkId: string }>(P('admin', 'datasets', A.newBucket));
    expect(show.cmkId).toBe(A.cmk);
    expect((await gw.running.keys.datasetRecord(A.newBucket, true))?.cmkId).toBe(A.cmk);
    // configured tenant bucket: its lazily created record is under the tenant's CMK too
    expect((await gw.running.keys.datasetRecord(A.bucket, true))?.cmkId).toBe(A.cmk);
    expect((await gw.running.keys.datasetRecord(B.bucket, true))?.cmkId).toBe(B.cmk);
    expect(gw.running.keys.bucketOwner(A.newBucket)).toBe(A.tenant);
    expect(await getObj(s3b, A.newBucket, 'n.txt')).toMatchObject({ status: 403, code: 'AccessDenied' });
    // B's user cannot create a bucket in A's name space either
    expect(await s3b.send(new CreateBucketCommand({ Bucket: A.newBucket })).then(() => 'created', (e: Error) => e.name)).toBe('AccessDenied');
    const created = (await auditOf(root)).find((e) => e.event === 'dataset.create' && e.details.dataset === A.newBucket);
    expect(created).toMatchObject({ actor: `user:${A.tenant}/${A.user.accessKey}`, details: { tenant: A.tenant, cmkId: A.cmk } });
  });

  it("a tenant user with '*' creates a bucket nobody owns (it becomes its tenant's), but reaches no other unowned bucket", async () => {
    await s3b.send(new CreateBucketCommand({ Bucket: 'tb-made' }));
    expect(gw.running.keys.bucketOwner('tb-made')).toBe(B.tenant);
    expect((await gw.running.keys.datasetRecord('tb-made', true))?.cmkId).toBe(B.cmk);
    await putText(s3b, 'tb-made', 'x', 'b made');
    expect((await getObj(s3b, 'tb-made', 'x')).body?.toString()).toBe('b made');
    // a bucket the root made, which no tenant owns: '*' of a tenant user does not reach it
    const s3root = gw.client();
    await s3root.send(new CreateBucketCommand({ Bucket: 'nobodys' }));
    await putText(s3root, 'nobodys', 'x', 'root data');
    expect(await getObj(s3b, 'nobodys', 'x')).toMatchObject({ status: 403, code: 'AccessDenied' });
    // nor can it claim that existing bucket by "creating" it
    expect(await s3b.send(new CreateBucketCommand({ Bucket: 'nobodys' })).then(() => 'created', (e: Error) => e.name)).toMatch(/BucketAlready/);
    expect(gw.running.keys.bucketOwner('nobodys')).toBeUndefined();
    expect(await getObj(s3b, 'nobodys', 'x')).toMatchObject({ status: 403, code: 'AccessDenied' });
  });
});

describe('tenant admins', () => {
  it("A's admin lists only A's datasets; the root admin sees both tenants", async () => {
    const mine = (await adminA.get<Listed>('/admin/keys')).datasets.map((d) => d.dataset).sort();
    expect(mine).toEqual([A.bucket, A.newBucket].sort());
    const all = (await root.get<Listed>('/admin/keys')).datasets.map((d) => d.dataset);
    expect(all).toEqual(expect.arrayContaining([A.bucket, A.newBucket, B.bucket]));
    const dsA = (await adminA.get<Listed>('/admin/datasets')).datasets.map((d) => d.dataset);
    expect(dsA).toContain(A.newBucket);
    expect(dsA.every((n) => n.startsWith('ta-'))).toBe(true);
    expect((await adminA.get<{ tenant?: string; actor: string }>('/admin/whoami'))).toMatchObject({ tenant: A.tenant, actor: `admin:${A.tenant}/${A.admin.accessKey}` });
  });

  it("A's admin rotates, revokes, restores and creates in A; the audit trail names it and its tenant", async () => {
    const r = await adminA.post<{ version: number }>(P('admin', 'keys', A.bucket, 'rotate'));
    expect(r.version).toBe(2);
    await adminA.post(P('admin', 'keys', A.newBucket, 'revoke'));
    expect(await getObj(s3a, A.newBucket, 'n.txt')).toMatchObject({ status: 403, code: 'KeyRevoked' });
    await adminA.post(P('admin', 'keys', A.newBucket, 'restore'));
    expect((await getObj(s3a, A.newBucket, 'n.txt')).status).toBe(200);
    const made = await adminA.post<{ cmkId: string }>(P('admin', 'datasets', `${A.bucket}/finance/`, 'create'));
    expect(made.cmkId).toBe(A.cmk);
    const trail = await auditOf(root);
    const who = `admin:${A.tenant}/${A.admin.accessKey}`;
    for (const [event, dataset] of [['kek.rotate', A.bucket], ['kek.revoke', A.newBucket], ['kek.restore', A.newBucket], ['dataset.create', `${A.bucket}/finance/`], ['kek.create', `${A.bucket}/finance/`]]) {
      expect(trail.find((e) => e.event === event && e.details.dataset === dataset), `${event} ${dataset}`).toMatchObject({ actor: who });
    }
  });

  it("A's admin is refused (403, audited with its access key) on B's datasets, B's CMK and root-only operations", async () => {
    const refusedBefore = (await auditOf(root)).filter((e) => e.event === 'admin.refused' && e.details.accessKey === A.admin.accessKey).length;
    const attempts: [string, () => Promise<unknown>][] = [
      ['show', () => adminA.get(P('admin', 'keys', B.bucket))],
      ['rotate', () => adminA.post(P('admin', 'keys', B.bucket, 'rotate'))],
      ['revoke', () => adminA.post(P('admin', 'keys', B.bucket, 'revoke'))],
      ['restore', () => adminA.post(P('admin', 'keys', B.bucket, 'restore'))],
      ['dataset show', () => adminA.get(P('admin', 'datasets', B.bucket))],
      ['dataset create in B', () => adminA.post(P('admin', 'datasets', `${B.bucket}/x/`, 'create'))],
      ['create under B cmk', () => adminA.post(P('admin', 'datasets', `${A.bucket}/y/`, 'create'), { cmk: B.cmk })],
      ['rewrap', () => adminA.post(P('admin', 'rewrap', B.bucket))],
      ['object revoke', () => adminA.post('/admin/objects/revoke', { bucket: B.bucket, key: 'b.txt' })],
      ['cmk rotate B', () => adminA.post('/admin/cmk/rotate', { cmk: B.cmk })],
      ['cmk disable default', () => adminA.post('/admin/cmk/disable', { cmk: 'default', version: 1, confirm: true })],
      ['backup', () => adminA.get('/admin/backup')],
      ['gc', () => adminA.post('/admin/gc', {})],
      ['migrate B', () => adminA.post(P('admin', 'migrate', B.bucket), {})],
      ['audit verify', () => adminA.get('/admin/audit/verify')],
    ];
    for (const [what, call] of attempts) expect(await errOf(call()), what).toMatchObject({ code: 'AccessDenied' });
    const refused = (await auditOf(root)).filter((e) => e.event === 'admin.refused' && e.details.accessKey === A.admin.accessKey);
    expect(refused.length - refusedBefore).toBe(attempts.length);
    for (const e of refused) expect(e).toMatchObject({ actor: `admin:${A.tenant}/${A.admin.accessKey}`, details: { tenant: A.tenant, code: 'AccessDenied' } });
    // nothing happened to B
    expect((await root.get<{ versions: unknown[] }>(P('admin', 'keys', B.bucket))).versions).toHaveLength(1);
    expect((await getObj(s3b, B.bucket, 'b.txt')).status).toBe(200);
    // no secret in the trail
    expect(JSON.stringify(await auditOf(root))).not.toContain(A.admin.secretKey);
  });

  it("A's admin administers A's own CMK and sees only it", async () => {
    const st = await adminA.get<{ cmks: { id: string }[] }>('/admin/cmk');
    expect(st.cmks.map((c) => c.id)).toEqual([A.cmk]);
    const r = await adminA.post<{ cmkId: string; newVersion: number }>('/admin/cmk/rotate', {});
    expect(r).toMatchObject({ cmkId: A.cmk, newVersion: 2 });
    expect((await getObj(s3a, A.bucket, 'a.txt')).body?.toString()).toBe('tenant a data');
    expect((await getObj(s3b, B.bucket, 'b.txt')).body?.toString()).toBe('tenant b data');
    const rotated = (await auditOf(root)).find((e) => e.event === 'cmk.rotate' && e.details.cmkId === A.cmk);
    expect(rotated?.actor).toBe(`admin:${A.tenant}/${A.admin.accessKey}`);
  });

  it("A's audit view holds A's entries only; the root's holds both", async () => {
    await adminB.post(P('admin', 'keys', B.bucket, 'rotate'));
    const mine = await auditOf(adminA);
    expect(mine.length).toBeGreaterThan(5);
    const bNames = (e: AuditEntry) =>
      e.actor.startsWith(`admin:${B.tenant}/`) || e.actor.startsWith(`user:${B.tenant}/`) ||
      (typeof e.details.dataset === 'string' && e.details.dataset.startsWith(B.bucket)) || e.details.bucket === B.bucket || e.details.cmkId === B.cmk;
    expect(mine.filter(bNames)).toEqual([]);
    expect(mine.some((e) => e.event === 'kek.rotate' && e.details.dataset === A.bucket)).toBe(true);
    const all = await auditOf(root);
    expect(all.some((e) => e.event === 'kek.rotate' && e.details.dataset === B.bucket && e.actor === `admin:${B.tenant}/${B.admin.accessKey}`)).toBe(true);
    // newest-N semantics on the filtered view
    const two = await auditOf(adminA, 2);
    expect(two.map((e) => e.seq)).toEqual(mine.slice(-2).map((e) => e.seq));
  });

  it('a tenant admin uses the CLI with its own credentials: keys list shows only its datasets, B is refused', async () => {
    const env = { LAKECRYPT_ADMIN_URL: admin.url, LAKECRYPT_ACCESS_KEY: A.admin.accessKey, LAKECRYPT_SECRET_KEY: A.admin.secretKey };
    const list = await runCli(['keys', 'list', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    const names = (JSON.parse(list.stdout) as Listed).datasets.map((d) => d.dataset);
    expect(names).toEqual(expect.arrayContaining([A.bucket, A.newBucket]));
    expect(names.filter((n) => !n.startsWith('ta-'))).toEqual([]);
    const show = await runCli(['keys', 'show', B.bucket], env);
    expect(show.code).toBe(1);
    expect(show.stderr).toMatch(/AccessDenied|outside this administrator's tenant/);
    expect(show.stderr).not.toContain(A.admin.secretKey);
  });
});

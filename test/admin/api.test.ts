/** Admin API + CLI against an in-process gateway on the shared MinIO. */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminClient } from '../../src/cli/client.ts';
import { rewrapStatePath } from '../../src/admin/rewrap.ts';
import { MARKER, scanDir } from '../../tools/gateway.ts';
import { rawRequest, signHeaders } from '../../tools/sigv4.ts';
import { sha256Hex } from '../../src/s3/sigv4.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { pollUntil } from '../../tools/wait.ts';
import { getObj, putText, startAdminHarness, type AdminHarness } from './helpers.ts';

let h: AdminHarness;
let s3: S3Client;
const BLOCK = 65536;
const bucket = uniqueBucket('adm');
const NONADMIN = { accessKey: 'reader-user', secretKey: 'reader-secret-123', buckets: ['*'], admin: false };

beforeAll(async () => {
  // a short waiting period for `keys destroy`, so that its destruction can be watched
  h = await startAdminHarness({ users: [NONADMIN], keyDeletionWaitSeconds: 1 });
  s3 = h.s3;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});
afterAll(async () => {
  s3?.destroy();
  await h?.close();
});

const lastAudit = async (n = 5) => (await h.gw.running.audit.list({ since: 1, limit: 100000 })).slice(-n);

describe('admin authentication', () => {
  it('refuses anonymous, non-admin, wrong-secret and tampered requests, and audits the refusals', async () => {
    const anon = await fetch(`${h.admin.url}/admin/keys`);
    expect(anon.status).toBe(403);
    expect(await anon.json()).toMatchObject({ error: 'AccessDenied' });

    const nonAdmin = new AdminClient({ url: h.admin.url, accessKey: NONADMIN.accessKey, secretKey: NONADMIN.secretKey });
    await expect(nonAdmin.get('/admin/keys')).rejects.toMatchObject({ code: 'AccessDenied' });

    const wrong = new AdminClient({ url: h.admin.url, accessKey: h.gw.accessKey, secretKey: 'not-the-secret' });
    await expect(wrong.get('/admin/keys')).rejects.toMatchObject({ code: 'SignatureDoesNotMatch' });

    const unknown = new AdminClient({ url: h.admin.url, accessKey: 'nobody-here', secretKey: 'whatever-secret' });
    await expect(unknown.get('/admin/keys')).rejects.toMatchObject({ code: 'InvalidAccessKeyId' });

    const refused = (await lastAudit(10)).filter((e) => e.event === 'admin.refused');
    expect(refused.length).toBeGreaterThanOrEqual(4);
    expect(refused.map((e) => e.details.code)).toEqual(expect.arrayContaining(['AccessDenied', 'SignatureDoesNotMatch', 'InvalidAccessKeyId']));
    expect(refused.some((e) => e.details.accessKey === NONADMIN.accessKey)).toBe(true);

    // admin allowed
    expect(await h.client.get('/admin/keys')).toHaveProperty('datasets');
  });

  it('rejects a body that does not match the signed payload hash', async () => {
    expect(await h.client.request('POST', '/admin/keys/xds/create', { body: {} }).catch((e: Error) => e)).not.toBeInstanceOf(Error);
    // sign one body, send another
    const signedBody = Buffer.from('{"version":1}');
    const sent = Buffer.from('{"version":2}');
    const { headers } = signHeaders(h.gw, {
      method: 'POST',
      host: new URL(h.admin.url).host,
      path: '/admin/keys/xds/revoke',
      headers: { 'content-type': 'application/json', 'content-length': String(sent.length) },
      payload: sha256Hex(signedBody),
    });
    const r = await rawRequest(h.admin.url, { method: 'POST', path: '/admin/keys/xds/revoke', headers, body: sent });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'XAmzContentSHA256Mismatch' });
  });

  it('login gives an HttpOnly SameSite=Strict session for admins only', async () => {
    const login = (accessKey: string, secretKey: string) =>
      fetch(`${h.admin.url}/admin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ accessKey, secretKey }) });
    expect((await login(h.gw.accessKey, 'wrong-secret-value')).status).toBe(403);
    expect((await login(NONADMIN.accessKey, NONADMIN.secretKey)).status).toBe(403);
    const ok = await login(h.gw.accessKey, h.gw.secretKey);
    expect(ok.status).toBe(200);
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const token = cookie.split(';')[0]!;
    const { csrfToken } = (await ok.json()) as { csrfToken: string };
    const r = await fetch(`${h.admin.url}/admin/keys`, { headers: { cookie: token } });
    expect(r.status).toBe(200);
    expect((await fetch(`${h.admin.url}/admin/keys`, { headers: { cookie: 'lakecrypt_admin=forged' } })).status).toBe(403);
    // logout changes state: without the session's CSRF token it is refused and the session lives on
    expect((await fetch(`${h.admin.url}/admin/logout`, { method: 'POST', headers: { cookie: token } })).status).toBe(403);
    expect((await fetch(`${h.admin.url}/admin/keys`, { headers: { cookie: token } })).status).toBe(200);
    await fetch(`${h.admin.url}/admin/logout`, { method: 'POST', headers: { cookie: token, 'x-lakecrypt-csrf': csrfToken } });
    expect((await fetch(`${h.admin.url}/admin/keys`, { headers: { cookie: token } })).status).toBe(403);
    // health stays open
    expect((await fetch(`${h.admin.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${h.admin.url}/metrics`)).status).toBe(200);
  });
});

describe('CLI', () => {
  it('lists keys as a table and as JSON; bad arguments give one line and a non-zero exit', async () => {
    await putText(s3, bucket, 'first', 'hello');
    const t = await h.cli(['keys', 'list']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout.split('\n')[0]).toMatch(/^DATASET\s+CMK\s+ACTIVE\s+VERSIONS/);
    expect(t.stdout).toContain(bucket);
    const j = await h.cli(['keys', 'list', '--json']);
    expect(j.code).toBe(0);
    const parsed = JSON.parse(j.stdout) as { datasets: { dataset: string; activeVersion: number }[] };
    expect(parsed.datasets.find((d) => d.dataset === bucket)?.activeVersion).toBe(1);
    const show = await h.cli(['keys', 'show', bucket]);
    expect(show.stdout).toMatch(/VERSION\s+STATE/);

    for (const args of [['keys', 'frobnicate'], ['keys', 'revoke', bucket], ['keys', 'destroy', bucket, '--version', 'x', '--yes'], ['objects', 'revoke', bucket]]) {
      const r = await h.cli(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
    }
    const bad = await h.cli(['keys', 'list'], { LAKECRYPT_SECRET_KEY: 'wrong-secret-value' });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^lakecrypt: SignatureDoesNotMatch: /);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const down = await h.cli(['keys', 'list'], { LAKECRYPT_ADMIN_URL: 'http://127.0.0.1:9' });
    expect(down.code).toBe(1);
    expect(down.stderr.trim()).toMatch(/^lakecrypt: cannot reach the admin API/);
    const missing = await h.cli(['keys', 'show', 'no-such-dataset-here']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('rotate, rewrap (no data read), destroy refused while referenced, then allowed; objects still read', async () => {
    const ds = uniqueBucket('rw');
    await s3.send(new CreateBucketCommand({ Bucket: ds }));
    const bodies = new Map<string, Buffer>();
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const b = randomBytes(100 + i * 37);
        bodies.set(`o/${i}`, b);
        await putText(s3, ds, `o/${i}`, b);
      }),
    );
    expect((await h.cli(['keys', 'rotate', ds])).code).toBe(0);
    const st = JSON.parse((await h.cli(['rewrap', 'status', ds, '--json'])).stdout) as { pending: number; activeVersion: number };
    expect(st.activeVersion).toBe(2);
    expect(st.pending).toBe(40);
    const refused = await h.cli(['keys', 'destroy', ds, '--version', '1', '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/still reference key version 1/);

    const run = await h.cli(['rewrap', 'run', ds, '--wait', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const res = JSON.parse(run.stdout) as { pending: number; job: { dataBytesRead: number; rewrapped: number; state: string; mode: string; headerKeysRewrapped: number } };
    expect(res.pending).toBe(0);
    expect(res.job.state).toBe('done');
    // the 40 headers are format 2: their one header key moved under v2, not one header rewritten
    expect(res.job).toMatchObject({ mode: 'header-keys', headerKeysRewrapped: 1, rewrapped: 0 });
    expect(res.job.dataBytesRead).toBe(0);
    // job state persisted in the meta bucket
    expect(await h.gw.backend.headObject(h.gw.running.gateway.metaBucket, rewrapStatePath(ds))).not.toBeNull();
    const human = await h.cli(['rewrap', 'status', ds]);
    expect(human.stdout).toMatch(/pending:\s+0/);
    expect(human.stdout).toMatch(/1 header key\(s\) re-wrapped; no header rewritten/);
    const shown = await h.cli(['keys', 'show', ds]);
    expect(shown.stdout).toMatch(/HEADER-KEY\s+GENERATION\s+WRAPPED-UNDER/);
    expect(shown.stdout).toMatch(/^1\s+v1\s+v2\s/m);

    const d = await h.cli(['keys', 'destroy', ds, '--version', '1', '--yes']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(new RegExp(`destruction scheduled: ${ds} v1, due \\S+Z; reads of its data are refused until then`));
    // the sweep destroys it when the waiting period (1 s here) is over
    await pollUntil(async () => (await h.client.get<{ versions: { version: number; state: string }[] }>(`/admin/keys/${ds}`)).versions[0].state === 'destroyed', {
      timeoutMs: 15_000,
      intervalMs: 100,
      retryErrors: false,
    });
    for (const [k, b] of bodies) {
      const g = await getObj(s3, ds, k);
      expect(g.status, k).toBe(200);
      expect(g.body!.equals(b)).toBe(true);
    }
  });
});

describe('DEK level', () => {
  it('revoking one block makes only ranges touching it fail with 403 KeyRevoked; rekey gives a new oid', async () => {
    const data = randomBytes(BLOCK * 3 - 100);
    await putText(s3, bucket, 'three-blocks', data);
    const r = await h.cli(['objects', 'revoke', bucket, 'three-blocks', '--block', '1', '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ block: 1, part: 1, partBlock: 1, resealed: true });
    // the trail names who revoked what: the object's bucket and key beside its oid, the admin as actor
    const revoked = (await h.gw.running.audit.list({ since: 1, limit: 100_000 })).filter((e) => e.event === 'block.revoke' && e.details.key === 'three-blocks');
    expect(revoked).toHaveLength(1);
    expect(revoked[0]).toMatchObject({ actor: `admin:${h.gw.accessKey}`, details: { bucket, key: 'three-blocks', blocks: [{ part: 1, block: 1 }] } });
    const b0 = await getObj(s3, bucket, 'three-blocks', `bytes=0-${BLOCK - 1}`);
    expect(b0.status).toBe(206);
    expect(b0.body!.equals(data.subarray(0, BLOCK))).toBe(true);
    const b2 = await getObj(s3, bucket, 'three-blocks', `bytes=${2 * BLOCK}-${data.length - 1}`);
    expect(b2.status).toBe(206);
    expect(b2.body!.equals(data.subarray(2 * BLOCK))).toBe(true);
    expect(await getObj(s3, bucket, 'three-blocks', `bytes=${BLOCK + 5}-${BLOCK + 10}`)).toMatchObject({ status: 403, code: 'KeyRevoked' });
    expect((await getObj(s3, bucket, 'three-blocks')).status).toBe(403);
    const oob = await h.cli(['objects', 'revoke', bucket, 'three-blocks', '--block', '3', '--yes']);
    expect(oob.code).toBe(1);
    expect(oob.stderr).toMatch(/out of range/);

    await putText(s3, bucket, 'rekey-me', data);
    const before = await h.gw.backend.headObject(bucket, 'rekey-me');
    const rk = await h.cli(['objects', 'rekey', bucket, 'rekey-me', '--json']);
    expect(rk.code, rk.stderr).toBe(0);
    const j = JSON.parse(rk.stdout) as { oldOid: string; oid: string };
    expect(j.oldOid).toBe(before!.meta['lc-oid']);
    expect(j.oid).not.toBe(j.oldOid);
    expect((await getObj(s3, bucket, 'rekey-me')).body!.equals(data)).toBe(true);
  });
});

describe('backup / restore', () => {
  it('writes the keystore to a file and imports it back', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lc-backup-'));
    const file = path.join(dir, 'ks.json');
    const b = await h.cli(['backup', file]);
    expect(b.code, b.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { format: string; records: { dataset: string }[] };
    expect(doc.format).toBe('lakecrypt-keystore/1');
    expect(doc.records.some((r) => r.dataset === bucket)).toBe(true);
    const r = await h.cli(['restore', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ created: 0 });
    const bad = await h.cli(['restore', path.join(dir, 'missing.json')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('migration', () => {
  it('encrypts plaintext objects in place, stoppable and resumable, byte-identical through lakecrypt', async () => {
    const mb = uniqueBucket('mig');
    const backend = h.gw.backend;
    await backend.createBucket(mb);
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 24; i++) {
      const b = Buffer.from(`${MARKER} plaintext object ${i} ${randomBytes(200 + i).toString('hex')}`);
      bodies.set(`p/${String(i).padStart(2, '0')}`, b);
      await backend.putObject(mb, `p/${String(i).padStart(2, '0')}`, b, { size: b.length, meta: { owner: `u${i}` } });
    }
    // unmigrated objects are refused
    expect(await getObj(s3, mb, 'p/00')).toMatchObject({ status: 403, code: 'AccessDenied' });
    // slow run, stopped halfway
    // 4 objects a second: the stop below lands mid-run however slow the machine is (24 objects take 6 s).
    await h.client.post(`/admin/migrate/${mb}`, { rate: 4 });
    await expect
      .poll(async () => ((await h.client.get(`/admin/migrate/${mb}`)) as { migrated?: number }).migrated ?? 0, { timeout: 10_000, interval: 100 })
      .toBeGreaterThan(0);
    const stopped = await h.cli(['migrate', mb, '--stop', '--json']);
    expect(stopped.code, stopped.stderr).toBe(0);
    const mid = JSON.parse(stopped.stdout) as { state: string; migrated: number };
    expect(mid.state).toBe('stopped');
    expect(mid.migrated).toBeGreaterThan(0);
    expect(mid.migrated).toBeLessThan(bodies.size);
    // resume to the end
    const done = await h.cli(['migrate', mb, '--wait', '--json']);
    expect(done.code, done.stderr).toBe(0);
    const fin = JSON.parse(done.stdout) as { state: string; migrated: number; alreadyEncrypted: number; failed: number };
    expect(fin.state).toBe('done');
    expect(fin.failed).toBe(0);
    expect(fin.migrated + mid.migrated).toBeGreaterThanOrEqual(bodies.size);
    for (const [k, b] of bodies) {
      const info = await backend.headObject(mb, k);
      expect(info!.meta['lc-oid'], k).toMatch(/^[0-9a-f]{32}$/);
      const g = await getObj(s3, mb, k);
      expect(g.status, k).toBe(200);
      expect(g.body!.equals(b), k).toBe(true);
    }
    // idempotent: a second run migrates nothing
    const again = JSON.parse((await h.cli(['migrate', mb, '--wait', '--json', '--fresh'])).stdout) as { migrated: number; alreadyEncrypted: number };
    expect(again.migrated).toBe(0);
    expect(again.alreadyEncrypted).toBe(bodies.size);
    // no plaintext left in MinIO's files for this bucket
    const dir = minioCoords().dataDir;
    if (dir && existsSync(path.join(dir, mb))) expect(scanDir(path.join(dir, mb), [MARKER])).toEqual([]);
  });
});

describe('audit', () => {
  it('lists entries and verify fails (non-zero exit) after one entry is edited in the backend', async () => {
    const list = await h.cli(['audit', 'list', '--limit', '5']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^SEQ\s+TIME\s+EVENT/);
    const ok = await h.cli(['audit', 'verify']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/audit log OK/);
    const meta = h.gw.running.gateway.metaBucket;
    const key = 'audit/000000000002.json';
    const { data } = await h.gw.backend.getBuffer(meta, key);
    const e = JSON.parse(data.toString()) as { details: Record<string, unknown> };
    e.details = { ...e.details, tampered: true };
    const nb = Buffer.from(JSON.stringify(e));
    await h.gw.backend.putObject(meta, key, nb, { size: nb.length });
    const bad = await h.cli(['audit', 'verify']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^lakecrypt: audit log BROKEN at entry 2/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('gc', () => {
  it('answers (501 when the gc module is absent), dry run by default', async () => {
    const r = await h.cli(['gc', '--json']);
    if (r.code === 0) expect(JSON.parse(r.stdout)).toMatchObject({ apply: false });
    else expect(r.stderr).toMatch(/NotImplemented/);
    const apply = await h.cli(['gc', '--apply']);
    expect(apply.code).toBe(2);
  });
});

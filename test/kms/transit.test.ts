/**
 * The KMS endpoint (issue #21) on one in-process gateway over MinIO, with its admin port, spoken to as a Vault
 * Transit client speaks (raw JSON over HTTP): token issue (admin API and CLI), the answer shapes, wraps under the
 * active KEK version and unwraps of older ones after a rotation, rewrap, data keys, every refusal with Vault's
 * status codes, revocation and restore, token revoke and expiry, a token record planted in the meta bucket, and
 * the audit trail (actor = the token's user, no key or plaintext in it).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminClient } from '../../src/cli/client.ts';
import type { AuditEntry } from '../../src/keys/audit.ts';
import { startKms, type RunningKms } from '../../src/kms/server.ts';
import { TOKEN_PREFIX } from '../../src/kms/tokens.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil } from '../../tools/wait.ts';
import { startAdminHarness, type AdminHarness } from '../admin/helpers.ts';

const P = (...s: string[]) => AdminClient.path(...s);
const secret = () => randomBytes(18).toString('base64url');
const ANALYST = { accessKey: `analyst-${randomBytes(3).toString('hex')}`, secretKey: secret() };
const OUTSIDER = { accessKey: `outsider-${randomBytes(3).toString('hex')}`, secretKey: secret() };
const LAKE = `kmslake-${randomBytes(3).toString('hex')}`;
const OTHER = `kmsother-${randomBytes(3).toString('hex')}`;
const TENANT = { name: `tk${randomBytes(3).toString('hex')}`, bucket: `kmstenant-${randomBytes(3).toString('hex')}` };
const TENANT_ADMIN = { accessKey: `tk-admin-${randomBytes(3).toString('hex')}`, secretKey: secret() };
const TENANT_USER = { accessKey: `tk-user-${randomBytes(3).toString('hex')}`, secretKey: secret() };
const DS = `${LAKE}/finance`;
const KEY = `${LAKE}:finance`;

let h: AdminHarness;
let kms: RunningKms;
let analystToken: string;
let outsiderToken: string;

interface Answer { status: number; body: { data?: Record<string, unknown>; errors?: string[] } & Record<string, unknown> }

async function call(method: string, path: string, token: string | undefined, body?: unknown, raw?: string): Promise<Answer> {
  const r = await fetch(`${kms.url}${path}`, {
    method,
    headers: { ...(token ? { 'X-Vault-Token': token } : {}), ...(body !== undefined || raw !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  return { status: r.status, body: (await r.json()) as Answer['body'] };
}
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const encrypt = (key: string, pt: Buffer, token = analystToken, extra: Record<string, unknown> = {}) => call('POST', `/v1/transit/encrypt/${key}`, token, { plaintext: b64(pt), ...extra });
const decrypt = (key: string, ct: unknown, token = analystToken, extra: Record<string, unknown> = {}) => call('POST', `/v1/transit/decrypt/${key}`, token, { ciphertext: ct, ...extra });
const audit = async (limit = 200) => (await h.client.get<{ entries: AuditEntry[] }>('/admin/audit', { limit: String(limit) })).entries;

beforeAll(async () => {
  h = await startAdminHarness({
    users: [
      { ...ANALYST, buckets: [LAKE], admin: false },
      { ...OUTSIDER, buckets: [OTHER], admin: false },
      { ...TENANT_USER, buckets: ['*'], admin: false, tenant: TENANT.name },
    ],
    tenants: [{ name: TENANT.name, buckets: [TENANT.bucket], admins: [TENANT_ADMIN] }],
  });
  kms = await startKms({ host: h.gw.running, bind: '127.0.0.1', port: 0 });
  for (const b of [LAKE, OTHER, TENANT.bucket]) await h.s3.send(new CreateBucketCommand({ Bucket: b }));
  await h.client.post(P('admin', 'datasets', DS, 'create'));
  analystToken = (await h.client.post<{ token: string }>(P('admin', 'kms', 'tokens'), { user: ANALYST.accessKey, ttl: '1h' })).token;
  outsiderToken = (await h.client.post<{ token: string }>(P('admin', 'kms', 'tokens'), { user: OUTSIDER.accessKey })).token;
}, 120_000);

afterAll(async () => {
  await kms?.close();
  await h?.close();
});

describe('KMS endpoint: Vault Transit answers over dataset KEKs', () => {
  it('encrypt -> vault:v1:, decrypt -> the same bytes; Vault envelope; every value its own', async () => {
    const key = randomBytes(16);
    const e = await encrypt(KEY, key);
    expect(e.status).toBe(200);
    expect(e.body).toMatchObject({ lease_id: '', renewable: false, lease_duration: 0, wrap_info: null, auth: null });
    expect(e.body.data).toMatchObject({ key_version: 1 });
    const ct = e.body.data!.ciphertext as string;
    expect(ct).toMatch(/^vault:v1:[A-Za-z0-9+/]+=*$/);
    expect(ct).not.toContain(key.toString('base64'));
    // a second wrap of the same key is another value (fresh salt and nonce)
    expect((await encrypt(KEY, key)).body.data!.ciphertext).not.toBe(ct);
    const d = await decrypt(KEY, ct);
    expect(d.status).toBe(200);
    expect(Buffer.from(d.body.data!.plaintext as string, 'base64')).toEqual(key);
    // PUT is Vault's other verb for the same write; Authorization: Bearer its other header
    const put = await fetch(`${kms.url}/v1/transit/decrypt/${KEY}`, { method: 'PUT', headers: { Authorization: `Bearer ${analystToken}` }, body: JSON.stringify({ ciphertext: ct }) });
    expect(((await put.json()) as Answer['body']).data!.plaintext).toBe(key.toString('base64'));
  });

  it('a name sent with its / as is (as parquet-java\'s Vault sample sends a master key id) is the same dataset', async () => {
    const e = await encrypt(DS, Buffer.from('slashed'));
    expect(e.status, JSON.stringify(e.body)).toBe(200);
    expect((await decrypt(KEY, e.body.data!.ciphertext)).body.data!.plaintext).toBe(b64('slashed'));
    const k = await call('POST', `/v1/transit/datakey/wrapped/${DS}`, analystToken, {});
    expect((await decrypt(DS, k.body.data!.ciphertext)).status).toBe(200);
    expect((await call('GET', `/v1/transit/keys/${DS}`, analystToken)).body.data).toMatchObject({ name: KEY });
    // percent-encoded '/' too
    expect((await decrypt(`${LAKE}%2Ffinance`, e.body.data!.ciphertext)).status).toBe(200);
  });

  it('the bucket dataset is a key too; a value of one dataset does not open under another', async () => {
    const e = await encrypt(LAKE, Buffer.from('bucket-level'));
    expect(e.status).toBe(200);
    const ct = e.body.data!.ciphertext as string;
    expect((await decrypt(LAKE, ct)).body.data!.plaintext).toBe(b64('bucket-level'));
    const moved = await decrypt(KEY, ct);
    expect(moved.status).toBe(400);
    expect(moved.body.errors![0]).toMatch(/authentication failed/);
  });

  it('associated_data is bound: the wrong one or none does not open', async () => {
    const ad = b64('file-42');
    const ct = (await encrypt(KEY, Buffer.from('k'), analystToken, { associated_data: ad })).body.data!.ciphertext;
    expect((await decrypt(KEY, ct, analystToken, { associated_data: ad })).status).toBe(200);
    expect((await decrypt(KEY, ct, analystToken, { associated_data: b64('file-43') })).status).toBe(400);
    expect((await decrypt(KEY, ct)).status).toBe(400);
  });

  it('datakey plaintext|wrapped: a fresh key of the bits asked and its wrap', async () => {
    const p = await call('POST', `/v1/transit/datakey/plaintext/${KEY}`, analystToken, { bits: 128 });
    expect(p.status).toBe(200);
    const pt = Buffer.from(p.body.data!.plaintext as string, 'base64');
    expect(pt.length).toBe(16);
    expect((await decrypt(KEY, p.body.data!.ciphertext)).body.data!.plaintext).toBe(pt.toString('base64'));
    const w = await call('POST', `/v1/transit/datakey/wrapped/${KEY}`, analystToken, {});
    expect(w.status).toBe(200);
    expect(w.body.data!.plaintext).toBeUndefined();
    expect(Buffer.from((await decrypt(KEY, w.body.data!.ciphertext)).body.data!.plaintext as string, 'base64').length).toBe(32);
    expect((await call('POST', `/v1/transit/datakey/other/${KEY}`, analystToken, {})).status).toBe(400);
    expect((await call('POST', `/v1/transit/datakey/plaintext/${KEY}`, analystToken, { bits: 100 })).status).toBe(400);
  });

  it('bad input is 400 with Vault\'s errors body; unknown keys and paths 404', async () => {
    const cases: [Promise<Answer>, number, RegExp][] = [
      [call('POST', `/v1/transit/encrypt/${KEY}`, analystToken, { plaintext: 'not base64!' }), 400, /plaintext is not valid base64/],
      [call('POST', `/v1/transit/encrypt/${KEY}`, analystToken, {}), 400, /missing plaintext/],
      [call('POST', `/v1/transit/encrypt/${KEY}`, analystToken, undefined, '{not json'), 400, /failed to parse JSON/],
      [call('POST', `/v1/transit/encrypt/${KEY}`, analystToken, { plaintext: b64('x'), batch_input: [] }), 400, /batch_input/],
      [call('POST', `/v1/transit/encrypt/${KEY}`, analystToken, { plaintext: b64('x'), context: b64('c') }), 400, /derived/],
      [call('POST', `/v1/transit/encrypt/${KEY}`, analystToken, { plaintext: b64(randomBytes(40_000)) }), 400, /limited to/],
      [decrypt(KEY, 'vault:v1:AAAA'), 400, /invalid ciphertext/],
      [decrypt(KEY, 'hello'), 400, /invalid ciphertext/],
      [decrypt(KEY, undefined), 400, /missing ciphertext/],
      [encrypt(`${LAKE}:nosuch`, Buffer.from('x')), 404, /encryption key not found/],
      [call('GET', `/v1/transit/keys/${LAKE}:nosuch`, analystToken), 404, /encryption key not found/],
      [call('POST', `/v1/transit/sign/${KEY}`, analystToken, {}), 404, /unsupported path/],
    ];
    for (const [p, status, msg] of cases) {
      const a = await p;
      expect(a.status, JSON.stringify(a.body)).toBe(status);
      expect(a.body.errors?.[0]).toMatch(msg);
    }
    // a body over the limit is refused unread
    const big = await fetch(`${kms.url}/v1/transit/encrypt/${KEY}`, { method: 'POST', headers: { 'X-Vault-Token': analystToken }, body: 'x'.repeat(70_000) });
    expect(big.status).toBe(400);
    // a tampered value does not open
    const ct = (await encrypt(KEY, randomBytes(16))).body.data!.ciphertext as string;
    const raw = Buffer.from(ct.slice('vault:v1:'.length), 'base64');
    raw[raw.length - 1] ^= 1;
    expect((await decrypt(KEY, `vault:v1:${raw.toString('base64')}`)).status).toBe(400);
  });

  it('no token, a bad token, or a user who cannot read the bucket: 403 permission denied', async () => {
    const ct = (await encrypt(KEY, randomBytes(16))).body.data!.ciphertext;
    for (const tok of ['', 'lct_' + 'A'.repeat(43), 'garbage', outsiderToken]) {
      // '' sends no token header at all
      for (const a of [await decrypt(KEY, ct, tok), await encrypt(KEY, randomBytes(16), tok), await call('GET', `/v1/transit/keys/${KEY}`, tok)]) {
        expect(a.status).toBe(403);
        expect(a.body.errors![0]).toMatch(/^permission denied/);
      }
    }
    // the outsider is refused before the name is looked at: an unknown dataset is 403 too, not 404
    expect((await encrypt(`${LAKE}:nosuch`, Buffer.from('x'), outsiderToken)).status).toBe(403);
    // the outsider's own bucket works for it
    expect((await encrypt(OTHER, Buffer.from('mine'), outsiderToken)).status).toBe(200);
  });

  it('rotation: new wraps are v2, v1 values still unwrap; rewrap moves them to v2; keys/<key> says so', async () => {
    const key = randomBytes(32);
    const v1 = (await encrypt(KEY, key)).body.data!.ciphertext as string;
    expect(v1).toMatch(/^vault:v1:/);
    await h.client.post(P('admin', 'keys', DS, 'rotate'));
    const v2 = await encrypt(KEY, key);
    expect(v2.body.data).toMatchObject({ key_version: 2 });
    expect(v2.body.data!.ciphertext).toMatch(/^vault:v2:/);
    expect((await decrypt(KEY, v1)).body.data!.plaintext).toBe(key.toString('base64'));
    // a v1 value relabelled as v2 does not open (the version is bound)
    expect((await decrypt(KEY, v1.replace('vault:v1:', 'vault:v2:'))).status).toBe(400);
    const rw = await call('POST', `/v1/transit/rewrap/${KEY}`, analystToken, { ciphertext: v1 });
    expect(rw.status).toBe(200);
    expect(rw.body.data).toMatchObject({ key_version: 2 });
    const moved = rw.body.data!.ciphertext as string;
    expect(moved).toMatch(/^vault:v2:/);
    expect((await decrypt(KEY, moved)).body.data!.plaintext).toBe(key.toString('base64'));
    const info = await call('GET', `/v1/transit/keys/${KEY}`, analystToken);
    expect(info.status).toBe(200);
    expect(info.body.data).toMatchObject({ name: KEY, type: 'aes256-gcm96', latest_version: 2, min_decryption_version: 1, supports_encryption: true, derived: false, exportable: false });
    expect(Object.keys(info.body.data!.keys as object).sort()).toEqual(['1', '2']);
    // v1 revoked: its values are refused (403), the rewrapped one still opens; restored: back
    await h.client.post(P('admin', 'keys', DS, 'revoke'), { version: 1 });
    const refused = await decrypt(KEY, v1);
    expect(refused.status).toBe(403);
    expect(refused.body.errors![0]).toMatch(/revoked/);
    expect((await decrypt(KEY, moved)).status).toBe(200);
    expect(Object.keys((await call('GET', `/v1/transit/keys/${KEY}`, analystToken)).body.data!.keys as object)).toEqual(['2']);
    await h.client.post(P('admin', 'keys', DS, 'restore'), { version: 1 });
    expect((await decrypt(KEY, v1)).status).toBe(200);
  });

  it('keys revoke (every version): wraps and unwraps refused, restore brings both back', async () => {
    const ct = (await encrypt(KEY, Buffer.from('before'))).body.data!.ciphertext;
    await h.client.post(P('admin', 'keys', DS, 'revoke'), {});
    expect((await decrypt(KEY, ct)).status).toBe(403);
    expect((await encrypt(KEY, Buffer.from('x'))).status).toBe(403);
    await h.client.post(P('admin', 'keys', DS, 'restore'), {});
    expect((await decrypt(KEY, ct)).body.data!.plaintext).toBe(b64('before'));
  });

  it('audit: one record per call with the token\'s user as actor, refusals too; never a key or plaintext', async () => {
    const pt = randomBytes(16);
    const ct = (await encrypt(KEY, pt)).body.data!.ciphertext;
    await decrypt(KEY, ct);
    await decrypt(KEY, ct, outsiderToken);
    await decrypt(KEY, ct, 'bogus-token');
    const entries = await audit();
    const actorA = `user:${ANALYST.accessKey}`;
    const mine = entries.filter((e) => e.event.startsWith('kms.'));
    expect(mine.some((e) => e.event === 'kms.decrypt' && e.actor === actorA && e.details.dataset === DS && typeof e.details.version === 'number')).toBe(true);
    expect(mine.some((e) => e.event === 'kms.encrypt' && e.actor === actorA)).toBe(true);
    expect(mine.some((e) => e.event === 'kms.refused' && e.actor === `user:${OUTSIDER.accessKey}` && e.details.code === 'AccessDenied' && e.details.key === DS)).toBe(true);
    expect(mine.some((e) => e.event === 'kms.refused' && e.actor === 'anonymous' && e.details.code === 'AccessDenied')).toBe(true);
    expect(mine.some((e) => e.event === 'kms.refused' && e.details.code === 'KeyRevoked')).toBe(true);
    expect(entries.some((e) => e.event === 'kms.token.create' && e.details.user === ANALYST.accessKey)).toBe(true);
    const text = JSON.stringify(entries);
    for (const secretish of [pt.toString('base64'), pt.toString('hex'), analystToken, outsiderToken, ct as string]) expect(text).not.toContain(secretish);
  });

  it('CLI: kms token create prints a working token; list shows accessors only; revoke ends it', async () => {
    const made = await h.cli(['kms', 'token', 'create', '--user', ANALYST.accessKey, '--ttl', '10m']);
    expect(made.code, made.stderr).toBe(0);
    const token = made.stdout.trim();
    expect(token).toMatch(/^lct_[A-Za-z0-9_-]{43}$/);
    expect(made.stderr).toMatch(/expires/);
    expect((await encrypt(KEY, Buffer.from('x'), token)).status).toBe(200);
    const list = await h.cli(['--json', 'kms', 'token', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toContain(token);
    const tokens = (JSON.parse(list.stdout) as { tokens: { accessor: string; user: string; expired: boolean }[] }).tokens;
    expect(tokens.filter((t) => t.user === ANALYST.accessKey).length).toBeGreaterThanOrEqual(2);
    expect((await h.cli(['kms', 'token', 'create', '--user', 'nobody-at-all'])).code).not.toBe(0);
    expect((await h.cli(['kms', 'token', 'create', '--user', ANALYST.accessKey, '--ttl', '99d'])).stderr).toMatch(/ttl must be/);
    const rv = await h.cli(['kms', 'token', 'revoke', token]);
    expect(rv.code, rv.stderr).toBe(0);
    // every gateway believes a verified token for at most the revocation bound
    await pollUntil(async () => (await encrypt(KEY, Buffer.from('x'), token)).status === 403, { timeoutMs: 10_000, what: 'revoked token refused' });
    expect((await h.cli(['kms', 'token', 'revoke', token])).code).not.toBe(0);
  });

  it('an expired token is refused', async () => {
    const t = (await h.client.post<{ token: string }>(P('admin', 'kms', 'tokens'), { user: ANALYST.accessKey, ttl: 1 })).token;
    await pollUntil(async () => (await encrypt(KEY, Buffer.from('x'), t)).status === 403, { timeoutMs: 10_000, what: 'expired token refused' });
  });

  it('a token record planted or edited in the meta bucket is no token (the seal does not verify)', async () => {
    const { backend, metaBucket } = h.gw.running.gateway;
    const real = await h.client.post<{ token: string; accessor: string }>(P('admin', 'kms', 'tokens'), { user: OUTSIDER.accessKey });
    const key = `${TOKEN_PREFIX}${real.accessor}.json`;
    const rec = JSON.parse((await backend.getBuffer(metaBucket, key)).data.toString('utf8')) as Record<string, unknown>;
    expect(JSON.stringify(rec)).not.toContain(real.token);
    // the backend turns the outsider's token into the analyst's: refused
    const edited = Buffer.from(JSON.stringify({ ...rec, user: ANALYST.accessKey }));
    await backend.putObject(metaBucket, key, edited, { size: edited.length });
    // (never presented before: no gateway has a verified lookup of it cached)
    expect((await encrypt(KEY, Buffer.from('x'), real.token)).status).toBe(403);
    // a record made up for a token of the backend's choosing (copying a real seal): refused
    const forged = 'lct_' + randomBytes(32).toString('base64url');
    const accessor = (await import('node:crypto')).createHash('sha256').update(forged).digest('hex');
    const body = Buffer.from(JSON.stringify({ ...rec, accessor, user: ANALYST.accessKey }));
    await backend.putObject(metaBucket, `${TOKEN_PREFIX}${accessor}.json`, body, { size: body.length });
    expect((await encrypt(KEY, Buffer.from('x'), forged)).status).toBe(403);
  });

  it('tenants: a tenant admin issues tokens for its users only; the tenant user reaches its tenant\'s datasets only', async () => {
    const tadmin = new AdminClient({ url: h.admin.url, ...TENANT_ADMIN });
    const refused = await tadmin.post(P('admin', 'kms', 'tokens'), { user: ANALYST.accessKey }).then(() => 'issued', (e: { code?: string }) => e.code);
    expect(refused).toBe('AccessDenied');
    const t = (await tadmin.post<{ token: string }>(P('admin', 'kms', 'tokens'), { user: TENANT_USER.accessKey })).token;
    // its list holds its users' tokens only
    const listed = (await tadmin.get<{ tokens: { user: string }[] }>(P('admin', 'kms', 'tokens'))).tokens;
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.every((x) => x.user === TENANT_USER.accessKey)).toBe(true);
    expect((await encrypt(TENANT.bucket, Buffer.from('t'), t)).status).toBe(200);
    expect((await encrypt(KEY, Buffer.from('t'), t)).status).toBe(403);
    const entries = await audit();
    expect(entries.some((e) => e.event === 'kms.encrypt' && e.actor === `user:${TENANT.name}/${TENANT_USER.accessKey}` && e.details.dataset === TENANT.bucket)).toBe(true);
    expect(entries.some((e) => e.event === 'admin.refused' && e.actor === `admin:${TENANT.name}/${TENANT_ADMIN.accessKey}`)).toBe(true);
  });

  it('a flood of refusals without a token is recorded 20 a second, the rest counted in one record', async () => {
    await Promise.all(Array.from({ length: 60 }, () => encrypt(KEY, Buffer.from('x'), 'flood-token')));
    const found = await pollUntil(async () => (await audit(400)).find((e) => e.event === 'kms.refused' && typeof e.details.suppressed === 'number'), { timeoutMs: 10_000, what: 'a suppressed-count record' });
    expect(found.details.suppressed as number).toBeGreaterThan(0);
    const one = (await audit(400)).filter((e) => e.event === 'kms.refused' && e.actor === 'anonymous' && e.details.suppressed === undefined && Date.parse(e.ts) >= Date.parse(found.ts) - 3000);
    expect(one.length).toBeLessThan(60);
  });

  it('TLS: with the S3 port\'s certificate the endpoint speaks HTTPS only', async () => {
    const dir = makeTmpDir('lakecrypt-kms-tls-').path;
    const tls = { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', tls.key, '-out', tls.cert], { stdio: 'ignore' });
    const k = await startKms({ host: h.gw.running, bind: '127.0.0.1', port: 0, tls });
    try {
      expect(k.url).toMatch(/^https:\/\//);
      const body = JSON.stringify({ plaintext: b64('over tls') });
      const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpsRequest(`${k.url}/v1/transit/encrypt/${KEY}`, { method: 'POST', rejectUnauthorized: false, headers: { 'X-Vault-Token': analystToken, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
      expect(answer.status).toBe(200);
      const ct = (JSON.parse(answer.text) as Answer['body']).data!.ciphertext;
      expect((await decrypt(KEY, ct)).body.data!.plaintext).toBe(b64('over tls'));
      // plain HTTP on the TLS port gets no answer
      const plain = await fetch(`${k.url.replace('https:', 'http:')}/v1/sys/health`).then((r) => r.status, () => 0);
      expect(plain === 0 || plain >= 400).toBe(true);
    } finally {
      await k.close();
    }
  });

  it('sys/health answers 200 while keys may be handed out', async () => {
    const r = await fetch(`${kms.url}/v1/sys/health`);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ initialized: true, sealed: false });
  });
});

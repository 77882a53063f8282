/**
 * Issue #21's acceptance: Parquet modular encryption with lakecrypt as the KMS, on two gateway processes over one
 * MinIO, with the pyarrow KmsClient and helpers of docs/clients.md "Column encryption (Parquet modular
 * encryption)" run AS PRINTED (extracted from the page here; test/clients/py/kms_pme.py execs them).
 *
 *  - pyarrow writes Hive-partitioned datasets (encrypted footer, and plaintext-footer mode) with `ssn` and `salary`
 *    encrypted, through the gateway, keys wrapped by the KMS endpoint; read back equal; no plaintext in MinIO;
 *    a reader with S3 access but no KMS fails on the file (encrypted footer) or on the protected columns only
 *  - `keys revoke` through one gateway: on both gateways, every S3 GET of a file and every PME unwrap of a copy
 *    downloaded before the revocation that starts more than the bound after the call returned is refused;
 *    `keys restore` brings both back
 *  - rotation: new files carry `vault:v2:` wrapped keys, old ones `vault:v1:` and still read
 *  - a user who cannot read the bucket is refused by the KMS; the audit trail shows the unwraps and refusals
 *
 * The page's two blocks are fenced with `~~~python`, not backticks: test/clients/docs.test.ts holds every
 * backtick block to be a copy of a `docs:begin` snippet of a test, while these go the other way (the page is the
 * source, this test runs it), so that rule is not theirs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, GetObjectCommand, S3Client, type S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AdminClient } from '../../src/cli/client.ts';
import type { AuditEntry } from '../../src/keys/audit.ts';
import { launchGateway, MARKER, newCredentials, ROOT, scanDir, type GatewayProcess } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil } from '../../tools/wait.ts';
import { runCli } from '../admin/helpers.ts';
import { startOpenBao } from '../helpers/openbao.ts';
import { pythonExe, scriptPath } from './python.ts';

const BOUND_MS = 1000;
const secret = () => randomBytes(18).toString('base64url');
const ANALYST = { accessKey: `pme-analyst-${randomBytes(3).toString('hex')}`, secretKey: secret() };
const OUTSIDER = { accessKey: `pme-outsider-${randomBytes(3).toString('hex')}`, secretKey: secret() };
const LAKE = `pmelake-${randomBytes(3).toString('hex')}`;
const DATASET = `${LAKE}/finance`;
/** A dataset name is the master key's name in the Parquet configuration (the client writes it as `lake:finance`). */
const MASTER_KEY = DATASET;
const SECTION = '## Column encryption (Parquet modular encryption)';

const tmp = makeTmpDir('lakecrypt-pme-');
const root = newCredentials();
const gws: GatewayProcess[] = [];
const kmsUrl: string[] = [];
let worker: Worker;
let analystToken: string;
let outsiderToken: string;

/** The python blocks of the page's section, as printed (`~~~python` fences). */
function pageBlocks(): string[] {
  const md = readFileSync(path.join(ROOT, 'docs/clients.md'), 'utf8');
  const start = md.indexOf(SECTION);
  expect(start, `docs/clients.md has the section "${SECTION}"`).toBeGreaterThan(0);
  const end = md.indexOf('\n## ', start + SECTION.length);
  const section = md.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^~~~python\n([\s\S]*?)^~~~$/gm)].map((m) => m[1]);
}

/** The python worker: one JSON command per line, one JSON answer per line. */
class Worker {
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private waiting?: { resolve: (l: string) => void; reject: (e: Error) => void };
  private stderr = '';
  private exited?: string;
  constructor(env: Record<string, string>) {
    this.child = spawn(pythonExe(), [scriptPath('kms_pme.py')], { env: { ...process.env, ...env, PYTHONDONTWRITEBYTECODE: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w) w.resolve(l);
      else this.lines.push(l);
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-8000)));
    this.child.on('exit', (code, signal) => {
      this.exited = `python worker exited (${code ?? signal}); stderr:\n${this.stderr}`;
      this.waiting?.reject(new Error(this.exited));
      this.waiting = undefined;
    });
  }
  async send<T = Record<string, unknown>>(cmd: Record<string, unknown>, timeoutMs = 120_000): Promise<T & { ok: boolean; error?: string }> {
    if (this.exited) throw new Error(this.exited);
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    const line =
      this.lines.shift() ??
      (await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`python worker: no answer to ${String(cmd.op)} in ${timeoutMs} ms; stderr:\n${this.stderr}`)), timeoutMs);
        this.waiting = {
          resolve: (l) => {
            clearTimeout(t);
            resolve(l);
          },
          reject: (e) => {
            clearTimeout(t);
            reject(e);
          },
        };
      }));
    return JSON.parse(line) as T & { ok: boolean; error?: string };
  }
  /** send(), failing the test with the worker's error and trace unless it answered ok. */
  async ok<T = Record<string, unknown>>(cmd: Record<string, unknown>): Promise<T> {
    const a = await this.send<T & { trace?: string }>(cmd);
    expect(a.ok, `${String(cmd.op)}: ${a.error}\n${a.trace ?? ''}`).toBe(true);
    return a;
  }
  close(): void {
    this.child.stdin!.end();
    this.child.kill();
  }
}

const s3Of = (g: GatewayProcess, c = ANALYST) =>
  new S3Client({ endpoint: g.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey } });
const adminOf = (g: GatewayProcess) => new AdminClient({ url: g.adminUrl, accessKey: root.accessKey, secretKey: root.secretKey });
const cli = (args: string[]) => runCli(args, { LAKECRYPT_ADMIN_URL: gws[0].adminUrl, LAKECRYPT_ACCESS_KEY: root.accessKey, LAKECRYPT_SECRET_KEY: root.secretKey });
const codeOf = (e: unknown) => (e as S3ServiceException).name;

/** The file's bytes through a gateway (the S3 user's view: Parquet with its own column encryption inside). */
async function download(g: GatewayProcess, key: string): Promise<Buffer> {
  const o = await s3Of(g).send(new GetObjectCommand({ Bucket: LAKE, Key: key }));
  return Buffer.from(await o.Body!.transformToByteArray());
}
/** 'served' or the S3 error code of a GET. */
const s3Get = (g: GatewayProcess, key: string) => download(g, key).then(() => 'served', codeOf);
/** 'read' or the error of a PME read of a local copy through the KMS endpoint of gateway i (a fresh key cache). */
async function kmsRead(i: number, file: string, token = analystToken): Promise<string> {
  const a = await worker.send<{ rows?: number }>({ op: 'read_local', path: file, kms_url: kmsUrl[i], token });
  return a.ok ? 'read' : a.error!;
}
/** Object keys of a pyarrow path `bucket/key`. */
const keyOf = (p: string) => p.slice(LAKE.length + 1);

beforeAll(async () => {
  const minio = inject('minio');
  const env = {
    LAKECRYPT_BACKEND: 's3',
    LAKECRYPT_S3_ENDPOINT: minio.endpoint,
    LAKECRYPT_S3_ACCESS_KEY: minio.accessKey,
    LAKECRYPT_S3_SECRET_KEY: minio.secretKey,
    LAKECRYPT_META_BUCKET: `pme-meta-${randomBytes(4).toString('hex')}`,
    LAKECRYPT_KMS_PORT: '0',
    LAKECRYPT_REVOCATION_BOUND_MS: String(BOUND_MS),
    LAKECRYPT_USERS: JSON.stringify([
      { ...ANALYST, buckets: [LAKE] },
      { ...OUTSIDER, buckets: [`${LAKE}-other`] },
    ]),
  };
  // one data dir: the default (local) CMK is shared by both gateways, as in a fleet
  const dataDir = makeTmpDir('lakecrypt-pme-gw-').path;
  for (let i = 0; i < 2; i++) {
    const g = await launchGateway({ env, credentials: root, quiet: true, dataDir });
    gws.push(g);
    const m = await g.waitForOutput(/KMS endpoint:\s+(\S+)/, { what: 'KMS endpoint line' });
    kmsUrl.push(m[1]);
  }
  await s3Of(gws[0], root).send(new CreateBucketCommand({ Bucket: LAKE }));
  const made = await cli(['datasets', 'create', DATASET]);
  expect(made.code, made.stderr).toBe(0);
  const tok = await cli(['kms', 'token', 'create', '--user', ANALYST.accessKey, '--ttl', '1h']);
  expect(tok.code, tok.stderr).toBe(0);
  analystToken = tok.stdout.trim();
  outsiderToken = (await cli(['kms', 'token', 'create', '--user', OUTSIDER.accessKey])).stdout.trim();
  expect(outsiderToken).toMatch(/^lct_/);
  // the page's blocks, as printed, into files the worker runs
  const blocks = pageBlocks();
  expect(blocks.length).toBe(2);
  const files = blocks.map((b, i) => {
    const f = path.join(tmp.path, `clients-md-block-${i}.py`);
    writeFileSync(f, b);
    return f;
  });
  worker = new Worker({ LC_ENDPOINT: gws[0].url, LC_ACCESS_KEY: ANALYST.accessKey, LC_SECRET_KEY: ANALYST.secretKey });
  await worker.ok({ op: 'load', blocks: files, kms_url: kmsUrl[0], token: analystToken });
}, 240_000);

afterAll(async () => {
  worker?.close();
  await Promise.all(gws.map((g) => g.stop()));
  tmp.cleanup();
});

describe('Parquet modular encryption with lakecrypt as the KMS (docs/clients.md, two gateways)', () => {
  const encRoot = `${LAKE}/finance/people`;
  const pfRoot = `${LAKE}/finance/people-pf`;
  let encFiles: string[] = [];
  let pfFiles: string[] = [];

  it('pyarrow writes Hive-partitioned datasets with ssn and salary encrypted and reads them back equal', async () => {
    encFiles = (await worker.ok<{ files: string[] }>({ op: 'write', root: encRoot, master_key: MASTER_KEY, marker: MARKER })).files;
    pfFiles = (await worker.ok<{ files: string[] }>({ op: 'write', root: pfRoot, master_key: MASTER_KEY, marker: MARKER, plaintext_footer: true })).files;
    for (const files of [encFiles, pfFiles]) {
      expect(files.some((f) => f.includes('/region=eu/')) && files.some((f) => f.includes('/region=us/')), files.join()).toBe(true);
    }
    for (const r of [encRoot, pfRoot]) expect(await worker.ok({ op: 'read', root: r })).toMatchObject({ rows: 200, same: true });
    // the files through the gateway: Parquet whose protected columns are ciphertext (compression none: the
    // unprotected column's values are there as written), and wrapped keys of KEK version 1
    for (const f of [encFiles[0], pfFiles[0]]) {
      const bytes = await download(gws[1], keyOf(f));
      expect(bytes.includes(`${MARKER} name`)).toBe(true);
      expect(bytes.includes(`${MARKER} ssn`)).toBe(false);
      expect(bytes.includes('vault:v1:')).toBe(true);
    }
    // and MinIO holds none of it in plaintext
    const minio = inject('minio');
    expect(scanDir(minio.dataDir, [MARKER])).toEqual([]);
  });

  it('a reader with S3 access but no KMS: nothing (encrypted footer), or the plaintext columns only (plaintext footer)', async () => {
    const enc = (await worker.ok<{ columns: Record<string, string> }>({ op: 'read_without_kms', file: encFiles[0] })).columns;
    for (const col of ['name', 'ssn', 'salary']) expect(enc[col], col).toMatch(/^failed/);
    const pf = (await worker.ok<{ columns: Record<string, string> }>({ op: 'read_without_kms', file: pfFiles[0] })).columns;
    expect(pf.name).toBe('read');
    expect(pf.ssn).toMatch(/^failed/);
    expect(pf.salary).toMatch(/^failed/);
  });

  it('keys revoke: S3 GETs and PME unwraps (of a copy taken out before) refused on both gateways after the bound; restore: both back', async () => {
    const key = keyOf(encFiles[0]);
    const copy = path.join(tmp.path, 'copy-out-of-the-lake.parquet');
    writeFileSync(copy, await download(gws[0], key));
    for (const i of [0, 1]) {
      expect(await s3Get(gws[i], key)).toBe('served');
      expect(await kmsRead(i, copy)).toBe('read');
    }
    await adminOf(gws[0]).post(AdminClient.path('admin', 'keys', DATASET, 'revoke'), {});
    const returned = performance.now();
    const after: { s3: string[]; kms: string[] } = { s3: [], kms: [] };
    while (performance.now() - returned < BOUND_MS + 1500) {
      for (const i of [0, 1]) {
        let started = performance.now() - returned;
        const s = await s3Get(gws[i], key);
        if (started > BOUND_MS) after.s3.push(`gw${i}:${s}`);
        started = performance.now() - returned;
        const k = await kmsRead(i, copy);
        if (started > BOUND_MS) after.kms.push(`gw${i}:${k}`);
      }
    }
    console.log(`[kms-pme] after the bound: ${after.s3.length} S3 GETs, ${after.kms.length} PME unwraps on two gateways`);
    for (const i of [0, 1]) {
      expect(after.s3.filter((a) => a.startsWith(`gw${i}:`)).length).toBeGreaterThan(0);
      expect(after.kms.filter((a) => a.startsWith(`gw${i}:`)).length).toBeGreaterThan(0);
    }
    expect(after.s3.filter((a) => !a.endsWith(':KeyRevoked'))).toEqual([]);
    // the KmsClient raises with the endpoint's 403 (a revoked key version)
    expect(after.kms.filter((a) => !/lakecrypt KMS decrypt .*: 403 .*revoked/.test(a))).toEqual([]);
    await adminOf(gws[0]).post(AdminClient.path('admin', 'keys', DATASET, 'restore'), {});
    for (const i of [0, 1]) {
      await pollUntil(async () => (await s3Get(gws[i], key)) === 'served' && (await kmsRead(i, copy)) === 'read', { timeoutMs: 30_000, what: `gateway ${i} serves again` });
    }
    expect(await worker.ok({ op: 'read', root: encRoot })).toMatchObject({ same: true });
  });

  it('rotation: new files are wrapped under v2, old files (v1) still read', async () => {
    const r = await cli(['keys', 'rotate', DATASET]);
    expect(r.code, r.stderr).toBe(0);
    const v2Root = `${LAKE}/finance/people-v2`;
    // pyarrow wraps a new file's keys under the KEK it made and wrapped earlier until cache_lifetime ends: the
    // page's note says to drop the factory's caches after a rotation
    await worker.ok({ op: 'forget' });
    const v2File = (await worker.ok<{ files: string[] }>({ op: 'write', root: v2Root, master_key: MASTER_KEY, marker: MARKER })).files[0];
    const bytes = await download(gws[1], keyOf(v2File));
    expect(bytes.includes('vault:v2:')).toBe(true);
    expect(bytes.includes('vault:v1:')).toBe(false);
    expect((await download(gws[1], keyOf(encFiles[0]))).includes('vault:v1:')).toBe(true);
    for (const root of [encRoot, pfRoot, v2Root]) expect(await worker.ok({ op: 'read', root })).toMatchObject({ same: true });
  });

  it('the page\'s client speaks to OpenBao\'s Transit as to lakecrypt\'s endpoint: same answers, same refusals', async () => {
    const bao = await startOpenBao();
    try {
      await bao.createKey('pme-master');
      const key = randomBytes(16).toString('hex');
      const real = await worker.ok<{ prefix: string; same: boolean }>({ op: 'roundtrip', kms_url: bao.addr, token: bao.token, master_key: 'pme-master', key_hex: key });
      const ours = await worker.ok<{ prefix: string; same: boolean }>({ op: 'roundtrip', kms_url: kmsUrl[1], token: analystToken, master_key: MASTER_KEY, key_hex: key });
      expect(real).toMatchObject({ prefix: 'vault:v1:', same: true });
      // (the dataset was rotated above: its wraps are v2 now)
      expect(ours).toMatchObject({ prefix: 'vault:v2:', same: true });
      // a bad token: 403 and Vault's words, from both
      const bad = 'lct_' + randomBytes(32).toString('base64url');
      const badReal = await worker.ok<{ error: string }>({ op: 'roundtrip', kms_url: bao.addr, token: bad, master_key: 'pme-master', key_hex: key });
      const badOurs = await worker.ok<{ error: string }>({ op: 'roundtrip', kms_url: kmsUrl[1], token: bad, master_key: MASTER_KEY, key_hex: key });
      for (const e of [badReal.error, badOurs.error]) expect(e).toMatch(/: 403 \{"errors":\["permission denied"/);
    } finally {
      await bao.stop();
    }
  });

  it('a user who cannot read the bucket is refused by the KMS; the audit trail shows unwraps and refusals', async () => {
    const copy = path.join(tmp.path, 'copy-for-outsider.parquet');
    writeFileSync(copy, await download(gws[0], keyOf(pfFiles[0])));
    for (const i of [0, 1]) expect(await kmsRead(i, copy, outsiderToken)).toMatch(/lakecrypt KMS decrypt .*: 403 .*permission denied/);
    // S3 says the same to that user
    expect(await s3Of(gws[0], OUTSIDER).send(new GetObjectCommand({ Bucket: LAKE, Key: keyOf(pfFiles[0]) })).then(() => 'served', codeOf)).toBe('AccessDenied');
    const entries = (await adminOf(gws[1]).get<{ entries: AuditEntry[] }>('/admin/audit', { limit: '1000' })).entries;
    const analyst = `user:${ANALYST.accessKey}`;
    const unwraps = entries.filter((e) => e.event === 'kms.decrypt' && e.actor === analyst && e.details.dataset === DATASET);
    expect(unwraps.length).toBeGreaterThan(3);
    // old files' keys under v1, new files' under v2
    expect(new Set(unwraps.map((e) => e.details.version))).toEqual(new Set([1, 2]));
    expect(entries.some((e) => e.event === 'kms.encrypt' && e.actor === analyst && e.details.version === 2)).toBe(true);
    expect(entries.some((e) => e.event === 'kms.refused' && e.actor === analyst && e.details.code === 'KeyRevoked')).toBe(true);
    expect(entries.filter((e) => e.event === 'kms.refused' && e.actor === `user:${OUTSIDER.accessKey}` && e.details.code === 'AccessDenied').length).toBeGreaterThanOrEqual(2);
    const text = JSON.stringify(entries);
    for (const t of [analystToken, outsiderToken]) expect(text).not.toContain(t);
    expect((await adminOf(gws[1]).get<{ ok: boolean }>('/admin/audit/verify')).ok).toBe(true);
  });
});

/**
 * Key lifecycle contract suite, run once per CMK provider: two gateway processes on one MinIO and one meta
 * bucket (same data dir for the local CMK files / same SoftHSM token), driven through the CLI.
 */
import { createHash, randomBytes } from 'node:crypto';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import { openHeader, peekHeader } from '../../src/engine/index.ts';
import { kekAad, fromStored, recordKey, datasetIdOf, type HeaderKeyRecord } from '../../src/keys/keystore.ts';
import { unwrapHeaderKey } from '../../src/keys/header-keys.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { Pkcs11CmkProvider } from '../../src/keys/pkcs11-cmk.ts';
import type { CmkProvider } from '../../src/keys/types.ts';
import { listPages, sha256hex } from '../../src/admin/util.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { tempSoftHsmToken } from '../keys/softhsm.ts';
import { launchGateway, type GatewayProcess } from '../../tools/gateway.ts';
import { pollUntil } from '../../tools/wait.ts';
import { getObj, putText, runCli } from './helpers.ts';

const BLOCK = 65536;

export function lifecycleSuite(provider: 'local' | 'pkcs11'): void {
  describe(`key lifecycle with the ${provider} CMK provider (two gateway processes)`, () => {
    const tmp = makeTmpDir('lc-life-');
    const m = minioCoords();
    const metaBucket = uniqueBucket('lcmeta');
    const ds = uniqueBucket('life');
    const tenantDs = uniqueBucket('tenant');
    const doomed = uniqueBucket('doomed');
    const accessKey = `ADM${randomBytes(4).toString('hex')}`;
    const secretKey = randomBytes(18).toString('base64url');
    let env: Record<string, string>;
    let A: GatewayProcess;
    let B: GatewayProcess;
    let sa: S3Client;
    let sb: S3Client;
    let backend: Backend;
    const bodies = new Map<string, Buffer>();
    const client = (url: string) =>
      new S3Client({ endpoint: url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: accessKey, secretAccessKey: secretKey }, maxAttempts: 1 });
    const cliA = (...args: string[]) => runCli(args, { LAKECRYPT_ADMIN_URL: A.adminUrl, LAKECRYPT_ACCESS_KEY: accessKey, LAKECRYPT_SECRET_KEY: secretKey });
    /** Quiet gateway processes sharing the data dir, the backend and the admin user; `env` names the rest. */
    const start = () => launchGateway({ env, dataDir: tmp.path, credentials: { accessKey, secretKey }, quiet: true });
    /** Milliseconds until `fn` holds (at most 5 s). */
    const msUntil = async (fn: () => Promise<boolean>) => {
      const t0 = performance.now();
      await pollUntil(fn, { timeoutMs: 5000, intervalMs: 20, retryErrors: false });
      return performance.now() - t0;
    };
    const ok = async (...args: string[]) => {
      const r = await cliA(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };

    beforeAll(async () => {
      env = {
        LAKECRYPT_BACKEND: 's3',
        LAKECRYPT_S3_ENDPOINT: m.endpoint,
        LAKECRYPT_S3_ACCESS_KEY: m.accessKey,
        LAKECRYPT_S3_SECRET_KEY: m.secretKey,
        LAKECRYPT_META_BUCKET: metaBucket,
        LAKECRYPT_BLOCK_SIZE: String(BLOCK),
        LAKECRYPT_CMKS: JSON.stringify([{ id: 'tenant-a', kind: provider }]),
        LAKECRYPT_DATASETS: JSON.stringify([{ name: tenantDs, cmk: 'tenant-a' }]),
        // `keys destroy` schedules; a short waiting period lets the tests see the destruction itself
        LAKECRYPT_KEY_DELETION_WAIT_SECONDS: '1',
        // this suite inspects header objects in the meta bucket (data format 1); inline headers (format 2): test/store/inline-header.test.ts
        LAKECRYPT_INLINE_HEADER_MAX: '0',
      };
      if (provider === 'pkcs11') {
        const t = tempSoftHsmToken('T');
        Object.assign(env, { LAKECRYPT_CMK: 'pkcs11', LAKECRYPT_PKCS11_MODULE: t.module, LAKECRYPT_PKCS11_TOKEN: t.label, LAKECRYPT_PKCS11_PIN: t.pin, SOFTHSM2_CONF: t.conf });
      }
      A = await start();
      B = await start();
      sa = client(A.url);
      sb = client(B.url);
      backend = createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region });
      for (const b of [ds, tenantDs, doomed]) await sa.send(new CreateBucketCommand({ Bucket: b }));
    });
    afterAll(async () => {
      sa?.destroy();
      sb?.destroy();
      await Promise.all([A?.stop(), B?.stop()]);
      await backend?.close();
      tmp.cleanup();
    });

    it('clients on both gateways see zero failed requests while the KEK is rotated', async () => {
      for (let i = 0; i < 20; i++) {
        const b = randomBytes(500 + i * 1000);
        bodies.set(`base/${i}`, b);
        await putText(i % 2 ? sa : sb, ds, `base/${i}`, b);
      }
      let stop = false;
      const failures: string[] = [];
      let ops = 0;
      const worker = async (w: number) => {
        const s = w % 2 ? sa : sb;
        const other = w % 2 ? sb : sa;
        for (let i = 0; !stop; i++) {
          const key = `load/${w}/${i % 5}`;
          const b = randomBytes(2000 + ((i * 7919) % 150_000));
          try {
            await putText(s, ds, key, b);
            const g = await getObj(other, ds, key);
            if (g.status !== 200 || !g.body!.equals(b)) failures.push(`${key}: ${g.status} ${g.code ?? 'mismatch'}`);
            const base = `base/${i % 20}`;
            const r = await getObj(s, ds, base);
            if (r.status !== 200 || !r.body!.equals(bodies.get(base)!)) failures.push(`${base}: ${r.status} ${r.code ?? 'mismatch'}`);
            ops += 3;
          } catch (e) {
            failures.push(`${key}: ${(e as Error).message}`);
          }
        }
        bodies.set(`load/${w}/last`, Buffer.alloc(0));
      };
      const workers = [0, 1, 2, 3].map(worker);
      await new Promise((r) => setTimeout(r, 500));
      const out = JSON.parse(await ok('keys', 'rotate', ds, '--json')) as { version: number };
      expect(out.version).toBe(2);
      await new Promise((r) => setTimeout(r, 1000));
      stop = true;
      await Promise.all(workers);
      for (const w of [0, 1, 2, 3]) bodies.delete(`load/${w}/last`);
      expect(failures).toEqual([]);
      expect(ops).toBeGreaterThan(10);
    });

    it('rewrap run --wait leaves pending 0 without reading data; the old version can be destroyed; everything reads', async () => {
      // The reads after the rotation re-wrapped the dataset's header keys already (lazily, on read: one keystore
      // write for all of them): the generation-1 header key is under version 2, no header depends on version 1.
      const show0 = JSON.parse(await ok('keys', 'show', ds, '--json')) as { headerKeys: { n: number; generation: number; kekVersion: number }[] };
      expect(show0.headerKeys.map((k) => [k.generation, k.kekVersion])).toEqual([[1, 2], [2, 2]]);
      const st = JSON.parse(await ok('rewrap', 'status', ds, '--json')) as { pending: number; byVersion: Record<string, number> };
      expect(st.pending).toBe(0);
      expect(Object.keys(st.byVersion)).toEqual(['2']);
      const res = JSON.parse(await ok('rewrap', 'run', ds, '--wait', '--json')) as { pending: number; job: { dataBytesRead: number; state: string; mode: string; rewrapped: number } };
      expect(res.job.state).toBe('done');
      expect(res.job).toMatchObject({ mode: 'header-keys', rewrapped: 0 });
      expect(res.pending).toBe(0);
      expect(res.job.dataBytesRead).toBe(0);
      expect(JSON.parse(await ok('rewrap', 'status', ds, '--json')).pending).toBe(0);
      expect(await ok('keys', 'destroy', ds, '--version', '1', '--yes')).toMatch(/destruction scheduled/);
      // destroyed by the sweep of either gateway when due; exactly once (the keystore write is conditional)
      const v1State = async () => (JSON.parse(await ok('keys', 'show', ds, '--json')) as { versions: { version: number; state: string }[] }).versions.find((v) => v.version === 1)?.state;
      await pollUntil(async () => (await v1State()) === 'destroyed', { timeoutMs: 15_000, intervalMs: 200, retryErrors: false });
      type Entries = { entries: { event: string; actor: string; details: { dataset?: string; version?: number } }[] };
      const destroys = async () => (JSON.parse(await ok('audit', 'list', '--limit', '1000', '--json')) as Entries).entries.filter((e) => e.event === 'kek.destroy' && e.details.dataset === ds);
      await pollUntil(async () => (await destroys()).length > 0, { timeoutMs: 5000, intervalMs: 100, retryErrors: false });
      await new Promise((r) => setTimeout(r, 1500)); // a few more sweep rounds of both gateways
      const destroyed = await destroys();
      expect(destroyed.map((e) => [e.actor, e.details.version])).toEqual([['system:sweep', 1]]);
      for (const [k, b] of bodies) {
        for (const s of [sa, sb]) {
          const g = await getObj(s, ds, k);
          expect(g.status, k).toBe(200);
          expect(g.body!.equals(b), k).toBe(true);
        }
      }
      // ETags sealed under the destroyed version no longer open: listings fall back to the re-wrapped headers
      // and still show the plaintext MD5s.
      for (const s of [sa, sb]) {
        const listed = await s.send(new ListObjectsV2Command({ Bucket: ds, Prefix: 'base/' }));
        expect(listed.Contents!.length).toBe(20);
        for (const o of listed.Contents!) {
          expect(o.ETag, o.Key).toBe(`"${createHash('md5').update(bodies.get(o.Key!)!).digest('hex')}"`);
        }
      }
    });

    it('a re-key while both gateways write: nothing fails, every object reads, no header names a retired key', async () => {
      let stop = false;
      const failures: string[] = [];
      const writer = async (w: number) => {
        const s = w % 2 ? sa : sb;
        for (let i = 0; !stop; i++) {
          const key = `rekey/${w}/${i % 8}`;
          const b = randomBytes(500 + ((i * 7919) % 20_000));
          try {
            await putText(s, ds, key, b);
            bodies.set(key, b);
          } catch (e) {
            failures.push(`${key}: ${(e as Error).message}`);
          }
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      await new Promise((r) => setTimeout(r, 300));
      const before = JSON.parse(await ok('keys', 'show', ds, '--json')) as { headerKeys: { n: number }[] };
      const res = JSON.parse(await ok('rewrap', 'run', ds, '--rekey', '--wait', '--json')) as { job: { state: string; mode: string; failed: number; rekeyTo: number; headerKeysRetired?: number[] } };
      stop = true;
      await Promise.all(writers);
      expect(failures).toEqual([]);
      expect(res.job).toMatchObject({ state: 'done', mode: 'headers', failed: 0 });
      expect(res.job.rekeyTo).toBeGreaterThan(Math.max(...before.headerKeys.map((k) => k.n)));
      // Whatever was retired, no stored header names it: every header's key is still in the keystore.
      const after = JSON.parse(await ok('keys', 'show', ds, '--json')) as { headerKeys: { n: number }[] };
      const held = new Set(after.headerKeys.map((k) => k.n));
      for (const n of res.job.headerKeysRetired ?? []) expect(held.has(n)).toBe(false);
      let headers = 0;
      for await (const page of listPages(backend, metaBucket, `h/${ds}/`)) {
        for (const o of page) {
          const p = peekHeader((await backend.getBuffer(metaBucket, o.key)).data);
          expect(held.has(p.keyNumber), o.key).toBe(true);
          headers++;
        }
      }
      expect(headers).toBeGreaterThanOrEqual(bodies.size);
      for (const [k, b] of bodies) {
        for (const s of [sa, sb]) {
          const g = await getObj(s, ds, k);
          expect(g.status, k).toBe(200);
          expect(g.body!.equals(b), k).toBe(true);
        }
      }
    });

    it('a DEK block revocation made through A is seen by B within 1 s; other blocks still read', async () => {
      const data = randomBytes(BLOCK * 3);
      await putText(sa, ds, 'blocks', data);
      const range = `bytes=${BLOCK}-${BLOCK + 99}`;
      expect((await getObj(sb, ds, 'blocks', range)).status).toBe(206); // B caches the header
      const t0 = performance.now();
      await ok('objects', 'revoke', ds, 'blocks', '--block', '1', '--yes');
      const cliMs = performance.now() - t0;
      const seen = await msUntil(async () => (await getObj(sb, ds, 'blocks', range)).status === 403);
      expect(seen).toBeLessThan(1000);
      expect(cliMs).toBeGreaterThan(0);
      const r0 = await getObj(sb, ds, 'blocks', `bytes=0-${BLOCK - 1}`);
      expect(r0.status).toBe(206);
      expect(r0.body!.equals(data.subarray(0, BLOCK))).toBe(true);
      const r2 = await getObj(sb, ds, 'blocks', `bytes=${2 * BLOCK}-${3 * BLOCK - 1}`);
      expect(r2.body!.equals(data.subarray(2 * BLOCK))).toBe(true);
    });

    it('a KEK revocation through A is seen by B within 1 s; restore makes it readable again', async () => {
      const k = 'base/3';
      expect((await getObj(sb, ds, k)).status).toBe(200);
      await ok('keys', 'revoke', ds, '--version', '2', '--yes');
      const seen = await msUntil(async () => (await getObj(sb, ds, k)).status === 403);
      expect(seen).toBeLessThan(1000);
      expect(await getObj(sb, ds, k)).toMatchObject({ status: 403, code: 'KeyRevoked' });
      await ok('keys', 'restore', ds, '--version', '2');
      await msUntil(async () => (await getObj(sb, ds, k)).status === 200);
      expect((await getObj(sa, ds, k)).body!.equals(bodies.get(k)!)).toBe(true);
    });

    it('a CMK disable through A is seen by B within 1 s and hits only that tenant; enable restores', async () => {
      await putText(sa, tenantDs, 't1', 'tenant data');
      expect((await getObj(sb, tenantDs, 't1')).status).toBe(200);
      // tenant A's CMK: only its dataset is denied
      await ok('cmk', 'disable', '--cmk', 'tenant-a', '--version', '1', '--yes');
      const seen = await msUntil(async () => (await getObj(sb, tenantDs, 't1')).status === 403);
      expect(seen).toBeLessThan(1000);
      expect((await getObj(sb, ds, 'base/1')).status).toBe(200);
      await ok('cmk', 'enable', '--cmk', 'tenant-a', '--version', '1');
      await msUntil(async () => (await getObj(sb, tenantDs, 't1')).status === 200);
      // the default CMK: the main dataset is denied, the tenant's is not
      const status = await ok('cmk', 'status');
      expect(status).toMatch(/^CMK\s+KIND/);
      await ok('cmk', 'disable', '--version', '1', '--yes');
      const seen2 = await msUntil(async () => (await getObj(sb, ds, 'base/1')).status === 403);
      expect(seen2).toBeLessThan(1000);
      expect((await getObj(sb, tenantDs, 't1')).status).toBe(200);
      await ok('cmk', 'enable', '--version', '1');
      await msUntil(async () => (await getObj(sb, ds, 'base/1')).status === 200);
    });

    it('a destroyed KEK leaves its data unreadable even with the backend bytes and the keystore', async () => {
      const secret = Buffer.from(`doomed secret ${randomBytes(8).toString('hex')}`);
      await putText(sa, doomed, 'x', secret);
      await ok('keys', 'rotate', doomed);
      const refused = await cliA('keys', 'destroy', doomed, '--version', '1', '--yes');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/still reference/);
      await ok('keys', 'destroy', doomed, '--version', '1', '--yes', '--force');
      // pending destruction: refused on both gateways at once, destroyed when due
      await msUntil(async () => (await getObj(sb, doomed, 'x')).status === 403);
      await pollUntil(async () => {
        const r = JSON.parse((await backend.getBuffer(metaBucket, recordKey(datasetIdOf(doomed)))).data.toString()) as { versions: { version: number; state: string }[] };
        return r.versions.find((v) => v.version === 1)?.state === 'destroyed';
      }, { timeoutMs: 15_000, intervalMs: 200, retryErrors: false });
      // Full backend access: data, header, keystore record; plus the CMK itself.
      const info = await backend.headObject(doomed, 'x');
      const hdr = (await backend.getBuffer(metaBucket, `h/${doomed}/${sha256hex('x')}/${info!.meta['lc-oid']}`)).data;
      expect(peekHeader(hdr)).toMatchObject({ version: 2, keyNumber: 1 });
      const rec = JSON.parse((await backend.getBuffer(metaBucket, recordKey(datasetIdOf(doomed)))).data.toString()) as {
        datasetId: string;
        versions: { version: number; state: string; wrapped: null | Parameters<typeof fromStored>[0] }[];
        headerKeys: HeaderKeyRecord[];
      };
      // its header key was still wrapped under version 1 when that was destroyed
      expect(rec.headerKeys.find((k) => k.n === 1)?.kekVersion).toBe(1);
      const v1 = rec.versions.find((v) => v.version === 1)!;
      expect(v1.state).toBe('destroyed');
      expect(v1.wrapped).toBeNull();
      const cmk: CmkProvider =
        provider === 'local'
          ? new LocalCmkProvider({ id: 'default', dataDir: tmp.path })
          : new Pkcs11CmkProvider({ module: env.LAKECRYPT_PKCS11_MODULE!, tokenLabel: env.LAKECRYPT_PKCS11_TOKEN!, pin: env.LAKECRYPT_PKCS11_PIN!, id: 'default' });
      try {
        let tried = 0;
        for (const v of rec.versions) {
          if (!v.wrapped) continue;
          const kek = await cmk.unwrap(fromStored(v.wrapped), kekAad(rec.datasetId, v.version));
          tried++;
          expect(() => openHeader(hdr, { bucket: doomed, key: 'x' }, kek)).toThrow();
          // every header key this surviving version opens fails on the header too
          for (const hk of rec.headerKeys.filter((k) => k.kekVersion === v.version)) {
            const key = unwrapHeaderKey(kek, hk, rec.datasetId);
            expect(() => openHeader(hdr, { bucket: doomed, key: 'x' }, key)).toThrow();
            key.fill(0);
          }
          kek.fill(0);
        }
        expect(tried).toBe(1);
      } finally {
        await cmk.close();
      }
      // and no plaintext sits in the backend object
      const raw = (await backend.getBuffer(doomed, 'x')).data;
      expect(raw.includes(secret)).toBe(false);
    });

    it('a restarted gateway keeps everything readable', async () => {
      await B.stop();
      B = await start();
      sb.destroy();
      sb = client(B.url);
      for (const [k, b] of bodies) {
        const g = await getObj(sb, ds, k);
        expect(g.status, k).toBe(200);
        expect(g.body!.equals(b)).toBe(true);
      }
      expect((await getObj(sb, tenantDs, 't1')).status).toBe(200);
      expect((await getObj(sb, doomed, 'x')).status).toBe(403);
    });
  });
}

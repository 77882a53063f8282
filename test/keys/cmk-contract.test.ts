/**
 * One CMK contract suite, run against every provider: local, pkcs11 (SoftHSM2), transit (a real OpenBao server)
 * and awskms (a real local-kms server). Where providers legitimately differ, the difference is a declared
 * capability of the factory (blob layout, which versions can be disabled), never a skipped check.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { isS3Error, type S3ErrorCode } from '../../src/errors.ts';
import { AwsKmsCmkProvider } from '../../src/keys/awskms-cmk.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { Pkcs11CmkProvider } from '../../src/keys/pkcs11-cmk.ts';
import { TransitCmkProvider } from '../../src/keys/transit-cmk.ts';
import type { CmkProvider } from '../../src/keys/types.ts';
import { startLocalKms } from '../helpers/local-kms.ts';
import { startOpenBao } from '../helpers/openbao.ts';
import { freePort } from '../../tools/ports.ts';
import { createCmkProvider } from '../../src/keys/providers.ts';
import { tempSoftHsmToken } from './softhsm.ts';

interface Unreachable {
  provider: CmkProvider;
  /** Strings the error message must contain (what is unreachable), and must never contain (secrets). */
  mentions: string[];
  secrets: string[];
}

interface Factory {
  name: CmkProvider['kind'];
  /** New provider instance for CMK `id` (same underlying store across calls: a "restart"). */
  make(id: string): CmkProvider | Promise<CmkProvider>;
  /** Blob = nonce(12) || ciphertext || tag(16) (every byte authenticated); else an opaque KMS ciphertext. */
  gcmBlob: boolean;
  /** Any single version can be disabled while older ones stay enabled (transit only disables from the oldest up). */
  disableAnyVersion: boolean;
  /** Secrets the provider holds that must never show in JSON.stringify / inspect. */
  secrets: string[];
  /** A provider whose key server / token is unreachable. */
  unreachable?(id: string): Promise<Unreachable>;
}

const localDir = mkdtempSync(path.join(os.tmpdir(), 'lc-localcmk-'));
const token = tempSoftHsmToken();
const bao = await startOpenBao();
const kms = await startLocalKms();
const baoKeys = new Set<string>();
const kmsKeys = new Map<string, string>();

const factories: Factory[] = [
  { name: 'local', make: (id) => new LocalCmkProvider({ id, dataDir: localDir }), gcmBlob: true, disableAnyVersion: true, secrets: [] },
  {
    name: 'pkcs11',
    make: (id) => new Pkcs11CmkProvider({ module: token.module, tokenLabel: token.label, pin: token.pin, id }),
    gcmBlob: true,
    disableAnyVersion: true,
    secrets: [token.pin],
    unreachable: async (id) => ({
      provider: new Pkcs11CmkProvider({ module: token.module, tokenLabel: 'no-such-token', pin: token.pin, id }),
      mentions: ['no-such-token'],
      secrets: [token.pin],
    }),
  },
  {
    name: 'transit',
    make: async (id) => {
      if (!baoKeys.has(id)) {
        await bao.createKey(id);
        baoKeys.add(id);
      }
      return new TransitCmkProvider({ id, addr: bao.addr, token: bao.token, key: id });
    },
    gcmBlob: false,
    disableAnyVersion: false,
    secrets: [bao.token],
    unreachable: async (id) => {
      const addr = `http://127.0.0.1:${await freePort()}`;
      const tok = `s.${randomBytes(12).toString('hex')}`;
      return { provider: new TransitCmkProvider({ id, addr, token: tok, key: id, timeoutMs: 3000 }), mentions: [id, addr], secrets: [tok] };
    },
  },
  {
    name: 'awskms',
    make: async (id) => {
      let keyId = kmsKeys.get(id);
      if (!keyId) {
        keyId = await kms.createKey(`contract ${id}`);
        kmsKeys.set(id, keyId);
      }
      return new AwsKmsCmkProvider({ id, keyId, endpoint: kms.endpoint, region: kms.region, credentials: kms.credentials, deletionWindowDays: 7 });
    },
    gcmBlob: false,
    disableAnyVersion: true,
    secrets: [kms.credentials.secretAccessKey],
    unreachable: async (id) => {
      const endpoint = `http://127.0.0.1:${await freePort()}`;
      const secret = randomBytes(20).toString('hex');
      const provider = new AwsKmsCmkProvider({
        id,
        keyId: '11111111-2222-3333-4444-555555555555',
        endpoint,
        region: kms.region,
        credentials: { accessKeyId: 'AKIDUNREACHABLE', secretAccessKey: secret },
        timeoutMs: 3000,
      });
      return { provider, mentions: [id, endpoint], secrets: [secret] };
    },
  },
];

const opened: CmkProvider[] = [];
const open = async (f: Factory, id: string) => {
  const p = await f.make(id);
  opened.push(p);
  return p;
};

afterAll(async () => {
  for (const p of opened) await p.close();
  rmSync(localDir, { recursive: true, force: true });
  await bao.stop();
  await kms.stop();
});

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: unknown) => err,
  );

const expectCode = async (p: Promise<unknown>, code: S3ErrorCode) => {
  const e = await errorOf(p);
  expect(e, `expected ${code}`).not.toBeNull();
  expect(isS3Error(e, code), `expected ${code}, got ${String(e)}`).toBe(true);
  return e as Error;
};

describe.each(factories)('CMK contract: $name', (f) => {
  let n = 0;
  const freshId = () => `${f.name}-cmk-${++n}-${randomBytes(3).toString('hex')}`;

  it('wrap/unwrap round trip, blob layout, fresh nonce each time', async () => {
    const p = await open(f, freshId());
    expect(p.kind).toBe(f.name);
    await p.ping();
    const kek = randomBytes(32);
    const aad = Buffer.from('ctx');
    const w1 = await p.wrap(kek, aad);
    const w2 = await p.wrap(kek, aad);
    expect(w1.cmkId).toBe(p.id);
    expect(w1.cmkVersion).toBe(1);
    if (f.gcmBlob) expect(w1.blob.length).toBe(12 + 32 + 16);
    expect(w1.blob.equals(w2.blob)).toBe(false);
    expect(w1.blob.includes(kek)).toBe(false);
    expect((await p.unwrap(w1, aad)).equals(kek)).toBe(true);
    expect((await p.unwrap(w2, aad)).equals(kek)).toBe(true);
  });

  it('AAD binding and tamper detection -> IntegrityError', async () => {
    const p = await open(f, freshId());
    const kek = randomBytes(32);
    const w = await p.wrap(kek, Buffer.from('dataset-a v1'));
    await expectCode(p.unwrap(w, Buffer.from('dataset-b v1')), 'IntegrityError');
    await expectCode(p.unwrap(w, Buffer.alloc(0)), 'IntegrityError');
    await expectCode(p.unwrap(w, Buffer.from('dataset-a v2')), 'IntegrityError');
    if (f.gcmBlob) {
      const bad = Buffer.from(w.blob);
      bad[20] ^= 1;
      await expectCode(p.unwrap({ ...w, blob: bad }, Buffer.from('dataset-a v1')), 'IntegrityError');
    }
    const badTag = Buffer.from(w.blob);
    badTag[badTag.length - 1] ^= 0x80;
    await expectCode(p.unwrap({ ...w, blob: badTag }, Buffer.from('dataset-a v1')), 'IntegrityError');
    await expectCode(p.unwrap({ ...w, blob: w.blob.subarray(0, 10) }, Buffer.from('dataset-a v1')), 'IntegrityError');
    // Every single-bit flip: IntegrityError; an opaque KMS blob may carry unauthenticated routing bytes (e.g. the key
    // reference, checked by the server otherwise) whose flip still opens to the SAME key: never to another key,
    // never another error.
    let opened = 0;
    const outcomes = await Promise.all(
      Array.from({ length: w.blob.length }, async (_, i) => {
        const t = Buffer.from(w.blob);
        t[i] ^= 1;
        const got = await p.unwrap({ ...w, blob: t }, Buffer.from('dataset-a v1')).then(
          (k) => k,
          (e: unknown) => e,
        );
        return { i, got };
      }),
    );
    for (const { i, got } of outcomes) {
      if (Buffer.isBuffer(got)) {
        expect(f.gcmBlob, `flipped byte ${i} unwrapped`).toBe(false);
        expect(got.equals(kek), `flipped byte ${i} unwrapped to another key`).toBe(true);
        opened++;
      } else {
        expect(isS3Error(got, 'IntegrityError'), `flipped byte ${i}: ${String(got)}`).toBe(true);
      }
    }
    // the bytes carrying the wrapped key (ciphertext + tag, at the end for every provider here) are all authenticated
    const lastOpened = Math.max(-1, ...outcomes.filter((o) => Buffer.isBuffer(o.got)).map((o) => o.i));
    expect(lastOpened, `opened: ${opened} of ${w.blob.length} flips`).toBeLessThan(w.blob.length - 48);
    // still fine with the right AAD
    expect((await p.unwrap(w, Buffer.from('dataset-a v1'))).equals(kek)).toBe(true);
  });

  it('a blob of another CMK id is refused', async () => {
    const a = await open(f, freshId());
    const b = await open(f, freshId());
    const w = await a.wrap(randomBytes(32), Buffer.from('x'));
    await expectCode(b.unwrap({ ...w, cmkId: b.id }, Buffer.from('x')), 'IntegrityError');
    await expectCode(b.unwrap(w, Buffer.from('x')), 'IntegrityError');
  });

  it('rotate: new writes use the new version, old blobs stay readable', async () => {
    const p = await open(f, freshId());
    const kek = randomBytes(32);
    const aad = Buffer.from('a');
    const w1 = await p.wrap(kek, aad);
    const v2 = await p.rotate();
    expect(v2.version).toBe(2);
    expect(v2.state).toBe('active');
    const w2 = await p.wrap(kek, aad);
    expect(w2.cmkVersion).toBe(2);
    expect((await p.unwrap(w1, aad)).equals(kek)).toBe(true);
    expect((await p.unwrap(w2, aad)).equals(kek)).toBe(true);
    const vs = await p.versions();
    expect(vs.map((v) => [v.version, v.state])).toEqual([
      [1, 'active'],
      [2, 'active'],
    ]);
    expect(Number.isNaN(Date.parse(vs[0].createdAt))).toBe(false);
  });

  it('disable -> KeyRevoked; enable -> readable again', async () => {
    const p = await open(f, freshId());
    const kek = randomBytes(32);
    const aad = Buffer.from('a');
    const w1 = await p.wrap(kek, aad);
    await p.rotate();
    await p.disable(1);
    await expectCode(p.unwrap(w1, aad), 'KeyRevoked');
    expect((await p.versions()).find((v) => v.version === 1)?.state).toBe('disabled');
    // a new instance ("another gateway") sees it disabled too
    const q = await open(f, p.id);
    await expectCode(q.unwrap(w1, aad), 'KeyRevoked');
    await p.enable(1);
    expect((await p.unwrap(w1, aad)).equals(kek)).toBe(true);
    // disabling every version: wrap refuses too
    await p.disable(1);
    await p.disable(2);
    await expectCode(p.wrap(kek, aad), 'KeyRevoked');
  });

  it('destroy: blobs under the version are gone forever', async () => {
    const p = await open(f, freshId());
    const kek = randomBytes(32);
    const aad = Buffer.from('a');
    const w1 = await p.wrap(kek, aad);
    await p.rotate();
    const w2 = await p.wrap(kek, aad);
    await p.destroy(1);
    await expectCode(p.unwrap(w1, aad), 'KeyRevoked');
    expect((await p.versions()).find((v) => v.version === 1)?.state).toBe('destroyed');
    await expect(p.enable(1)).rejects.toThrow();
    expect((await p.unwrap(w2, aad)).equals(kek)).toBe(true);
    const q = await open(f, p.id);
    await expectCode(q.unwrap(w1, aad), 'KeyRevoked');
    if (f.name === 'local') {
      expect(existsSync(path.join(localDir, 'cmk', p.id, 'v1.key'))).toBe(false);
    }
    if (f.name === 'transit') {
      // trimmed at the server: not even its owner can bring v1 back
      const r = await bao.api('POST', `keys/${p.id}/config`, { min_decryption_version: 1 });
      expect(r.status).toBe(400);
    }
  });

  it('restart (new provider instance) keeps every key readable and the state', async () => {
    const id = freshId();
    const p = await f.make(id);
    const kek = randomBytes(32);
    const aad = Buffer.from('restart');
    const w1 = await p.wrap(kek, aad);
    await p.rotate();
    const w2 = await p.wrap(kek, aad);
    await p.rotate();
    await p.disable(1);
    await p.close();
    const q = await open(f, id);
    await expectCode(q.unwrap(w1, aad), 'KeyRevoked');
    expect((await q.unwrap(w2, aad)).equals(kek)).toBe(true);
    expect((await q.versions()).map((v) => v.state)).toEqual(['disabled', 'active', 'active']);
    // wrap uses the newest enabled version
    expect((await q.wrap(kek, aad)).cmkVersion).toBe(3);
    await q.enable(1);
    expect((await q.unwrap(w1, aad)).equals(kek)).toBe(true);
  });

  it('disabling the newest version while older ones stay enabled (where the provider can)', async () => {
    const p = await open(f, freshId());
    const kek = randomBytes(32);
    const aad = Buffer.from('newest');
    const w1 = await p.wrap(kek, aad);
    await p.rotate();
    await p.rotate();
    const w3 = await p.wrap(kek, aad);
    expect(w3.cmkVersion).toBe(3);
    if (f.disableAnyVersion) {
      await p.disable(3);
      await expectCode(p.unwrap(w3, aad), 'KeyRevoked');
      expect((await p.versions()).map((v) => v.state)).toEqual(['active', 'active', 'disabled']);
      expect((await p.wrap(kek, aad)).cmkVersion).toBe(2);
      await p.disable(2);
      expect((await p.wrap(kek, aad)).cmkVersion).toBe(1);
      await p.enable(3);
      expect((await p.wrap(kek, aad)).cmkVersion).toBe(3);
    } else {
      // transit: versions are disabled from the oldest up; the refusal says what to do, and nothing changed
      const e = await expectCode(p.disable(3), 'InvalidRequest');
      expect(e.message).toMatch(/oldest|min_decryption_version/);
      const e2 = await expectCode(p.disable(2), 'InvalidRequest');
      expect(e2.message).toContain('v1');
      expect((await p.versions()).map((v) => v.state)).toEqual(['active', 'active', 'active']);
      expect((await p.wrap(kek, aad)).cmkVersion).toBe(3);
    }
    expect((await p.unwrap(w1, aad)).equals(kek)).toBe(true);
  });

  it('key server unreachable -> ServiceUnavailable naming what is unreachable (not KeyRevoked, not IntegrityError)', async () => {
    if (!f.unreachable) {
      // local: the key files are in the data dir; there is no server to lose
      expect(f.name).toBe('local');
      return;
    }
    const id = freshId();
    const u = await f.unreachable(id);
    opened.push(u.provider);
    const w = { cmkId: id, cmkVersion: 1, blob: Buffer.from(f.name === 'transit' ? 'vault:v1:' + randomBytes(60).toString('base64') : randomBytes(60)) };
    const t0 = Date.now();
    for (const call of [() => u.provider.wrap(randomBytes(32), Buffer.from('x')), () => u.provider.unwrap(w, Buffer.from('x')), () => u.provider.versions(), () => u.provider.ping()]) {
      const e = await expectCode(call(), 'ServiceUnavailable');
      for (const m of u.mentions) expect(e.message).toContain(m);
      for (const s of u.secrets) expect(e.message).not.toContain(s);
    }
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('key material is never extractable', async () => {
    const p = await open(f, freshId());
    const w = await p.wrap(randomBytes(32), Buffer.from('x'));
    if (f.gcmBlob) expect(w.blob.length).toBe(60);
    for (const s of f.secrets) {
      expect(JSON.stringify(p)).not.toContain(s);
      expect(inspect(p, { depth: 5, showHidden: true })).not.toContain(s);
    }
    if (f.name === 'pkcs11') {
      const insp = await (p as Pkcs11CmkProvider).inspectKey(1);
      expect(insp.extractable).toBe(false);
      expect(insp.sensitive).toBe(true);
      expect(insp.neverExtractable).toBe(true);
      expect(insp.alwaysSensitive).toBe(true);
      expect(insp.valueReadable).toBe(false);
      expect(insp.valueError).toMatch(/SENSITIVE/);
      expect(insp.wrapExportable).toBe(false);
    } else {
      if (f.name === 'local') {
        const dir = path.join(localDir, 'cmk', p.id);
        expect(statSync(dir).mode & 0o777).toBe(0o700);
        expect(statSync(path.join(dir, 'v1.key')).mode & 0o777).toBe(0o600);
        expect(statSync(path.join(dir, 'v1.key')).size).toBe(32);
      }
      if (f.name === 'transit') {
        // the server refuses to export the key (created non-exportable)
        const r = await bao.api('GET', `export/encryption-key/${p.id}`);
        expect(r.status).toBeGreaterThanOrEqual(400);
      }
      // no API returns the key: only wrap/unwrap/versions/admin
      expect(Object.getOwnPropertyNames(Object.getPrototypeOf(p)).filter((k) => /key|export/i.test(k) && !/^(readKey|createKeyFile|keyPath)$/.test(k))).toEqual([]);
    }
  });

  it('concurrent wraps/unwraps', async () => {
    const p = await open(f, freshId());
    const keys = Array.from({ length: 200 }, () => randomBytes(32));
    const ws = await Promise.all(keys.map((k, i) => p.wrap(k, Buffer.from(`k${i}`))));
    const back = await Promise.all(ws.map((w, i) => p.unwrap(w, Buffer.from(`k${i}`))));
    back.forEach((b, i) => expect(b.equals(keys[i])).toBe(true));
  });
});

describe('createCmkProvider (configuration entries)', () => {
  it('builds every provider from its spec; the built transit/awskms providers work against the real servers', async () => {
    expect(createCmkProvider({ id: 'l1', provider: 'local' }, { dataDir: localDir }).kind).toBe('local');
    expect(createCmkProvider({ id: 'h1', provider: 'pkcs11' }, { pkcs11: { module: token.module, token: token.label, pin: token.pin } }).kind).toBe('pkcs11');
    await bao.createKey('from-spec');
    const t = createCmkProvider({ id: 'from-spec', provider: 'transit', addr: bao.addr, token: bao.token, key: 'from-spec' });
    const keyId = await kms.createKey('from spec');
    const a = createCmkProvider({
      id: 'aws-spec',
      provider: 'awskms',
      keyId,
      endpoint: kms.endpoint,
      region: kms.region,
      accessKeyId: kms.credentials.accessKeyId,
      secretAccessKey: kms.credentials.secretAccessKey,
    });
    opened.push(t, a);
    for (const p of [t, a]) {
      const k = randomBytes(32);
      expect((await p.unwrap(await p.wrap(k, Buffer.from('s')), Buffer.from('s'))).equals(k)).toBe(true);
    }
  });

  it('refuses bad entries naming the CMK and the field, never echoing a secret', () => {
    const secret = `S3CRET-${randomBytes(6).toString('hex')}`;
    const bad: [unknown, RegExp][] = [
      [{ id: 'x', provider: 'vault' }, /CMK "x": provider: expected provider "local", "pkcs11", "transit" or "awskms"/],
      [{ id: 'x', provider: 'transit', addr: 'bao:8200', token: secret, key: 'k' }, /CMK "x": addr: expected/],
      [{ id: 'x', provider: 'transit', addr: 'http://b:8200', key: 'k' }, /token: expected exactly one of token or tokenFile/],
      [{ id: 'x', provider: 'transit', addr: 'http://b:8200', key: 'k', token: secret, tokenFile: '/t' }, /token: expected exactly one/],
      [{ id: 'x', provider: 'transit', addr: 'http://b:8200', key: 'k/../x', token: secret }, /key: expected a transit key name/],
      [{ id: 'x', provider: 'transit', addr: 'http://b:8200', key: 'k', token: secret, tokn: secret }, /"tokn": not a setting/],
      [{ id: 'x', provider: 'awskms', keyId: secret }, /CMK "x": keyId: expected a KMS key id/],
      [{ id: 'x', provider: 'awskms', keyId: 'alias/k', secretAccessKey: secret }, /secretAccessKey: expected accessKeyId and secretAccessKey together/],
      [{ id: 'x', provider: 'awskms', keyId: 'alias/k', region: 'EU WEST' }, /region: expected an AWS region/],
      [{ id: 'x', provider: 'pkcs11', pin: secret }, /CMK "x": module: expected/],
      [{ id: '../x', provider: 'local' }, /id: expected an id/],
    ];
    for (const [spec, re] of bad) {
      let msg = '';
      try {
        createCmkProvider(spec, { dataDir: localDir });
      } catch (e) {
        expect(isS3Error(e, 'InvalidArgument'), String(e)).toBe(true);
        msg = (e as Error).message;
      }
      expect(msg, JSON.stringify(spec).replaceAll(secret, '***')).toMatch(re);
      expect(msg).not.toContain(secret);
    }
  });
});

/** One CMK contract suite, run against the local and the pkcs11 (SoftHSM2) providers. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isS3Error } from '../../src/errors.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { Pkcs11CmkProvider } from '../../src/keys/pkcs11-cmk.ts';
import type { CmkProvider } from '../../src/keys/types.ts';
import { tempSoftHsmToken } from './softhsm.ts';

interface Factory {
  name: 'local' | 'pkcs11';
  /** New provider instance for CMK `id` (same underlying store across calls: a "restart"). */
  make(id: string): CmkProvider;
}

const localDir = mkdtempSync(path.join(os.tmpdir(), 'lc-localcmk-'));
const token = tempSoftHsmToken();

const factories: Factory[] = [
  { name: 'local', make: (id) => new LocalCmkProvider({ id, dataDir: localDir }) },
  { name: 'pkcs11', make: (id) => new Pkcs11CmkProvider({ module: token.module, tokenLabel: token.label, pin: token.pin, id }) },
];

const opened: CmkProvider[] = [];
const open = (f: Factory, id: string) => {
  const p = f.make(id);
  opened.push(p);
  return p;
};

afterAll(async () => {
  for (const p of opened) await p.close();
  rmSync(localDir, { recursive: true, force: true });
});

const expectCode = async (p: Promise<unknown>, code: 'KeyRevoked' | 'IntegrityError') => {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).not.toBeNull();
  expect(isS3Error(e, code), `expected ${code}, got ${String(e)}`).toBe(true);
};

describe.each(factories)('CMK contract: $name', (f) => {
  let n = 0;
  const freshId = () => `${f.name}-cmk-${++n}-${randomBytes(3).toString('hex')}`;

  it('wrap/unwrap round trip, blob layout, fresh nonce each time', async () => {
    const p = open(f, freshId());
    expect(p.kind).toBe(f.name);
    await p.ping();
    const kek = randomBytes(32);
    const aad = Buffer.from('ctx');
    const w1 = await p.wrap(kek, aad);
    const w2 = await p.wrap(kek, aad);
    expect(w1.cmkId).toBe(p.id);
    expect(w1.cmkVersion).toBe(1);
    expect(w1.blob.length).toBe(12 + 32 + 16);
    expect(w1.blob.equals(w2.blob)).toBe(false);
    expect(w1.blob.includes(kek)).toBe(false);
    expect((await p.unwrap(w1, aad)).equals(kek)).toBe(true);
    expect((await p.unwrap(w2, aad)).equals(kek)).toBe(true);
  });

  it('AAD binding and tamper detection -> IntegrityError', async () => {
    const p = open(f, freshId());
    const kek = randomBytes(32);
    const w = await p.wrap(kek, Buffer.from('dataset-a v1'));
    await expectCode(p.unwrap(w, Buffer.from('dataset-b v1')), 'IntegrityError');
    await expectCode(p.unwrap(w, Buffer.alloc(0)), 'IntegrityError');
    const bad = Buffer.from(w.blob);
    bad[20] ^= 1;
    await expectCode(p.unwrap({ ...w, blob: bad }, Buffer.from('dataset-a v1')), 'IntegrityError');
    const badTag = Buffer.from(w.blob);
    badTag[badTag.length - 1] ^= 0x80;
    await expectCode(p.unwrap({ ...w, blob: badTag }, Buffer.from('dataset-a v1')), 'IntegrityError');
    await expectCode(p.unwrap({ ...w, blob: w.blob.subarray(0, 10) }, Buffer.from('dataset-a v1')), 'IntegrityError');
    // still fine with the right AAD
    expect((await p.unwrap(w, Buffer.from('dataset-a v1'))).equals(kek)).toBe(true);
  });

  it('a blob of another CMK id is refused', async () => {
    const a = open(f, freshId());
    const b = open(f, freshId());
    const w = await a.wrap(randomBytes(32), Buffer.from('x'));
    await expectCode(b.unwrap({ ...w, cmkId: b.id }, Buffer.from('x')), 'IntegrityError');
    await expectCode(b.unwrap(w, Buffer.from('x')), 'IntegrityError');
  });

  it('rotate: new writes use the new version, old blobs stay readable', async () => {
    const p = open(f, freshId());
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
    const p = open(f, freshId());
    const kek = randomBytes(32);
    const aad = Buffer.from('a');
    const w1 = await p.wrap(kek, aad);
    await p.rotate();
    await p.disable(1);
    await expectCode(p.unwrap(w1, aad), 'KeyRevoked');
    expect((await p.versions()).find((v) => v.version === 1)?.state).toBe('disabled');
    // a new instance ("another gateway") sees it disabled too
    const q = open(f, p.id);
    await expectCode(q.unwrap(w1, aad), 'KeyRevoked');
    await p.enable(1);
    expect((await p.unwrap(w1, aad)).equals(kek)).toBe(true);
    // disabling every version: wrap refuses too
    await p.disable(1);
    await p.disable(2);
    await expectCode(p.wrap(kek, aad), 'KeyRevoked');
  });

  it('destroy: blobs under the version are gone forever', async () => {
    const p = open(f, freshId());
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
    const q = open(f, p.id);
    await expectCode(q.unwrap(w1, aad), 'KeyRevoked');
    if (f.name === 'local') {
      expect(existsSync(path.join(localDir, 'cmk', p.id, 'v1.key'))).toBe(false);
    }
  });

  it('restart (new provider instance) keeps every key readable and the state', async () => {
    const id = freshId();
    const p = f.make(id);
    const kek = randomBytes(32);
    const aad = Buffer.from('restart');
    const w1 = await p.wrap(kek, aad);
    await p.rotate();
    const w2 = await p.wrap(kek, aad);
    await p.rotate();
    await p.disable(3);
    await p.close();
    const q = open(f, id);
    expect((await q.unwrap(w1, aad)).equals(kek)).toBe(true);
    expect((await q.unwrap(w2, aad)).equals(kek)).toBe(true);
    expect((await q.versions()).map((v) => v.state)).toEqual(['active', 'active', 'disabled']);
    // wrap uses the newest enabled version
    expect((await q.wrap(kek, aad)).cmkVersion).toBe(2);
  });

  it('key material is never extractable', async () => {
    const p = open(f, freshId());
    const w = await p.wrap(randomBytes(32), Buffer.from('x'));
    expect(w.blob.length).toBe(60);
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
      const dir = path.join(localDir, 'cmk', p.id);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(path.join(dir, 'v1.key')).mode & 0o777).toBe(0o600);
      expect(statSync(path.join(dir, 'v1.key')).size).toBe(32);
      // no API returns the key: only wrap/unwrap/versions/admin
      expect(Object.getOwnPropertyNames(Object.getPrototypeOf(p)).filter((k) => /key|export/i.test(k) && !/^(readKey|createKeyFile|keyPath)$/.test(k))).toEqual([]);
    }
  });

  it('concurrent wraps/unwraps', async () => {
    const p = open(f, freshId());
    const keys = Array.from({ length: 200 }, () => randomBytes(32));
    const ws = await Promise.all(keys.map((k, i) => p.wrap(k, Buffer.from(`k${i}`))));
    const back = await Promise.all(ws.map((w, i) => p.unwrap(w, Buffer.from(`k${i}`))));
    back.forEach((b, i) => expect(b.equals(keys[i])).toBe(true));
  });
});

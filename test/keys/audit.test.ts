import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/types.ts';
import { AuditLog, auditKeyName, loadAuditKey, type AuditEntry } from '../../src/keys/audit.ts';
import { AUDIT_KEY_AAD, rewrapAuditKey, type AuditKeySource } from '../../src/keys/audit-key.ts';
import { AUDIT_KEY_PATH, Keystore } from '../../src/keys/keystore.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { KeyService } from '../../src/keys/service.ts';
import { backendFactories } from './backends.ts';

const META = 'lakecrypt-meta';
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function readEntry(b: Backend, seq: number): Promise<AuditEntry> {
  return JSON.parse((await b.getBuffer(META, auditKeyName(seq))).data.toString()) as AuditEntry;
}
async function writeRaw(b: Backend, seq: number, e: unknown): Promise<void> {
  const body = Buffer.from(JSON.stringify(e));
  await b.putObject(META, auditKeyName(seq), body, { size: body.length });
}
async function seeded(b: Backend, n = 5): Promise<AuditLog> {
  const log = new AuditLog({ backend: b, metaBucket: META, macKey: randomBytes(32) });
  for (let i = 1; i <= n; i++) await log.append('test.event', { i, nested: { z: 1, a: [1, 2] } }, `user${i}`);
  return log;
}

const factories = await backendFactories();

describe.each(factories)('AuditLog on $name backend', (bf) => {
  it('an append that cannot be written rejects to its caller and is told to onAppendFailure (the metric)', async () => {
    const b = await bf.make();
    const log = await seeded(b, 1);
    let failures = 0;
    log.onAppendFailure = () => failures++;
    await log.append('ok.event');
    expect(failures).toBe(0);
    // every write of the backend refused from here on
    const broken = new Proxy(b, {
      get(t, p) {
        if (p === 'putObject') return () => Promise.reject(Object.assign(new Error('store down'), { code: 'ServiceUnavailable' }));
        const v = Reflect.get(t, p) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const log2 = new AuditLog({ backend: broken, metaBucket: META, macKey: randomBytes(32) });
    log2.onAppendFailure = () => failures++;
    await expect(log2.append('lost.event')).rejects.toThrow(/store down/);
    expect(failures).toBe(1);
  });

  it('append / list / verify; chain and MAC', async () => {
    const b = await bf.make();
    const log = await seeded(b, 5);
    const all = await log.list();
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(all[0].prev).toBe('0'.repeat(64));
    for (let i = 1; i < all.length; i++) expect(all[i].prev).toBe(all[i - 1].hash);
    expect(all[2]).toMatchObject({ event: 'test.event', actor: 'user3', details: { i: 3 } });
    expect((await log.list({ since: 4 })).map((e) => e.seq)).toEqual([4, 5]);
    expect((await log.list({ since: 2, limit: 2 })).map((e) => e.seq)).toEqual([2, 3]);
    expect(await log.verify()).toEqual({ ok: true, count: 5 });
    // a fresh instance (restart) continues the chain
    const log2 = new AuditLog({ backend: b, metaBucket: META, macKey: (log as unknown as { macKey: Buffer }).macKey });
    const e6 = await log2.append('after.restart', {});
    expect(e6.seq).toBe(6);
    expect(e6.prev).toBe(all[4].hash);
    expect((await log.verify()).ok).toBe(true);
    // the wrong MAC key fails verification
    const wrong = new AuditLog({ backend: b, metaBucket: META, macKey: randomBytes(32) });
    expect(await wrong.verify()).toMatchObject({ ok: false, firstBad: 1 });
  });

  it('edited entry -> verify fails (also with a recomputed hash)', async () => {
    const b = await bf.make();
    const log = await seeded(b);
    const e = await readEntry(b, 3);
    await writeRaw(b, 3, { ...e, actor: 'mallory' });
    expect(await log.verify()).toMatchObject({ ok: false, firstBad: 3 });
    // attacker recomputes the hash: the MAC (and the next entry's prev) give it away
    const { entryHash } = await import('../../src/keys/audit.ts');
    const forged = { ...e, details: { i: 999 } };
    forged.hash = entryHash(forged);
    await writeRaw(b, 3, forged);
    const r = await log.verify();
    expect(r.ok).toBe(false);
    expect(r.firstBad).toBe(3);
    expect(r.reason).toMatch(/MAC/);
  });

  it('removed entry (gap) -> verify fails', async () => {
    const b = await bf.make();
    const log = await seeded(b);
    await b.deleteObject(META, auditKeyName(2));
    expect(await log.verify()).toMatchObject({ ok: false, firstBad: 2, count: 1 });
  });

  it('removed first entry -> verify fails', async () => {
    const b = await bf.make();
    const log = await seeded(b, 3);
    await b.deleteObject(META, auditKeyName(1));
    expect(await log.verify()).toMatchObject({ ok: false, firstBad: 1 });
  });

  it('removed entry with renumbering (contents shifted) -> verify fails', async () => {
    const b = await bf.make();
    const log = await seeded(b);
    const e4 = await readEntry(b, 4);
    const e5 = await readEntry(b, 5);
    await writeRaw(b, 3, e4);
    await writeRaw(b, 4, e5);
    await b.deleteObject(META, auditKeyName(5));
    expect(await log.verify()).toMatchObject({ ok: false, firstBad: 3 });
  });

  it('reordered entries -> verify fails', async () => {
    const b = await bf.make();
    const log = await seeded(b);
    const e2 = await readEntry(b, 2);
    const e3 = await readEntry(b, 3);
    await writeRaw(b, 2, e3);
    await writeRaw(b, 3, e2);
    expect(await log.verify()).toMatchObject({ ok: false, firstBad: 2 });
  });

  it('truncation is detected against a remembered head', async () => {
    const b = await bf.make();
    const log = await seeded(b);
    const head = await readEntry(b, 5);
    await b.deleteObject(META, auditKeyName(5));
    expect((await log.verify()).ok).toBe(true); // undetectable without an anchor
    expect(await log.verify({ expectHead: { seq: 5, hash: head.hash } })).toMatchObject({ ok: false });
  });

  it('concurrent appends from two gateways form one valid chain', async () => {
    const b = await bf.make();
    const key = randomBytes(32);
    const a = new AuditLog({ backend: b, metaBucket: META, macKey: key });
    const c = new AuditLog({ backend: b, metaBucket: META, macKey: key });
    await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : c).append('concurrent', { i })));
    const r = await a.verify();
    expect(r).toEqual({ ok: true, count: 30 });
    const is = (await a.list()).map((e) => e.details.i as number).sort((x, y) => x - y);
    expect(is).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('loadAuditKey: created once under the default CMK, same secret afterwards; lifecycle events audited', async () => {
    const b = await bf.make();
    const d = mkdtempSync(path.join(os.tmpdir(), 'lc-audit-'));
    dirs.push(d);
    const cmk = new LocalCmkProvider({ id: 'main', dataDir: d });
    const ks = new KeyService({ backend: b, metaBucket: META, cmks: { main: cmk }, defaultCmk: 'main' });
    const ks2 = new KeyService({ backend: b, metaBucket: META, cmks: { main: cmk }, defaultCmk: 'main' });
    const [k1, k2] = await Promise.all([loadAuditKey(ks), loadAuditKey(ks2)]);
    expect(k1.length).toBe(32);
    expect(k1.equals(k2)).toBe(true);
    const stored = (await b.getBuffer(META, AUDIT_KEY_PATH)).data;
    expect(stored.includes(k1)).toBe(false);
    const log = new AuditLog({ backend: b, metaBucket: META, macKey: k1 });
    ks.setAudit(log);
    await ks.activeKek('ds');
    await ks.rotate('ds', 'alice');
    await ks.revoke('ds', 1, 'bob');
    await ks.restore('ds', 1);
    await ks.revokeBlocks('ds', 'ab'.repeat(16), 'all');
    await ks.cmkRotate('main');
    // the audit key was re-wrapped under CMK v2 and still loads after v1 is disabled
    expect((await cmk.versions()).map((v) => v.state)).toEqual(['disabled', 'active']);
    expect((await loadAuditKey(ks2)).equals(k1)).toBe(true);
    const events = (await log.list()).map((e) => [e.event, e.actor]);
    expect(events).toEqual([
      ['kek.create', 'system'],
      ['kek.rotate', 'alice'],
      ['kek.revoke', 'bob'],
      ['kek.restore', 'system'],
      ['block.revoke', 'system'],
      ['cmk.rotate', 'system'],
    ]);
    expect((await log.verify()).ok).toBe(true);
  });

  it('loadAuditKey needs only a keystore and the CMKs (no KeyService): one secret, bound to the audit-key AAD', async () => {
    const b = await bf.make();
    const d = mkdtempSync(path.join(os.tmpdir(), 'lc-audit-'));
    dirs.push(d);
    const cmk = new LocalCmkProvider({ id: 'main', dataDir: d });
    const aads: string[] = [];
    const spy = {
      wrap: (k: Buffer, aad: Buffer) => (aads.push(`wrap ${aad.toString()}`), cmk.wrap(k, aad)),
      unwrap: (w: Parameters<typeof cmk.unwrap>[0], aad: Buffer) => (aads.push(`unwrap ${aad.toString()}`), cmk.unwrap(w, aad)),
    };
    const source = (): AuditKeySource => ({
      keystore: new Keystore({ backend: b, metaBucket: META }),
      defaultCmk: 'main',
      cmk: (id) => {
        if (id !== 'main') throw new Error(`unexpected CMK ${id}`);
        return spy;
      },
    });
    const [k1, k2] = await Promise.all([loadAuditKey(source()), loadAuditKey(source())]);
    expect(k1.length).toBe(32);
    expect(k1.equals(k2)).toBe(true);
    expect(AUDIT_KEY_AAD.toString()).toBe('lakecrypt/v1 audit-key');
    expect(aads).toContain('wrap lakecrypt/v1 audit-key');
    expect(aads.every((a) => a.endsWith(' lakecrypt/v1 audit-key'))).toBe(true);
    const stored = JSON.parse((await b.getBuffer(META, AUDIT_KEY_PATH)).data.toString()) as { wrapped: { cmkId: string; cmkVersion: number } };
    expect(stored.wrapped).toMatchObject({ cmkId: 'main', cmkVersion: 1 });

    // a CMK rotation re-wraps it (once); after v1 is disabled the same secret still loads
    const v2 = await cmk.rotate();
    const ks = new Keystore({ backend: b, metaBucket: META });
    expect(await rewrapAuditKey(ks, cmk, v2.version)).toEqual({ rewrapped: true });
    expect(await rewrapAuditKey(ks, cmk, v2.version)).toEqual({ rewrapped: false });
    await cmk.disable(1);
    expect((await loadAuditKey(source())).equals(k1)).toBe(true);
  });
});

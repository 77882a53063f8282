import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/types.ts';
import { isS3Error } from '../../src/errors.ts';
import { keyCacheCounters } from '../../src/keys/cache.ts';
import { datasetIdOf, recordKey, type DatasetRecord } from '../../src/keys/keystore.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { Pkcs11CmkProvider } from '../../src/keys/pkcs11-cmk.ts';
import { KeyService, type KeyServiceOptions } from '../../src/keys/service.ts';
import type { CmkProvider } from '../../src/keys/types.ts';
import { backendFactories } from './backends.ts';
import { MemBackend } from './mem-backend.ts';
import { tempSoftHsmToken } from './softhsm.ts';

const META = 'lakecrypt-meta';
const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];
const token = tempSoftHsmToken();

function localCmk(id = 'main'): LocalCmkProvider {
  const d = mkdtempSync(path.join(os.tmpdir(), 'lc-svc-'));
  dirs.push(d);
  return new LocalCmkProvider({ id, dataDir: d });
}
function hsmCmk(id: string): Pkcs11CmkProvider {
  const p = new Pkcs11CmkProvider({ module: token.module, tokenLabel: token.label, pin: token.pin, id: `${id}-${randomBytes(3).toString('hex')}` });
  closers.push(() => p.close());
  return p;
}
function svc(backend: Backend, cmks: Record<string, CmkProvider>, extra: Partial<KeyServiceOptions> = {}): KeyService {
  const s = new KeyService({ backend, metaBucket: META, cmks, defaultCmk: Object.keys(cmks)[0], epochPollMs: 50, ...extra });
  closers.push(() => s.stop());
  return s;
}
const codeOf = async (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => (isS3Error(e) ? e.code : String(e)),
  );

afterEach(async () => {
  while (closers.length) await closers.pop()!();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const factories = await backendFactories();

describe.each(factories)('KeyService on $name backend', (bf) => {
  it('datasetFor: longest configured prefix wins, else the bucket', async () => {
    const cmk = localCmk();
    const s = svc(await bf.make(), { main: cmk }, { datasets: [{ name: 'lake/raw/' }, { name: 'lake/raw/pii/' }, { name: 'lake' }, { name: 'other/x' }] });
    expect(s.datasetFor('lake', 'raw/pii/a.parquet')).toBe('lake/raw/pii/');
    expect(s.datasetFor('lake', 'raw/b.parquet')).toBe('lake/raw/');
    expect(s.datasetFor('lake', 'curated/c')).toBe('lake');
    expect(s.datasetFor('other', 'y')).toBe('other');
    expect(s.datasetFor('other', 'x/1')).toBe('other/x');
    expect(s.datasetFor('nobody', 'k')).toBe('nobody');
  });

  it('lazy create of v1 (conditional), cached, stored wrapped', async () => {
    const backend = await bf.make();
    const s = svc(backend, { main: localCmk() });
    const a = await s.activeKek('b1');
    expect(a.version).toBe(1);
    expect(a.key.length).toBe(32);
    const copy = Buffer.from(a.key);
    const again = await s.activeKek('b1');
    expect(again.key.equals(copy)).toBe(true);
    const { data } = await backend.getBuffer(META, recordKey(datasetIdOf('b1')));
    const rec = JSON.parse(data.toString()) as DatasetRecord;
    expect(rec.dataset).toBe('b1');
    expect(rec.cmkId).toBe('main');
    expect(rec.versions).toHaveLength(1);
    expect(rec.versions[0].state).toBe('active');
    expect(rec.versions[0].wrapped?.cmkVersion).toBe(1);
    expect(data.includes(copy)).toBe(false);
    expect(data.toString().includes(copy.toString('base64'))).toBe(false);
    // another instance (no cache) unwraps the same KEK
    const s2 = svc(backend, { main: s.cmk('main') });
    expect((await s2.kek('b1', 1)).equals(copy)).toBe(true);
    // concurrent lazy creation from two instances: one record, same key for both
    const [x, y] = await Promise.all([s.activeKek('b2'), s2.activeKek('b2')]);
    expect(x.version).toBe(1);
    expect(x.key.equals(y.key)).toBe(true);
  });

  it('rotate / versions; revoke, restore, destroy semantics', async () => {
    const s = svc(await bf.make(), { main: localCmk() });
    const k1 = Buffer.from((await s.activeKek('ds')).key);
    expect(await s.rotate('ds')).toBe(2);
    const a2 = await s.activeKek('ds');
    expect(a2.version).toBe(2);
    expect(a2.key.equals(k1)).toBe(false);
    expect((await s.kek('ds', 1)).equals(k1)).toBe(true);
    let shown = await s.show('ds');
    expect(shown!.versions.map((v) => v.state)).toEqual(['decrypt-only', 'active']);
    expect(JSON.stringify(shown)).not.toContain('blob');

    // revoke one version
    expect(await s.revoke('ds', 1)).toEqual([1]);
    expect(await codeOf(s.kek('ds', 1))).toBe('KeyRevoked');
    expect(await codeOf(s.kek('ds', 2))).toBe('ok');
    expect(await s.restore('ds', 1)).toEqual([1]);
    expect((await s.kek('ds', 1)).equals(k1)).toBe(true);
    // revoke everything: no new writes either
    expect((await s.revoke('ds')).sort()).toEqual([1, 2]);
    expect(await codeOf(s.activeKek('ds'))).toBe('KeyRevoked');
    expect(await codeOf(s.kek('ds', 2))).toBe('KeyRevoked');
    await s.restore('ds');
    shown = await s.show('ds');
    expect(shown!.versions.map((v) => v.state)).toEqual(['decrypt-only', 'active']);
    expect((await s.activeKek('ds')).version).toBe(2);
    // destroy: scheduled (never the active one), pending until due, cancellable; destroyed cannot come back
    const soon = (ms: number) => ({ destroyAt: new Date(Date.now() + ms), actor: 'admin:t', force: false, referencingHeaders: 0 });
    expect(await codeOf(s.kekDestruction.scheduleDestroy('ds', 2, soon(0)))).toBe('InvalidRequest');
    await s.revoke('ds', 1);
    const sched = await s.kekDestruction.scheduleDestroy('ds', 1, soon(60_000));
    expect(sched).toMatchObject({ version: 1, pendingFrom: 'revoked', scheduledBy: 'admin:t', alreadyPending: false });
    // not due yet: nothing happens; reads refused naming the due time; the material is still there
    expect(await s.kekDestruction.destroy('ds', 1, { actor: 'system:sweep' })).toBe(false);
    await expect(s.kek('ds', 1)).rejects.toThrow(`key version 1 of ds is pending destruction (due ${sched.destroyAt})`);
    expect((await s.keystore.getRecord(datasetIdOf('ds')))!.value.versions[0]).toMatchObject({ state: 'pending-destruction', destroyAt: sched.destroyAt });
    expect((await s.keystore.getRecord(datasetIdOf('ds')))!.value.versions[0].wrapped).not.toBeNull();
    expect(await codeOf(s.restore('ds', 1))).toBe('InvalidRequest');
    // cancel: back to revoked (as before), restore works again
    expect(await s.kekDestruction.cancelDestroy('ds', 1)).toMatchObject({ version: 1, state: 'revoked' });
    expect(await s.restore('ds', 1)).toEqual([1]);
    expect((await s.kek('ds', 1)).equals(k1)).toBe(true);
    // scheduled again, due at once: destroyed (only once)
    await s.kekDestruction.scheduleDestroy('ds', 1, soon(0));
    expect(await s.kekDestruction.destroy('ds', 1, { actor: 'system:sweep' })).toBe(true);
    expect(await s.kekDestruction.destroy('ds', 1, { actor: 'system:sweep' })).toBe(false);
    expect(await codeOf(s.kekDestruction.cancelDestroy('ds', 1))).toBe('InvalidRequest');
    expect(await codeOf(s.kek('ds', 1))).toBe('KeyRevoked');
    expect(await codeOf(s.restore('ds', 1))).toBe('InvalidRequest');
    const rec = (await s.keystore.getRecord(datasetIdOf('ds')))!.value;
    expect(rec.versions[0].state).toBe('destroyed');
    expect(rec.versions[0].wrapped).toBeNull();
    expect(await codeOf(s.kek('ds', 99))).toBe('KeyRevoked');
    const l = await s.list();
    expect(l.map((d) => [d.dataset, d.activeVersion])).toEqual([['ds', 2]]);
  });

  it('block revocation list', async () => {
    const s = svc(await bf.make(), { main: localCmk() });
    await s.activeKek('ds');
    const oid = randomBytes(16).toString('hex');
    const oid2 = randomBytes(16).toString('hex');
    expect(await s.isBlockRevoked('ds', oid, 1, 0)).toBe(false);
    expect(await s.revokeBlocks('ds', oid, [{ part: 1, block: 0 }, { part: 2, block: 5 }])).toBe(2);
    expect(await s.revokeBlocks('ds', oid, [{ part: 1, block: 0 }])).toBe(0);
    await s.revokeBlocks('ds', oid2, 'all');
    expect(await s.isBlockRevoked('ds', oid, 1, 0)).toBe(true);
    expect(await s.isBlockRevoked('ds', oid.toUpperCase(), 2, 5)).toBe(true);
    expect(await s.isBlockRevoked('ds', oid, 1, 1)).toBe(false);
    expect(await s.isBlockRevoked('ds', oid2, 7, 7)).toBe(true);
    expect(await s.isBlockRevoked('other', oid, 1, 0)).toBe(false);
    expect(await codeOf(s.revokeBlocks('ds', 'zz', 'all'))).toBe('InvalidArgument');
  });

  it('revocation is seen by a second instance within 1 s (epoch polling)', async () => {
    const backend = await bf.make();
    const cmk = localCmk();
    const a = svc(backend, { main: cmk }, { epochPollMs: 250 });
    const b = svc(backend, { main: cmk }, { epochPollMs: 250 });
    await a.start();
    await b.start();
    await a.activeKek('ds');
    const cached = await b.kek('ds', 1); // B now has it cached
    expect(await b.isBlockRevoked('ds', 'aa'.repeat(16), 1, 1)).toBe(false);
    const t0 = Date.now();
    await a.revoke('ds', 1);
    await a.revokeBlocks('ds', 'aa'.repeat(16), [{ part: 1, block: 1 }]);
    let seen = -1;
    while (Date.now() - t0 < 2000) {
      if ((await codeOf(b.kek('ds', 1))) === 'KeyRevoked' && (await b.isBlockRevoked('ds', 'aa'.repeat(16), 1, 1))) {
        seen = Date.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen).toBeGreaterThanOrEqual(0);
    expect(seen).toBeLessThan(1000);
    expect(cached.every((x) => x === 0)).toBe(true); // B's cached KEK was zeroed when dropped
    // restore also propagates
    await a.restore('ds', 1);
    const t1 = Date.now();
    while ((await codeOf(b.kek('ds', 1))) !== 'ok' && Date.now() - t1 < 2000) await new Promise((r) => setTimeout(r, 20));
    expect(Date.now() - t1).toBeLessThan(1000);
  });

  it('concurrent rotations from two instances are never lost (20 -> 21 versions)', async () => {
    const backend = await bf.make();
    if (backend instanceof MemBackend) backend.latencyMs = 3;
    const cmk = localCmk();
    const a = svc(backend, { main: cmk });
    const b = svc(backend, { main: cmk });
    await a.activeKek('ds');
    const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).rotate('ds')));
    expect(new Set(got).size).toBe(20);
    const rec = (await a.show('ds'))!;
    expect(rec.versions.map((v) => v.version)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(rec.versions.filter((v) => v.state === 'active').map((v) => v.version)).toEqual([21]);
    // every version still unwraps
    for (const v of rec.versions) expect((await b.kek('ds', v.version)).length).toBe(32);
    // mixed concurrent updates: revokeBlocks from both instances, none lost
    const oids = Array.from({ length: 10 }, () => randomBytes(16).toString('hex'));
    await Promise.all(oids.map((o, i) => (i % 2 ? a : b).revokeBlocks('ds', o, 'all')));
    const rec2 = (await a.keystore.getRecord(datasetIdOf('ds')))!.value;
    expect(rec2.revokedBlocks.sort()).toEqual(oids.map((o) => `${o}:*`).sort());
  }, 60_000);

  it('cache: zeroed on eviction, expiry and clear; counters', async () => {
    const s = svc(await bf.make(), { main: localCmk() }, { cacheMax: 2, cacheTtlMs: 300 });
    const k1 = (await s.activeKek('d1')).key;
    const k2 = (await s.activeKek('d2')).key;
    const keep1 = Buffer.from(k1);
    expect(k1.some((x) => x !== 0)).toBe(true);
    const before = { ...keyCacheCounters };
    await s.kek('d2', 1); // hit
    expect(keyCacheCounters.hits).toBe(before.hits + 1);
    expect(s.cacheStats.hits).toBeGreaterThanOrEqual(1);
    await s.activeKek('d3'); // evicts d1 (LRU)
    expect(k1.every((x) => x === 0)).toBe(true);
    expect(k2.some((x) => x !== 0)).toBe(true);
    // re-unwrap gives the right key again (a new Buffer)
    const u0 = s.cacheStats.unwraps;
    const k1b = await s.kek('d1', 1);
    expect(k1b.equals(keep1)).toBe(true);
    expect(s.cacheStats.unwraps).toBe(u0 + 1);
    expect(s.cacheStats.evictions).toBeGreaterThanOrEqual(1);
    // expiry: swept by the poller even without access
    await new Promise((r) => setTimeout(r, 350));
    await s.pollOnce();
    expect(k1b.every((x) => x === 0)).toBe(true);
    // clear
    const k = await s.kek('d1', 1);
    s.clearCaches();
    expect(k.every((x) => x === 0)).toBe(true);
  });

  it('two tenants, two CMKs (local + pkcs11): disabling one CMK version denies only its datasets', async () => {
    const backend = await bf.make();
    const t1 = localCmk('tenant1');
    const t2 = hsmCmk('tenant2');
    const s = svc(backend, { tenant1: t1, [t2.id]: t2 }, { datasets: [{ name: 'b1', cmk: 'tenant1' }, { name: 'b2', cmk: t2.id }] });
    const other = svc(backend, { tenant1: t1, [t2.id]: t2 }, { datasets: [{ name: 'b1', cmk: 'tenant1' }, { name: 'b2', cmk: t2.id }], epochPollMs: 100 });
    await other.start();
    await s.activeKek('b1');
    await s.activeKek('b2');
    await other.kek('b2', 1);
    expect((await s.show('b2'))!.cmkId).toBe(t2.id);
    await s.cmkDisable(t2.id, 1);
    expect(await codeOf(s.kek('b2', 1))).toBe('KeyRevoked');
    expect(await codeOf(s.kek('b1', 1))).toBe('ok');
    await new Promise((r) => setTimeout(r, 400));
    expect(await codeOf(other.kek('b2', 1))).toBe('KeyRevoked');
    expect(await codeOf(other.kek('b1', 1))).toBe('ok');
    await s.cmkDisable('tenant1', 1);
    expect(await codeOf(s.kek('b1', 1))).toBe('KeyRevoked');
    const st = await s.cmkStatus();
    expect(st.map((c) => [c.id, c.kind, c.ok, c.datasets, c.versions[0].state])).toEqual([
      ['tenant1', 'local', true, 1, 'disabled'],
      [t2.id, 'pkcs11', true, 1, 'disabled'],
    ]);
  });

  it('cmkRotate re-wraps every KEK of bound datasets, then disables the old CMK version', async () => {
    const backend = await bf.make();
    const c = hsmCmk('rot');
    const d = localCmk('bystander');
    const s = svc(backend, { [c.id]: c, bystander: d }, { datasets: [{ name: 'x', cmk: 'bystander' }] });
    const keys: Record<string, Buffer> = {};
    for (const ds of ['p', 'q']) {
      keys[`${ds}1`] = Buffer.from((await s.activeKek(ds)).key);
      await s.rotate(ds);
      keys[`${ds}2`] = Buffer.from((await s.activeKek(ds)).key);
    }
    await s.revoke('q', 1); // revoked KEKs are re-wrapped too (restore must keep working)
    await s.activeKek('x');
    const r = await s.cmkRotate(c.id);
    expect(r.newVersion).toBe(2);
    expect(r.rewrapped).toBe(4);
    expect(r.failed).toEqual([]);
    expect(r.disabled).toEqual([1]);
    expect((await c.versions()).map((v) => v.state)).toEqual(['disabled', 'active']);
    for (const ds of ['p', 'q']) {
      const rec = (await s.show(ds))!;
      for (const v of rec.versions) expect(v.wrapped?.cmkVersion).toBe(2);
    }
    expect((await s.show('x'))!.versions[0].wrapped?.cmkVersion).toBe(1);
    // fresh instance: everything still readable via CMK v2
    const s2 = svc(backend, { [c.id]: c, bystander: d });
    expect((await s2.kek('p', 1)).equals(keys.p1)).toBe(true);
    expect((await s2.kek('p', 2)).equals(keys.p2)).toBe(true);
    expect(await codeOf(s2.kek('q', 1))).toBe('KeyRevoked');
    await s2.restore('q', 1);
    expect((await s2.kek('q', 1)).equals(keys.q1)).toBe(true);
    // destroying the old CMK version is now harmless (scheduled, due at once, destroyed by the sweep's call)
    await s.cmkDestruction.cmkScheduleDestroy(c.id, 1, { destroyAt: new Date(), actor: 'admin:t' });
    expect(await s.cmkDestruction.cmkDestroyDue()).toEqual([`${c.id} v1`]);
    expect((await c.versions()).find((v) => v.version === 1)?.state).toBe('destroyed');
    expect((await s2.kek('q', 2)).equals(keys.q2)).toBe(true);
  });

  it('export / import keystore (KEKs stay wrapped)', async () => {
    const cmk = localCmk();
    const s = svc(await bf.make(), { main: cmk });
    const k1 = Buffer.from((await s.activeKek('e1')).key);
    await s.rotate('e1');
    await s.revoke('e1', 1);
    await s.activeKek('e2');
    const buf = await s.exportKeystore();
    const doc = JSON.parse(buf.toString());
    expect(doc.records).toHaveLength(2);
    expect(buf.includes(k1)).toBe(false);
    expect(buf.toString().includes(k1.toString('base64'))).toBe(false);
    const t = svc(await bf.make(), { main: cmk });
    expect(await t.importKeystore(buf)).toEqual({ created: 2, merged: 0, unchanged: 0, rewrapped: 0 });
    expect(await codeOf(t.kek('e1', 1))).toBe('KeyRevoked');
    await t.restore('e1', 1);
    expect((await t.kek('e1', 1)).equals(k1)).toBe(true);
    // re-import never resurrects: e1 v1 revoked again by the export's state
    expect(await t.importKeystore(buf)).toEqual({ created: 0, merged: 1, unchanged: 1, rewrapped: 0 });
    expect(await codeOf(t.kek('e1', 1))).toBe('KeyRevoked');
    expect(await codeOf(t.importKeystore(Buffer.from('{"format":"x"}')))).toBe('InvalidArgument');
  });

  it('a restore cannot strand keys: a backup names the CMK versions it needs; one from before a CMK rotation is refused; the newer one repairs', async () => {
    const cmk = localCmk();
    const s = svc(await bf.make(), { main: cmk });
    const k1 = Buffer.from((await s.activeKek('r1')).key);
    const before = await s.exportKeystore();
    expect(JSON.parse(before.toString()).cmkVersions).toEqual({ main: [1] });
    const rot = await s.cmkRotate('main');
    expect(rot.disabled).toEqual([1]);
    const after = await s.exportKeystore();
    expect(JSON.parse(after.toString()).cmkVersions).toEqual({ main: [2] });

    // a fresh keystore (the lake moved, or lost): the old backup would leave r1 unreadable, so it is refused
    const t = svc(await bf.make(), { main: cmk });
    const refused = await t.importKeystore(before).then(
      () => null,
      (e: unknown) => e as Error & { code: string },
    );
    expect(refused?.code).toBe('InvalidRequest');
    expect(refused?.message).toMatch(/main v1.*disabled or destroyed/);
    expect((await t.list()).length).toBe(0);
    // forced, it goes in, and its key cannot be unwrapped (what the refusal warned of)
    expect(await t.importKeystore(before, undefined, { force: true })).toMatchObject({ created: 1, rewrapped: 0 });
    expect(await codeOf(t.kek('r1', 1))).toBe('KeyRevoked');
    // the backup taken after the rotation repairs it: same version, usable wrapping taken
    expect(await t.importKeystore(after)).toEqual({ created: 0, merged: 1, unchanged: 0, rewrapped: 1 });
    expect((await t.kek('r1', 1)).equals(k1)).toBe(true);
  });
});

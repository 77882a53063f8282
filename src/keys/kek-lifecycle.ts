/**
 * The KEK lifecycle of a dataset: lazy creation of version 1, the active KEK and any version (unwrapped under
 * the CMK, cached), rotation, revoke/restore (reversible) and destroy. States: active -> decrypt-only ->
 * revoked / destroyed. Every change bumps the revocation epoch (KeyState.afterChange) and is audited.
 *
 * Buffers returned by `activeKek`/`kek` are the cached ones: use them immediately (derive, then drop the
 * reference); they are zeroed when they leave the cache.
 */
import { randomBytes } from 'node:crypto';
import { S3Error } from '../errors.ts';
import type { DatasetResolver } from './datasets.ts';
import type { CachedRecord, KeyState } from './key-state.ts';
import { NO_CHANGE, datasetIdOf, fromStored, kekAad, toStored, type DatasetRecord, type KekVersionRecord } from './keystore.ts';

export class KekLifecycle {
  constructor(
    private readonly s: KeyState,
    private readonly datasets: Pick<DatasetResolver, 'cmkForNew'>,
  ) {}

  private async newVersion(rec: { datasetId: string; cmkId: string }, version: number): Promise<{ v: KekVersionRecord; key: Buffer }> {
    const key = randomBytes(32);
    try {
      const w = await this.s.cmk(rec.cmkId).wrap(key, kekAad(rec.datasetId, version));
      return { v: { version, state: 'active', wrapped: toStored(w), createdAt: new Date().toISOString() }, key };
    } catch (e) {
      key.fill(0);
      throw e;
    }
  }

  /** The dataset's record, created with KEK version 1 when it has none (several gateways may race: one wins). */
  async recordOrCreate(dataset: string, actor?: string): Promise<CachedRecord> {
    return (await this.s.record(dataset)) ?? (await this.createRecord(dataset, actor));
  }

  private async createRecord(dataset: string, actor?: string): Promise<CachedRecord> {
    const datasetId = datasetIdOf(dataset);
    const cmkId = this.datasets.cmkForNew(dataset);
    let pending: Buffer | undefined;
    const gen = this.s.generation;
    const r = await this.s.keystore.updateRecord(datasetId, async (cur) => {
      pending?.fill(0);
      pending = undefined;
      if (cur) return NO_CHANGE;
      const { v, key } = await this.newVersion({ datasetId, cmkId }, 1);
      pending = key;
      return { dataset, datasetId, cmkId, versions: [v], revokedBlocks: [], headerFormat: 2, updatedAt: new Date().toISOString() };
    });
    if (pending) {
      // we created it: keep the fresh KEK in the cache (saves one unwrap)
      if (gen === this.s.generation) this.s.kekCache.set(`${datasetId}:1`, pending);
      else pending.fill(0);
      await this.s.audit?.append('kek.create', { dataset, datasetId, version: 1, cmkId }, actor);
    }
    return this.s.cacheRecord(r!.value, gen);
  }

  /** The active KEK of a dataset (v1 created lazily). */
  async activeKek(dataset: string): Promise<{ version: number; key: Buffer }> {
    const c = await this.recordOrCreate(dataset);
    const a = c.rec.versions.find((v) => v.state === 'active');
    if (!a) throw new S3Error('KeyRevoked', `dataset ${dataset} has no active key`);
    return { version: a.version, key: await this.kek(dataset, a.version) };
  }

  /** KEK of a given version; KeyRevoked for revoked/destroyed versions or a disabled CMK version. */
  async kek(dataset: string, version: number): Promise<Buffer> {
    let c = await this.s.record(dataset);
    let v = c?.rec.versions.find((x) => x.version === version);
    if (!v) {
      // maybe created by another gateway since we cached the record
      c = await this.s.record(dataset, true);
      v = c?.rec.versions.find((x) => x.version === version);
    }
    if (!c || !v) throw new S3Error('KeyRevoked', `no key version ${version} for this dataset`);
    if (v.state === 'revoked' || v.state === 'destroyed' || !v.wrapped) {
      throw new S3Error('KeyRevoked', `key version ${version} is ${v.state}`);
    }
    const wrapped = fromStored(v.wrapped);
    const datasetIdHex = c.rec.datasetId;
    return this.s.cached(`${datasetIdHex}:${version}`, async () => {
      this.s.kekCache.countUnwrap();
      const key = await this.s.cmk(wrapped.cmkId).unwrap(wrapped, kekAad(datasetIdHex, version));
      if (key.length !== 32) {
        key.fill(0);
        throw new S3Error('IntegrityError', 'unwrapped KEK has the wrong length');
      }
      return key;
    });
  }

  /** New active KEK version; the previous active one becomes decrypt-only. Returns the new version number. */
  async rotate(dataset: string, actor?: string): Promise<number> {
    const datasetId = datasetIdOf(dataset);
    let created: number | undefined;
    let pending: Buffer | undefined;
    await this.s.keystore.updateRecord(datasetId, async (cur) => {
      pending?.fill(0);
      pending = undefined;
      const rec: DatasetRecord = cur ?? { dataset, datasetId, cmkId: this.datasets.cmkForNew(dataset), versions: [], revokedBlocks: [], headerFormat: 2 };
      const next = Math.max(0, ...rec.versions.map((v) => v.version)) + 1;
      const { v, key } = await this.newVersion(rec, next);
      pending = key;
      for (const x of rec.versions) if (x.state === 'active') x.state = 'decrypt-only';
      rec.versions.push(v);
      rec.updatedAt = new Date().toISOString();
      created = next;
      return rec;
    });
    pending?.fill(0);
    await this.s.afterChange(`rotate ${datasetId}`);
    await this.s.audit?.append('kek.rotate', { dataset, datasetId, version: created }, actor);
    return created!;
  }

  /** Revoke one version, or all versions (no version). Reversible with restore (unless destroyed). */
  async revoke(dataset: string, version?: number, actor?: string): Promise<number[]> {
    const changed: number[] = [];
    await this.s.mustUpdate(dataset, (rec) => {
      changed.length = 0;
      if (version !== undefined && !rec.versions.some((v) => v.version === version)) {
        throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      }
      for (const v of rec.versions) {
        if (version !== undefined && v.version !== version) continue;
        if (v.state === 'active' || v.state === 'decrypt-only') {
          v.revokedFrom = v.state;
          v.state = 'revoked';
          v.revokedAt = new Date().toISOString();
          changed.push(v.version);
        }
      }
      if (!changed.length) return NO_CHANGE;
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.s.afterChange(`revoke ${datasetIdOf(dataset)}`);
    await this.s.audit?.append('kek.revoke', { dataset, datasetId: datasetIdOf(dataset), versions: changed, all: version === undefined }, actor);
    return changed;
  }

  /** Undo a revoke (one version or all revoked versions). Destroyed versions cannot be restored. */
  async restore(dataset: string, version?: number, actor?: string): Promise<number[]> {
    const changed: number[] = [];
    await this.s.mustUpdate(dataset, (rec) => {
      changed.length = 0;
      const target = version !== undefined ? rec.versions.find((v) => v.version === version) : undefined;
      if (version !== undefined && !target) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      if (target?.state === 'destroyed') throw new S3Error('InvalidRequest', `key version ${version} is destroyed and cannot be restored`);
      // restore newest first so that at most one version becomes active again
      const candidates = rec.versions
        .filter((v) => v.state === 'revoked' && (version === undefined || v.version === version))
        .sort((a, b) => b.version - a.version);
      for (const v of candidates) {
        const hasActive = rec.versions.some((x) => x.state === 'active');
        v.state = v.revokedFrom === 'active' && !hasActive ? 'active' : 'decrypt-only';
        delete v.revokedFrom;
        delete v.revokedAt;
        changed.push(v.version);
      }
      if (!changed.length) return NO_CHANGE;
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.s.afterChange(`restore ${datasetIdOf(dataset)}`);
    await this.s.audit?.append('kek.restore', { dataset, datasetId: datasetIdOf(dataset), versions: changed }, actor);
    return changed;
  }

  /** Permanently destroy a (non-active) KEK version: its wrapped material is removed from the keystore. */
  async destroy(dataset: string, version: number, actor?: string): Promise<void> {
    await this.s.mustUpdate(dataset, (rec) => {
      const v = rec.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      if (v.state === 'active') throw new S3Error('InvalidRequest', `key version ${version} is active: rotate first`);
      if (v.state === 'destroyed') return NO_CHANGE;
      v.state = 'destroyed';
      v.wrapped = null;
      delete v.revokedFrom;
      v.destroyedAt = new Date().toISOString();
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.s.afterChange(`destroy ${datasetIdOf(dataset)}`);
    await this.s.audit?.append('kek.destroy', { dataset, datasetId: datasetIdOf(dataset), version }, actor);
  }
}

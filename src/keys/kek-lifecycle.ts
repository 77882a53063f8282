/**
 * The KEK lifecycle of a dataset: lazy creation of version 1, the active KEK and any version (unwrapped under
 * the CMK, cached), rotation, revoke/restore (reversible) and destruction with a waiting period. States:
 * active -> decrypt-only -> revoked; decrypt-only / revoked -> pending-destruction (reads refused, material kept,
 * cancellable back to the state it came from) -> destroyed when due (material removed). Every change bumps the
 * revocation epoch (KeyState.afterChange) and is audited.
 *
 * Buffers returned by `activeKek`/`kek` are the cached ones: use them immediately (derive, then drop the
 * reference); they are zeroed when they leave the cache.
 */
import { randomBytes } from 'node:crypto';
import { S3Error, isS3Error } from '../errors.ts';
import type { DatasetResolver } from './datasets.ts';
import type { CachedRecord, KeyState } from './key-state.ts';
import { NO_CHANGE, datasetIdOf, fromStored, kekAad, toStored, type DatasetRecord, type KekVersionRecord } from './keystore.ts';

/** A scheduled destruction as the keystore record holds it. */
export interface DestroySchedule {
  version: number;
  destroyAt: string;
  scheduledAt: string;
  scheduledBy: string;
  pendingFrom: 'decrypt-only' | 'revoked';
  forced: boolean;
  /** True when the version was already pending destruction (that schedule is kept, nothing written). */
  alreadyPending: boolean;
}

/** The destruction part of the lifecycle, as the key service hands it out. */
export type KekDestruction = Pick<KekLifecycle, 'scheduleDestroy' | 'cancelDestroy' | 'holdDestroy' | 'destroy' | 'onDestructionDue'>;

const PENDING_FIELDS = ['pendingFrom', 'destroyAt', 'scheduledBy', 'scheduledAt', 'destroyForced', 'destroyBlocked'] as const;

export class KekLifecycle {
  /**
   * Called (not awaited) when a read touches a version pending destruction that is due: the admin's sweep
   * registers itself here so that the destruction happens on the next touch, not only on its next round.
   */
  onDestructionDue?: (dataset: string, version: number) => void;

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
    if (!c || !v) throw new S3Error('KeyRevoked', `dataset ${dataset} has no key version ${version}`);
    if (v.state === 'pending-destruction') {
      if (v.destroyAt && Date.parse(v.destroyAt) <= Date.now()) this.onDestructionDue?.(dataset, version);
      throw new S3Error('KeyRevoked', `key version ${version} of ${dataset} is pending destruction (due ${v.destroyAt ?? 'unknown'})`);
    }
    if (v.state === 'revoked' || v.state === 'destroyed' || !v.wrapped) {
      throw new S3Error('KeyRevoked', `key version ${version} of dataset ${dataset} is ${v.state}`);
    }
    const wrapped = fromStored(v.wrapped);
    const datasetIdHex = c.rec.datasetId;
    return this.s.cached(`${datasetIdHex}:${version}`, async () => {
      this.s.kekCache.countUnwrap();
      const key = await this.s
        .cmk(wrapped.cmkId)
        .unwrap(wrapped, kekAad(datasetIdHex, version))
        .catch((e: unknown) => {
          // the customer's key refused: say so, with the dataset the read was for (the provider cannot know it)
          if (isS3Error(e, 'KeyRevoked')) {
            const r = new S3Error('KeyRevoked', `dataset ${dataset}: key version ${version} cannot be unwrapped: CMK ${wrapped.cmkId} refused (${e.message})`, {}, { cause: e });
            r.revocation = 'cmk';
            throw r;
          }
          throw e;
        });
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
      if (target?.state === 'pending-destruction') {
        throw new S3Error('InvalidRequest', `key version ${version} is pending destruction (due ${target.destroyAt}): cancel the destruction first (keys cancel-destroy)`);
      }
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

  /**
   * Schedule the destruction of a (non-active) KEK version at `destroyAt`: it becomes pending-destruction (reads
   * refused on every gateway within the epoch poll, wrapped material kept). A version already pending keeps its
   * schedule. The reference rule (headers naming it) is the caller's (src/admin/destroy.ts).
   */
  async scheduleDestroy(
    dataset: string,
    version: number,
    o: { destroyAt: Date; actor: string; force: boolean; referencingHeaders: number },
  ): Promise<DestroySchedule> {
    let out: DestroySchedule | undefined;
    await this.s.mustUpdate(dataset, (rec) => {
      const v = rec.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      if (v.state === 'active') throw new S3Error('InvalidRequest', `key version ${version} is active: rotate first`);
      if (v.state === 'destroyed') throw new S3Error('InvalidRequest', `key version ${version} is already destroyed`);
      if (v.state === 'pending-destruction') {
        out = scheduleOf(v, true);
        return NO_CHANGE;
      }
      v.pendingFrom = v.state;
      v.state = 'pending-destruction';
      v.destroyAt = o.destroyAt.toISOString();
      v.scheduledAt = new Date().toISOString();
      v.scheduledBy = o.actor;
      if (o.force) v.destroyForced = true;
      else delete v.destroyForced;
      delete v.destroyBlocked;
      rec.updatedAt = v.scheduledAt;
      out = scheduleOf(v, false);
      return rec;
    });
    if (!out!.alreadyPending) {
      await this.s.afterChange(`destroy-scheduled ${datasetIdOf(dataset)}`);
      await this.s.audit?.append(
        'kek.destroy-scheduled',
        { dataset, datasetId: datasetIdOf(dataset), version, destroyAt: out!.destroyAt, forced: o.force, referencingHeaders: o.referencingHeaders },
        o.actor,
      );
    }
    return out!;
  }

  /** Cancel a pending destruction: the version returns to the state it had (decrypt-only or revoked). */
  async cancelDestroy(dataset: string, version: number, actor?: string): Promise<{ version: number; state: KekVersionRecord['state']; destroyAt: string }> {
    let state: KekVersionRecord['state'] = 'decrypt-only';
    let destroyAt = '';
    await this.s.mustUpdate(dataset, (rec) => {
      const v = rec.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      if (v.state === 'destroyed') throw new S3Error('InvalidRequest', `key version ${version} is already destroyed: too late to cancel`);
      if (v.state !== 'pending-destruction') throw new S3Error('InvalidRequest', `key version ${version} is not pending destruction (it is ${v.state})`);
      destroyAt = v.destroyAt ?? '';
      v.state = v.pendingFrom ?? 'decrypt-only';
      state = v.state;
      for (const f of PENDING_FIELDS) delete v[f];
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.s.afterChange(`destroy-cancelled ${datasetIdOf(dataset)}`);
    await this.s.audit?.append('kek.destroy-cancelled', { dataset, datasetId: datasetIdOf(dataset), version, state, destroyAt }, actor);
    return { version, state, destroyAt };
  }

  /**
   * Note, once per change of the count, that a due destruction (not forced) is held back because headers still
   * reference the version: it stays pending. Returns true when this call recorded it (and audited why).
   */
  async holdDestroy(dataset: string, version: number, referencingHeaders: number, actor: string): Promise<boolean> {
    let changed = false;
    await this.s.mustUpdate(dataset, (rec) => {
      changed = false;
      const v = rec.versions.find((x) => x.version === version);
      if (v?.state !== 'pending-destruction' || v.destroyBlocked?.referencingHeaders === referencingHeaders) return NO_CHANGE;
      v.destroyBlocked = { at: new Date().toISOString(), referencingHeaders };
      changed = true;
      return rec;
    });
    if (changed) {
      await this.s.audit?.append(
        'kek.destroy-held',
        { dataset, datasetId: datasetIdOf(dataset), version, referencingHeaders, reason: `${referencingHeaders} header(s) still reference key version ${version} and the destruction was not forced: left pending (re-wrap, or cancel and schedule again with force)` },
        actor,
      );
    }
    return changed;
  }

  /**
   * Destroy a version pending destruction whose time has come: its wrapped material is removed from the keystore
   * for good. A conditional write: with several gateways sweeping, one does it and the others find it done.
   * `expectDestroyAt` (the schedule the caller checked) guards against a cancel and a new schedule meanwhile.
   * Returns true when this call destroyed it.
   */
  async destroy(dataset: string, version: number, o: { actor: string; expectDestroyAt?: string; referencingHeaders?: number; now?: number }): Promise<boolean> {
    let done: KekVersionRecord | undefined;
    await this.s.mustUpdate(dataset, (rec) => {
      done = undefined;
      const v = rec.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `dataset ${dataset} has no key version ${version}`);
      if (v.state !== 'pending-destruction' || !v.destroyAt) return NO_CHANGE;
      if (o.expectDestroyAt !== undefined && v.destroyAt !== o.expectDestroyAt) return NO_CHANGE;
      if (Date.parse(v.destroyAt) > (o.now ?? Date.now())) return NO_CHANGE;
      done = { ...v };
      v.state = 'destroyed';
      v.wrapped = null;
      delete v.revokedFrom;
      for (const f of PENDING_FIELDS) delete v[f];
      v.destroyedAt = new Date().toISOString();
      rec.updatedAt = v.destroyedAt;
      return rec;
    });
    if (!done) return false;
    await this.s.afterChange(`destroy ${datasetIdOf(dataset)}`);
    await this.s.audit?.append(
      'kek.destroy',
      {
        dataset,
        datasetId: datasetIdOf(dataset),
        version,
        scheduledBy: done.scheduledBy,
        scheduledAt: done.scheduledAt,
        destroyAt: done.destroyAt,
        forced: !!done.destroyForced,
        ...(o.referencingHeaders !== undefined ? { referencingHeaders: o.referencingHeaders } : {}),
      },
      o.actor,
    );
    return true;
  }
}

function scheduleOf(v: KekVersionRecord, alreadyPending: boolean): DestroySchedule {
  return {
    version: v.version,
    destroyAt: v.destroyAt!,
    scheduledAt: v.scheduledAt!,
    scheduledBy: v.scheduledBy!,
    pendingFrom: v.pendingFrom!,
    forced: !!v.destroyForced,
    alreadyPending,
  };
}

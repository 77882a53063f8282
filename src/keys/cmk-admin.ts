/**
 * CMK administration: status of every configured CMK, rotation (a new CMK version, every KEK and the audit key
 * re-wrapped under it, then the old versions disabled), and disable / enable / destroy of one CMK version. Each
 * bumps the revocation epoch and is audited.
 *
 * Destruction has a waiting period. For `local`, `pkcs11` and `transit` CMKs lakecrypt keeps it: the version is
 * disabled at once (every gateway refuses what it wraps), the schedule is written to `keystore/cmk-deletions.json`
 * (conditional writes), a cancel re-enables it if it was active, and the admin port's sweep destroys it at the
 * provider when due. An `awskms` CMK uses the KMS's own waiting period (ScheduleKeyDeletion, 7-30 days): the
 * schedule and its cancel (CancelKeyDeletion) live at the customer's KMS.
 */
import { S3Error, isS3Error } from '../errors.ts';
import { rewrapAuditKey } from './audit-key.ts';
import type { KeyState } from './key-state.ts';
import { NO_CHANGE, fromStored, kekAad, toStored, type DatasetRecord } from './keystore.ts';
import type { CmkKind, CmkVersionInfo } from './types.ts';

/** A CMK version as shown to operators: the provider's state, or pending-destruction with its due time. */
export type CmkVersionView = Omit<CmkVersionInfo, 'state'> & {
  state: CmkVersionInfo['state'] | 'pending-destruction';
  destroyAt?: string;
  scheduledBy?: string;
};

export interface CmkStatus {
  id: string;
  kind: CmkKind;
  isDefault: boolean;
  ok: boolean;
  error?: string;
  versions: CmkVersionView[];
  datasets: number;
}

/** A CMK version scheduled for destruction (lakecrypt's waiting period). */
export interface CmkDeletion {
  cmkId: string;
  version: number;
  destroyAt: string;
  scheduledAt: string;
  scheduledBy: string;
  /** The state to return to on cancel. */
  prevState: 'active' | 'disabled';
  /** Set (ISO time) by the gateway destroying it now: too late to cancel. */
  destroying?: string;
}

export interface CmkDestroySchedule {
  cmkId: string;
  version: number;
  state: 'pending-destruction';
  /** Absent for awskms: the KMS's own waiting period (its deletion window) applies. */
  destroyAt?: string;
  scheduledBy: string;
  /** 'lakecrypt' (its waiting period and sweep) or 'provider' (the KMS schedules the deletion itself). */
  waitingPeriod: 'lakecrypt' | 'provider';
}

/** The destruction part of CMK administration, as the key service hands it out. */
export type CmkDestruction = Pick<CmkAdmin, 'deletions' | 'cmkScheduleDestroy' | 'cmkCancelDestroy' | 'cmkDestroyDue'>;

export const CMK_DELETIONS_KEY = 'keystore/cmk-deletions.json';
interface DeletionsDoc {
  pending: CmkDeletion[];
}

export interface CmkRotateResult {
  cmkId: string;
  newVersion: number;
  rewrapped: number;
  /** Versions that could not be re-wrapped (their CMK version was already disabled/destroyed, or an error). */
  failed: { dataset: string; version: number; reason: string }[];
  /** Old CMK versions disabled after the re-wrap (empty if a blocking failure happened). */
  disabled: number[];
}

export class CmkAdmin {
  constructor(private readonly s: KeyState) {}

  async cmkStatus(): Promise<CmkStatus[]> {
    let recs: DatasetRecord[] = [];
    try {
      recs = await this.s.keystore.listRecords();
      this.s.bestEffort.ok('cmk-status-datasets');
    } catch (e) {
      // The status still shows every CMK's own health; only the per-CMK dataset counts are lost (shown as 0).
      this.s.bestEffort.failed('cmk-status-datasets', e, 'CMK status: listing the keystore failed; dataset counts shown as 0');
    }
    const pending = await this.deletions();
    const out: CmkStatus[] = [];
    for (const id of this.s.cmkIds()) {
      const p = this.s.cmk(id);
      const s: CmkStatus = { id, kind: p.kind, isDefault: id === this.s.defaultCmk, ok: true, versions: [], datasets: recs.filter((r) => r.cmkId === id).length };
      try {
        await p.ping();
        s.versions = await p.versions();
        for (const d of pending.filter((x) => x.cmkId === id)) {
          const v = s.versions.find((x) => x.version === d.version);
          if (v && v.state !== 'destroyed') Object.assign(v, { state: 'pending-destruction', destroyAt: d.destroyAt, scheduledBy: d.scheduledBy });
        }
      } catch (e) {
        // not swallowed: the failure is the answer (ok: false, error)
        s.ok = false;
        s.error = (e as Error).message;
      }
      out.push(s);
    }
    return out;
  }

  /**
   * New CMK version; every KEK (of every dataset bound to this CMK, and the audit key) is re-wrapped under it;
   * then the previously active CMK versions are disabled (skipped if a re-wrap failed for a reason other than an
   * already revoked CMK version, so nothing becomes unreadable by accident).
   */
  async cmkRotate(cmkId: string, actor?: string): Promise<CmkRotateResult> {
    const p = this.s.cmk(cmkId);
    const before = await p.versions();
    const info = await p.rotate();
    const res: CmkRotateResult = { cmkId, newVersion: info.version, rewrapped: 0, failed: [], disabled: [] };
    let blocking = false;
    for (const id of await this.s.keystore.listIds()) {
      let count = 0;
      let failed: CmkRotateResult['failed'] = [];
      await this.s.keystore.updateRecord(id, async (rec) => {
        count = 0;
        failed = [];
        if (!rec) return NO_CHANGE;
        let changed = false;
        for (const v of rec.versions) {
          if (!v.wrapped || v.wrapped.cmkId !== cmkId || v.wrapped.cmkVersion === info.version) continue;
          const aad = kekAad(rec.datasetId, v.version);
          let key: Buffer | undefined;
          try {
            key = await p.unwrap(fromStored(v.wrapped), aad);
            const w = await p.wrap(key, aad);
            if (w.cmkVersion !== info.version) throw new Error(`wrapped under v${w.cmkVersion}, expected v${info.version}`);
            v.wrapped = toStored(w);
            count++;
            changed = true;
          } catch (e) {
            // not swallowed: reported in the result, and it keeps the old CMK versions enabled
            failed.push({ dataset: rec.dataset, version: v.version, reason: (e as Error).message });
            if (!isS3Error(e, 'KeyRevoked')) blocking = true;
          } finally {
            key?.fill(0);
          }
        }
        if (!changed) return NO_CHANGE;
        rec.updatedAt = new Date().toISOString();
        return rec;
      });
      res.rewrapped += count;
      res.failed.push(...failed);
    }
    // the audit key, if wrapped under this CMK
    const audit = await rewrapAuditKey(this.s.keystore, p, info.version);
    if (audit.rewrapped) res.rewrapped++;
    if (audit.error !== undefined) {
      res.failed.push({ dataset: '(audit key)', version: 0, reason: (audit.error as Error).message });
      if (!isS3Error(audit.error, 'KeyRevoked')) blocking = true;
    }
    if (!blocking) {
      for (const v of before) {
        if (v.state === 'active' && v.version !== info.version) {
          await p.disable(v.version);
          res.disabled.push(v.version);
        }
      }
    }
    await this.s.afterChange(`cmk-rotate ${cmkId}`);
    await this.s.audit?.append('cmk.rotate', { ...res, failed: res.failed.length }, actor);
    return res;
  }

  async cmkDisable(cmkId: string, version: number, actor?: string): Promise<void> {
    await this.s.cmk(cmkId).disable(version);
    await this.s.afterChange(`cmk-disable ${cmkId}`);
    await this.s.audit?.append('cmk.disable', { cmkId, version }, actor);
  }

  async cmkEnable(cmkId: string, version: number, actor?: string): Promise<void> {
    const d = (await this.deletions()).find((x) => x.cmkId === cmkId && x.version === version);
    if (d) throw new S3Error('InvalidRequest', `CMK ${cmkId} v${version} is pending destruction (due ${d.destroyAt}): cancel the destruction first (cmk cancel-destroy)`);
    await this.s.cmk(cmkId).enable(version);
    await this.s.afterChange(`cmk-enable ${cmkId}`);
    await this.s.audit?.append('cmk.enable', { cmkId, version }, actor);
  }

  /** Scheduled CMK destructions (lakecrypt's waiting period). */
  async deletions(): Promise<CmkDeletion[]> {
    return (await this.s.keystore.readJson<DeletionsDoc>(CMK_DELETIONS_KEY))?.value.pending ?? [];
  }

  /**
   * Schedule the destruction of a CMK version. local / pkcs11 / transit: disabled now (what it wraps is refused on
   * every gateway), destroyed at the provider by the sweep at `destroyAt`, cancellable until then. awskms: the KMS
   * schedules the deletion with its own waiting period (ScheduleKeyDeletion).
   */
  async cmkScheduleDestroy(cmkId: string, version: number, o: { destroyAt: Date; actor: string }): Promise<CmkDestroySchedule> {
    const p = this.s.cmk(cmkId);
    const v = (await p.versions()).find((x) => x.version === version);
    if (!v) throw new S3Error('InvalidArgument', `CMK ${cmkId} has no version ${version}`);
    if (v.state === 'destroyed') throw new S3Error('InvalidRequest', `CMK ${cmkId} v${version} is already destroyed`);
    if (p.kind === 'awskms') {
      await p.destroy(version);
      await this.s.afterChange(`cmk-destroy ${cmkId}`);
      await this.s.audit?.append('cmk.destroy-scheduled', { cmkId, version, waitingPeriod: 'provider' }, o.actor);
      return { cmkId, version, state: 'pending-destruction', scheduledBy: o.actor, waitingPeriod: 'provider' };
    }
    const known = (await this.deletions()).find((x) => x.cmkId === cmkId && x.version === version);
    // disabled before the schedule is written: a provider that refuses (transit disables from the oldest version
    // up) leaves nothing scheduled
    if (!known && v.state === 'active') await p.disable(version);
    let entry: CmkDeletion | undefined;
    let fresh = false;
    await this.s.keystore.update<DeletionsDoc>(CMK_DELETIONS_KEY, (cur) => {
      const doc = cur ?? { pending: [] };
      entry = doc.pending.find((x) => x.cmkId === cmkId && x.version === version);
      fresh = !entry;
      if (entry) return NO_CHANGE;
      entry = { cmkId, version, destroyAt: o.destroyAt.toISOString(), scheduledAt: new Date().toISOString(), scheduledBy: o.actor, prevState: v.state === 'active' ? 'active' : 'disabled' };
      doc.pending.push(entry);
      return doc;
    });
    if (fresh) {
      await this.s.afterChange(`cmk-destroy-scheduled ${cmkId}`);
      await this.s.audit?.append('cmk.destroy-scheduled', { cmkId, version, destroyAt: entry!.destroyAt, waitingPeriod: 'lakecrypt' }, o.actor);
    }
    return { cmkId, version, state: 'pending-destruction', destroyAt: entry!.destroyAt, scheduledBy: entry!.scheduledBy, waitingPeriod: 'lakecrypt' };
  }

  /** Cancel a scheduled CMK destruction: the version is enabled again if it was active before. */
  async cmkCancelDestroy(cmkId: string, version: number, actor?: string): Promise<{ cmkId: string; version: number; state: 'active' | 'disabled'; destroyAt: string }> {
    const p = this.s.cmk(cmkId);
    if (p.kind === 'awskms') {
      throw new S3Error('InvalidRequest', `CMK ${cmkId} is an AWS KMS key: its deletion is scheduled at the KMS; cancel it there (CancelKeyDeletion, then EnableKey)`);
    }
    let found: CmkDeletion | undefined;
    await this.s.keystore.update<DeletionsDoc>(CMK_DELETIONS_KEY, (cur) => {
      found = cur?.pending.find((x) => x.cmkId === cmkId && x.version === version);
      if (!cur || !found) return NO_CHANGE;
      if (found.destroying) throw new S3Error('InvalidRequest', `CMK ${cmkId} v${version} is being destroyed (it was due ${found.destroyAt}): too late to cancel`);
      cur.pending = cur.pending.filter((x) => x !== found);
      return cur;
    });
    if (!found) throw new S3Error('InvalidRequest', `CMK ${cmkId} v${version} is not pending destruction`);
    if (found.prevState === 'active') await p.enable(version);
    await this.s.afterChange(`cmk-destroy-cancelled ${cmkId}`);
    await this.s.audit?.append('cmk.destroy-cancelled', { cmkId, version, state: found.prevState, destroyAt: found.destroyAt }, actor);
    return { cmkId, version, state: found.prevState, destroyAt: found.destroyAt };
  }

  /**
   * Destroy, at their providers, the CMK versions whose waiting period is over. Idempotent and safe with several
   * gateways: the provider's destroy is idempotent, and only the gateway whose conditional write removes the
   * schedule records it. Returns the versions this call destroyed ("<cmk> v<N>").
   */
  async cmkDestroyDue(actor = 'system:sweep', now = Date.now()): Promise<string[]> {
    const out: string[] = [];
    for (const d of await this.deletions()) {
      if (Date.parse(d.destroyAt) > now || !this.s.hasCmk(d.cmkId)) continue;
      // claim it (conditional write): a cancel is refused from here on; another gateway's claim older than a
      // minute (it died mid-way) is taken over — the provider's destroy is idempotent
      let claimed = false;
      await this.s.keystore.update<DeletionsDoc>(CMK_DELETIONS_KEY, (cur) => {
        const e = cur?.pending.find((x) => x.cmkId === d.cmkId && x.version === d.version && x.destroyAt === d.destroyAt);
        claimed = !!e && (!e.destroying || now - Date.parse(e.destroying) > 60_000);
        if (!cur || !e || !claimed) return NO_CHANGE;
        e.destroying = new Date(now).toISOString();
        return cur;
      });
      if (!claimed) continue;
      await this.s.cmk(d.cmkId).destroy(d.version);
      let removed = false;
      await this.s.keystore.update<DeletionsDoc>(CMK_DELETIONS_KEY, (cur) => {
        const e = cur?.pending.find((x) => x.cmkId === d.cmkId && x.version === d.version && x.destroyAt === d.destroyAt);
        removed = !!e;
        if (!cur || !e) return NO_CHANGE;
        cur.pending = cur.pending.filter((x) => x !== e);
        return cur;
      });
      if (!removed) continue;
      out.push(`${d.cmkId} v${d.version}`);
      await this.s.afterChange(`cmk-destroy ${d.cmkId}`);
      await this.s.audit?.append('cmk.destroy', { cmkId: d.cmkId, version: d.version, scheduledBy: d.scheduledBy, scheduledAt: d.scheduledAt, destroyAt: d.destroyAt }, actor);
    }
    return out;
  }
}

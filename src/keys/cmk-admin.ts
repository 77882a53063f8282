/**
 * CMK administration: status of every configured CMK, rotation (a new CMK version, every KEK and the audit key
 * re-wrapped under it, then the old versions disabled), and disable / enable / destroy of one CMK version. Each
 * bumps the revocation epoch and is audited.
 */
import { isS3Error } from '../errors.ts';
import { rewrapAuditKey } from './audit-key.ts';
import type { KeyState } from './key-state.ts';
import { NO_CHANGE, fromStored, kekAad, toStored, type DatasetRecord } from './keystore.ts';
import type { CmkKind, CmkVersionInfo } from './types.ts';

export interface CmkStatus {
  id: string;
  kind: CmkKind;
  isDefault: boolean;
  ok: boolean;
  error?: string;
  versions: CmkVersionInfo[];
  datasets: number;
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
    const out: CmkStatus[] = [];
    for (const id of this.s.cmkIds()) {
      const p = this.s.cmk(id);
      const s: CmkStatus = { id, kind: p.kind, isDefault: id === this.s.defaultCmk, ok: true, versions: [], datasets: recs.filter((r) => r.cmkId === id).length };
      try {
        await p.ping();
        s.versions = await p.versions();
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
    await this.s.cmk(cmkId).enable(version);
    await this.s.afterChange(`cmk-enable ${cmkId}`);
    await this.s.audit?.append('cmk.enable', { cmkId, version }, actor);
  }

  async cmkDestroy(cmkId: string, version: number, actor?: string): Promise<void> {
    await this.s.cmk(cmkId).destroy(version);
    await this.s.afterChange(`cmk-destroy ${cmkId}`);
    await this.s.audit?.append('cmk.destroy', { cmkId, version }, actor);
  }
}

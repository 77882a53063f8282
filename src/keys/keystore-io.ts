/**
 * Keystore export and import (backup, moving a lake between gateways' backends). The export is JSON of every
 * dataset record (KEKs stay wrapped under their CMKs, header keys under KEK versions) and the wrapped audit key;
 * an import merges it so that it never weakens what is there.
 */
import { S3Error } from '../errors.ts';
import type { KeyState } from './key-state.ts';
import { lastGivenHeaderKey } from './header-keys.ts';
import { AUDIT_KEY_PATH, NO_CHANGE, datasetIdOf, type DatasetRecord, type KekVersionRecord } from './keystore.ts';

export interface KeystoreExport {
  format: 'lakecrypt-keystore/1';
  exportedAt: string;
  records: DatasetRecord[];
  auditKey?: unknown;
}

const STATE_RANK: Record<KekVersionRecord['state'], number> = { active: 0, 'decrypt-only': 1, revoked: 2, 'pending-destruction': 3, destroyed: 4 };

export class KeystoreIo {
  constructor(private readonly s: KeyState) {}

  /** JSON of every dataset record (KEKs stay wrapped under their CMKs) and the wrapped audit key. */
  async exportKeystore(actor?: string): Promise<Buffer> {
    const records = await this.s.keystore.listRecords();
    const auditKey = (await this.s.keystore.readJson<unknown>(AUDIT_KEY_PATH))?.value;
    const doc: KeystoreExport = { format: 'lakecrypt-keystore/1', exportedAt: new Date().toISOString(), records, ...(auditKey ? { auditKey } : {}) };
    await this.s.audit?.append('keystore.export', { records: records.length }, actor);
    return Buffer.from(JSON.stringify(doc, null, 1), 'utf8');
  }

  /**
   * Import an export: missing records are created; existing ones are merged (union of versions, the more
   * restrictive state wins — an import never resurrects a revoked or destroyed key — union of revoked blocks).
   */
  async importKeystore(buf: Buffer, actor?: string): Promise<{ created: number; merged: number; unchanged: number }> {
    let doc: KeystoreExport;
    try {
      doc = JSON.parse(buf.toString('utf8')) as KeystoreExport;
    } catch (e) {
      throw new S3Error('InvalidArgument', 'keystore import is not valid JSON', {}, { cause: e });
    }
    if (doc?.format !== 'lakecrypt-keystore/1' || !Array.isArray(doc.records)) throw new S3Error('InvalidArgument', 'not a lakecrypt keystore export');
    const out = { created: 0, merged: 0, unchanged: 0 };
    for (const inc of doc.records) {
      if (typeof inc?.dataset !== 'string' || !Array.isArray(inc.versions) || datasetIdOf(inc.dataset) !== inc.datasetId) {
        throw new S3Error('InvalidArgument', 'malformed record in keystore import');
      }
      if (!this.s.hasCmk(inc.cmkId)) throw new S3Error('InvalidArgument', `record ${inc.dataset} uses unknown CMK ${inc.cmkId}`);
      let kind: 'created' | 'merged' | 'unchanged' = 'unchanged';
      await this.s.keystore.updateRecord(inc.datasetId, (cur) => {
        if (!cur) {
          kind = 'created';
          return { ...inc, revokedBlocks: inc.revokedBlocks ?? [] };
        }
        const before = JSON.stringify(cur);
        mergeRecord(cur, inc);
        if (JSON.stringify(cur) === before) {
          kind = 'unchanged';
          return NO_CHANGE;
        }
        kind = 'merged';
        return cur;
      });
      out[kind]++;
    }
    if (doc.auditKey) {
      await this.s.keystore.update(AUDIT_KEY_PATH, (cur) => (cur ? NO_CHANGE : doc.auditKey));
    }
    await this.s.afterChange('import');
    await this.s.audit?.append('keystore.import', out, actor);
    return out;
  }
}

/** Merge an imported record into the current one, in place; never weakens a state or brings back a retired key. */
function mergeRecord(cur: DatasetRecord, inc: DatasetRecord): void {
  for (const iv of inc.versions) {
    const cv = cur.versions.find((v) => v.version === iv.version);
    if (!cv) {
      cur.versions.push({ ...iv, state: iv.state === 'active' && cur.versions.some((v) => v.state === 'active') ? 'decrypt-only' : iv.state });
    } else if (STATE_RANK[iv.state] > STATE_RANK[cv.state]) {
      if (iv.state === 'pending-destruction') {
        // keep the imported schedule (its due time and who asked): a cancel returns to the state it had here
        Object.assign(cv, { pendingFrom: cv.state === 'revoked' ? 'revoked' : 'decrypt-only', destroyAt: iv.destroyAt, scheduledBy: iv.scheduledBy, scheduledAt: iv.scheduledAt, destroyForced: iv.destroyForced });
      }
      cv.state = iv.state;
      if (iv.state === 'destroyed') cv.wrapped = null;
    }
  }
  cur.versions.sort((a, b) => a.version - b.version);
  // a key missing here with a number this record already gave out was retired: never bring it back
  const given = lastGivenHeaderKey(cur);
  for (const ik of inc.headerKeys ?? []) {
    if (!cur.headerKeys?.some((k) => k.n === ik.n) && ik.n > given) (cur.headerKeys ??= []).push(ik);
  }
  const last = Math.max(lastGivenHeaderKey(cur), lastGivenHeaderKey(inc));
  if (last > 0) cur.lastHeaderKey = last;
  // format-1 headers may exist if either side says they may
  if (inc.headerFormat !== 2) delete cur.headerFormat;
  cur.revokedBlocks = [...new Set([...cur.revokedBlocks, ...(inc.revokedBlocks ?? [])])];
}

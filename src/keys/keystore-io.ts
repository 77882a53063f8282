/**
 * Keystore export and import (backup, moving a lake between gateways' backends). The export is JSON of every
 * dataset record (KEKs stay wrapped under their CMKs, header keys under KEK versions) and the wrapped audit key;
 * an import merges it so that it never weakens what is there.
 */
import { S3Error } from '../errors.ts';
import type { KeyState } from './key-state.ts';
import { lastGivenHeaderKey } from './header-keys.ts';
import { AUDIT_KEY_PATH, NO_CHANGE, datasetIdOf, type DatasetRecord, type KekVersionRecord, type StoredWrapped } from './keystore.ts';

export interface KeystoreExport {
  format: 'lakecrypt-keystore/1';
  exportedAt: string;
  records: DatasetRecord[];
  auditKey?: unknown;
  /**
   * The CMK versions this backup's wrapped keys need (by CMK id), so that an operator can see what a backup
   * depends on and a restore can refuse one whose keys would be stranded. Absent in backups of older releases:
   * computed from the records then.
   */
  cmkVersions?: Record<string, number[]>;
}

/** What a restore did; `rewrapped`: versions whose stored wrapping (under an unusable CMK version) was replaced. */
export interface ImportResult {
  created: number;
  merged: number;
  unchanged: number;
  rewrapped: number;
}

/** Every wrapped key of a backup: KEK versions not destroyed, and the audit key. */
function wrappingsOf(doc: Pick<KeystoreExport, 'records' | 'auditKey'>): StoredWrapped[] {
  const out: StoredWrapped[] = [];
  for (const r of doc.records) for (const v of r.versions) if (v.wrapped && v.state !== 'destroyed') out.push(v.wrapped);
  const ak = (doc.auditKey as { wrapped?: StoredWrapped } | undefined)?.wrapped;
  if (ak && typeof ak.cmkId === 'string' && Number.isInteger(ak.cmkVersion)) out.push(ak);
  return out;
}

function cmkVersionsOf(doc: Pick<KeystoreExport, 'records' | 'auditKey'>): Record<string, number[]> {
  const m: Record<string, Set<number>> = {};
  for (const w of wrappingsOf(doc)) (m[w.cmkId] ??= new Set()).add(w.cmkVersion);
  return Object.fromEntries(Object.entries(m).map(([id, set]) => [id, [...set].sort((a, b) => a - b)]));
}

const STATE_RANK: Record<KekVersionRecord['state'], number> = { active: 0, 'decrypt-only': 1, revoked: 2, 'pending-destruction': 3, destroyed: 4 };

export class KeystoreIo {
  constructor(private readonly s: KeyState) {}

  /** Per CMK id: the versions that can unwrap now (active or disabled-for-wrap but enabled: state 'active'). */
  private async usableCmkVersions(ids: string[]): Promise<Map<string, Set<number>>> {
    const m = new Map<string, Set<number>>();
    for (const id of ids) {
      if (!this.s.hasCmk(id)) continue;
      const vs = await this.s.cmk(id).versions();
      m.set(id, new Set(vs.filter((v) => v.state === 'active').map((v) => v.version)));
    }
    return m;
  }

  /** JSON of every dataset record (KEKs stay wrapped under their CMKs) and the wrapped audit key. */
  async exportKeystore(actor?: string): Promise<Buffer> {
    const records = await this.s.keystore.listRecords();
    const auditKey = (await this.s.keystore.readJson<unknown>(AUDIT_KEY_PATH))?.value;
    const base = { records, ...(auditKey ? { auditKey } : {}) };
    const cmkVersions = cmkVersionsOf(base);
    const doc: KeystoreExport = { format: 'lakecrypt-keystore/1', exportedAt: new Date().toISOString(), ...base, cmkVersions };
    await this.s.audit?.append('keystore.export', { records: records.length, cmkVersions }, actor);
    return Buffer.from(JSON.stringify(doc, null, 1), 'utf8');
  }

  /**
   * Import an export: missing records are created; existing ones are merged (union of versions, the more
   * restrictive state wins — an import never resurrects a revoked or destroyed key — union of revoked blocks).
   */
  async importKeystore(buf: Buffer, actor?: string, o: { force?: boolean } = {}): Promise<ImportResult> {
    let doc: KeystoreExport;
    try {
      doc = JSON.parse(buf.toString('utf8')) as KeystoreExport;
    } catch (e) {
      throw new S3Error('InvalidArgument', 'keystore import is not valid JSON', {}, { cause: e });
    }
    if (doc?.format !== 'lakecrypt-keystore/1' || !Array.isArray(doc.records)) throw new S3Error('InvalidArgument', 'not a lakecrypt keystore export');
    for (const inc of doc.records) {
      if (typeof inc?.dataset !== 'string' || !Array.isArray(inc.versions) || datasetIdOf(inc.dataset) !== inc.datasetId) {
        throw new S3Error('InvalidArgument', 'malformed record in keystore import');
      }
      if (!this.s.hasCmk(inc.cmkId)) throw new S3Error('InvalidArgument', `record ${inc.dataset} uses unknown CMK ${inc.cmkId}`);
    }
    // Keys wrapped under a CMK version that is disabled or destroyed now would be stranded: writes and reads of
    // those datasets would fail after the restore. Refuse, naming the versions, unless forced.
    const usable = await this.usableCmkVersions(Object.keys(cmkVersionsOf(doc)));
    const unusable = wrappingsOf(doc).filter((w) => !usable.get(w.cmkId)?.has(w.cmkVersion));
    if (unusable.length && !o.force) {
      const names = [...new Set(unusable.map((w) => `${w.cmkId} v${w.cmkVersion}`))].join(', ');
      throw new S3Error(
        'InvalidRequest',
        `this backup's keys are wrapped under CMK version(s) ${names}, which are disabled or destroyed now: restoring it would leave its datasets unreadable. Enable them first (cmk enable --version N), restore, then rotate the CMK; or restore a backup taken after the CMK rotation; or pass force to restore anyway`,
      );
    }
    const out: ImportResult = { created: 0, merged: 0, unchanged: 0, rewrapped: 0 };
    for (const inc of doc.records) {
      let kind: 'created' | 'merged' | 'unchanged' = 'unchanged';
      await this.s.keystore.updateRecord(inc.datasetId, (cur) => {
        if (!cur) {
          kind = 'created';
          return { ...inc, revokedBlocks: inc.revokedBlocks ?? [] };
        }
        const before = JSON.stringify(cur);
        mergeRecord(cur, inc);
        out.rewrapped += takeUsableWrappings(cur, inc, usable);
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
    if (doc.auditKey) {
      // the same for the audit key: a current one under an unusable CMK version takes the backup's usable one
      const inc = (doc.auditKey as { wrapped?: StoredWrapped }).wrapped;
      await this.s.keystore.update<{ wrapped?: StoredWrapped }>(AUDIT_KEY_PATH, (cur) =>
        cur?.wrapped && inc && !usable.get(cur.wrapped.cmkId)?.has(cur.wrapped.cmkVersion) && usable.get(inc.cmkId)?.has(inc.cmkVersion) ? { ...cur, wrapped: inc } : NO_CHANGE,
      );
    }
    await this.s.afterChange('import');
    await this.s.audit?.append('keystore.import', { ...out }, actor);
    return out;
  }
}

/**
 * Where a KEK version here is wrapped under a CMK version that is no longer usable and the backup holds the same
 * version wrapped under a usable one, take the backup's wrapping (the same KEK: the AAD binds dataset and version,
 * and the unwrap authenticates it). This is what makes restoring a backup taken after a CMK rotation repair a
 * keystore whose wrappings predate it. Returns how many were replaced.
 */
function takeUsableWrappings(cur: DatasetRecord, inc: DatasetRecord, usable: Map<string, Set<number>>): number {
  let n = 0;
  const ok = (w: StoredWrapped | null | undefined) => !!w && !!usable.get(w.cmkId)?.has(w.cmkVersion);
  for (const cv of cur.versions) {
    const iv = inc.versions.find((v) => v.version === cv.version);
    if (cv.wrapped && !ok(cv.wrapped) && iv && ok(iv.wrapped)) {
      cv.wrapped = iv.wrapped;
      n++;
    }
  }
  return n;
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

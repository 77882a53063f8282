/**
 * DEK revocations: the dataset record's list of revoked blocks (`<oid>:<part>:<block>`, or `<oid>:*` for a
 * whole object), read as a predicate per object and extended by `revokeBlocks`. The list outlives the header
 * reseal that erases the DEK, so an older header replayed later is still refused (DESIGN.md "Key hierarchy").
 */
import { S3Error } from '../errors.ts';
import type { KeyState } from './key-state.ts';
import { NO_CHANGE, datasetIdOf } from './keystore.ts';

const OID_RE = /^[0-9a-f]{2,128}$/;

export class DekRevocations {
  constructor(private readonly s: KeyState) {}

  /**
   * The revocation list of one object as a synchronous predicate (part number, block): one record lookup per
   * read, however many blocks the object has.
   */
  async revocationCheck(dataset: string, oidHex: string): Promise<(part: number, block: number) => boolean> {
    const c = await this.s.record(dataset);
    if (!c || c.revoked.size === 0) return () => false;
    const oid = oidHex.toLowerCase();
    if (c.revoked.has(`${oid}:*`)) return () => true;
    return (part, block) => c.revoked.has(`${oid}:${part}:${block}`);
  }

  /** True if the block (or the whole object) is on the dataset's revocation list. */
  async isBlockRevoked(dataset: string, oidHex: string, part: number, block: number): Promise<boolean> {
    return (await this.revocationCheck(dataset, oidHex))(part, block);
  }

  /** Add blocks (or the whole object) to the dataset's revocation list. */
  /** `where`: the object's bucket and key, for the audit trail (the list itself is by oid). */
  async revokeBlocks(dataset: string, oidHex: string, blocks: { part: number; block: number }[] | 'all', actor?: string, where?: { bucket: string; key: string }): Promise<number> {
    const oid = oidHex.toLowerCase();
    if (!OID_RE.test(oid) || oid.length % 2) throw new S3Error('InvalidArgument', 'invalid object id');
    const entries =
      blocks === 'all'
        ? [`${oid}:*`]
        : blocks.map((b) => {
            if (!Number.isInteger(b.part) || !Number.isInteger(b.block) || b.part < 0 || b.block < 0) {
              throw new S3Error('InvalidArgument', 'invalid block address');
            }
            return `${oid}:${b.part}:${b.block}`;
          });
    let added = 0;
    await this.s.mustUpdate(dataset, (rec) => {
      const set = new Set(rec.revokedBlocks);
      added = 0;
      for (const e of entries) {
        if (set.has(e)) continue;
        set.add(e);
        added++;
      }
      if (!added) return NO_CHANGE;
      rec.revokedBlocks = [...set];
      rec.updatedAt = new Date().toISOString();
      return rec;
    });
    await this.s.afterChange(`revoke-blocks ${datasetIdOf(dataset)}`);
    await this.s.audit?.append('block.revoke', { dataset, datasetId: datasetIdOf(dataset), ...where, oid, blocks: blocks === 'all' ? 'all' : blocks }, actor);
    return added;
  }
}

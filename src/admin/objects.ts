/** DEK-level administration: revoke one block (or the whole object), rekey an object. */
import { S3Error, isS3Error } from '../errors.ts';
import type { HeaderFields } from '../engine/index.ts';
import type { KeyService } from '../keys/service.ts';
import { wipeHeaderKeys } from '../store/index.ts';
import { META_OID, loadHeaderBytes, storeHeaderBytes, type HeaderSite, type ObjectStore } from '../store/index.ts';
import type { ObjectInfo } from '../backend/types.ts';

export interface RevokeResult {
  bucket: string;
  key: string;
  dataset: string;
  oid: string;
  /** Global block index, or 'all'. */
  block: number | 'all';
  part?: number;
  partBlock?: number;
  /** Whether the header was resealed with the DEK(s) erased (false if it could not be opened any more). */
  resealed: boolean;
  /** The version revoked, when one was named. */
  versionId?: string;
}

/** Map a global 0-based block index (across parts, in order) to (part number, block within the part). */
export function locateBlock(h: HeaderFields, index: number): { partIndex: number; partNumber: number; block: number } {
  let base = 0;
  for (let i = 0; i < h.parts.length; i++) {
    const n = h.parts[i].deks.length;
    if (index < base + n) return { partIndex: i, partNumber: h.parts[i].partNumber ?? i + 1, block: index - base };
    base += n;
  }
  throw new S3Error('InvalidArgument', `block ${index} out of range: the object has ${base} block(s)`);
}

async function openFresh(store: ObjectStore, bucket: string, key: string, oidHex: string, from: { info?: ObjectInfo; versionId?: string }): Promise<{ fields: HeaderFields; site: HeaderSite }> {
  const { data, site } = await loadHeaderBytes(store, bucket, key, oidHex, from);
  return { fields: await store.door.open(data, { bucket, key, oidHex }), site };
}

/** The dataset a header that does not open (its key revoked) names: from its fixed fields, checked as a read would. */
async function headerDataset(store: ObjectStore, keys: KeyService, bucket: string, key: string, oidHex: string, info: ObjectInfo): Promise<string> {
  const { data } = await loadHeaderBytes(store, bucket, key, oidHex, { info });
  const ds = keys.headerDatasetFor(bucket, key, store.door.peek(data).datasetId);
  if (ds === null) throw new S3Error('IntegrityError', 'The object header belongs to another dataset.');
  return ds;
}

export async function revokeObject(
  store: ObjectStore,
  keys: KeyService,
  bucket: string,
  key: string,
  block: number | undefined,
  actor: string,
  /** One version of a bucket that keeps versions (its own oid, so its own header and DEKs); default the current one. */
  versionId?: string,
): Promise<RevokeResult> {
  if (block !== undefined && (!Number.isInteger(block) || block < 0)) throw new S3Error('InvalidArgument', 'block must be a non-negative integer');
  const info = await store.backend.headObject(bucket, key, versionId);
  if (!info) throw new S3Error(versionId === undefined ? 'NoSuchKey' : 'NoSuchVersion', undefined, { Key: key });
  const oid = info.meta[META_OID];
  if (!oid) throw new S3Error('InvalidRequest', 'this object was not written through lakecrypt');
  let opened: { fields: HeaderFields; site: HeaderSite } | undefined;
  try {
    opened = await openFresh(store, bucket, key, oid, { info });
  } catch (e) {
    // A header that no longer opens (revoked KEK) can still be revoked as a whole by oid.
    if (block !== undefined || !isS3Error(e, 'KeyRevoked')) throw e;
  }
  // The revocation list is the one of the dataset the object's header names (the route's, or an ancestor's for an
  // object written before its prefix dataset was created and not adopted yet): that is the list its reads consult.
  const dataset = opened?.fields.dataset ?? (await headerDataset(store, keys, bucket, key, oid, info));
  const res: RevokeResult = { bucket, key, dataset, oid, block: block ?? 'all', resealed: false };
  if (versionId !== undefined) res.versionId = versionId;
  let loc: ReturnType<typeof locateBlock> | undefined;
  if (block !== undefined) {
    try {
      loc = locateBlock(opened!.fields, block);
    } catch (e) {
      wipeHeaderKeys(opened!.fields);
      throw e;
    }
    res.part = loc.partNumber;
    res.partBlock = loc.block;
  }
  if (opened) wipeHeaderKeys(opened.fields);
  // 1. the keystore list (refuses older copies of the header too) and the epoch bump (every gateway drops caches)
  await keys.revokeBlocks(dataset, oid, loc ? [{ part: loc.partNumber, block: loc.block }] : 'all', actor, { bucket, key });
  // 2. erase the DEK(s) from the stored header (conditional rewrite, retried on a concurrent change)
  for (let attempt = 0; opened && attempt < 8; attempt++) {
    let cur: { fields: HeaderFields; site: HeaderSite };
    try {
      // read again: an inline header's site (the data object's ETag) must be the one rewritten
      cur = await openFresh(store, bucket, key, oid, { versionId });
    } catch (e) {
      if (isS3Error(e, 'NoSuchKey')) break;
      throw e;
    }
    try {
      for (let i = 0; i < cur.fields.parts.length; i++) {
        const p = cur.fields.parts[i];
        for (let b = 0; b < p.deks.length; b++) {
          if (!loc || (loc.partIndex === i && loc.block === b)) {
            p.deks[b]?.fill(0);
            p.deks[b] = null;
          }
        }
      }
      const sealed = await store.door.sealAsCurrent(cur.fields);
      // false: an inline header of a non-current version, which cannot be rewritten in place; the list refuses it
      res.resealed = await storeHeaderBytes(store, bucket, key, oid, sealed, cur.site);
      break;
    } catch (e) {
      if (!isS3Error(e, 'PreconditionFailed')) throw e;
    } finally {
      wipeHeaderKeys(cur.fields);
    }
  }
  store.headers.delete(bucket, key, oid);
  return res;
}

export async function rekeyObject(store: ObjectStore, bucket: string, key: string): Promise<{ bucket: string; key: string; oldOid: string; oid: string; etag: string }> {
  const info = await store.backend.headObject(bucket, key);
  if (!info) throw new S3Error('NoSuchKey', undefined, { Key: key });
  const oldOid = info.meta[META_OID] ?? '';
  const r = await store.reseal(bucket, key);
  return { bucket, key, oldOid, oid: r.oid.toString('hex'), etag: r.etag };
}

/**
 * Where one object version's header is stored (docs/FORMAT.md 2.5 and 3; DESIGN.md "Write order"):
 *   - data format 1: its own object in the meta bucket, `h/<bucket>/<sha256(key)>/<oid>`;
 *   - data format 2 (small single-PUT objects): inline, in the data object's backend metadata (`lc-h`, the same
 *     sealed header bytes in base64), so a small PUT is ONE backend write and a cold small GET or HEAD one read.
 * The data object's `lc-fmt` says which, so a reader never has to guess. A version changes format only by an
 * in-place copy that replaces its metadata (S3 CopyObject onto itself): the header object is written first, then
 * the data object's metadata switches to format 1 — both states open.
 *
 * This module is the one place that loads and stores header bytes wherever they live; opening and sealing stay
 * in the header door. Rewriting an inline header (a DEK revocation, a re-key) is a server-side in-place copy of
 * the data object with its metadata replaced, conditional on the object's ETag: no data byte passes the gateway.
 * On a bucket that keeps versions that copy would make a new version, so inline headers are written only to
 * buckets whose versioning was never enabled, and a non-current inline version is never rewritten (see
 * `storeHeaderBytes`).
 */
import type { Backend, ObjectInfo } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { META_FMT, META_OID, headerPath } from './header-door.ts';
import { headVersion } from './versions.ts';

/** Backend metadata name of an inline header (data format 2). */
export const META_HEADER = 'lc-h';
/** `lc-fmt` of a data object whose header is inline. */
export const FMT_INLINE = '2';
/**
 * Largest inline header, in base64 characters: with `lc-oid`, `lc-fmt` and `lc-etag` (and their names) the data
 * object's user metadata stays under S3's 2 KiB limit. A larger header (long keys, much user metadata) goes to the
 * meta bucket as format 1.
 */
export const INLINE_HEADER_MAX = 1536;

/** Whether a data object's metadata says its header is inline. */
export const isInline = (meta: Record<string, string>): boolean => meta[META_FMT] === FMT_INLINE;

/** The inline header bytes of a format-2 data object; IntegrityError when the value is missing or not canonical base64. */
export function inlineHeaderBytes(meta: Record<string, string>): Buffer {
  const v = meta[META_HEADER];
  const bytes = v === undefined ? null : Buffer.from(v, 'base64');
  if (bytes === null || v.length > INLINE_HEADER_MAX || bytes.toString('base64') !== v) {
    throw new S3Error('IntegrityError', 'The object header is missing.');
  }
  return bytes;
}

/** Where header bytes were found: what a conditional rewrite of them needs. */
export type HeaderSite =
  | { inline: false; etag: string }
  | { inline: true; etag: string; versionId?: string; meta: Record<string, string> };

export interface HeaderBytes {
  data: Buffer;
  site: HeaderSite;
}

/** The part of a data object's HEAD, GET or listing entry that says where its header is. */
export type DataInfo = Pick<ObjectInfo, 'etag' | 'meta'> & { versionId?: string };

interface Deps {
  backend: Backend;
  metaBucket: string;
}

/**
 * The stored header bytes of version `oidHex` of bucket/key. With `info` (the data object's HEAD or GET, already
 * at hand) its `lc-fmt` decides; without, the meta bucket is asked first and the data object (`versionId`) when
 * that has no header of the oid. Throws NoSuchKey when neither holds one.
 */
export async function loadHeaderBytes(d: Deps, bucket: string, key: string, oidHex: string, from: { info?: DataInfo; versionId?: string } = {}): Promise<HeaderBytes> {
  const inlineOf = (info: DataInfo): HeaderBytes => ({
    data: inlineHeaderBytes(info.meta),
    site: { inline: true, etag: info.etag, versionId: info.versionId, meta: info.meta },
  });
  if (from.info && from.info.meta[META_OID] === oidHex && isInline(from.info.meta)) return inlineOf(from.info);
  if (!from.info) {
    try {
      const { data, info } = await d.backend.getBuffer(d.metaBucket, headerPath(bucket, key, oidHex));
      return { data, site: { inline: false, etag: info.etag } };
    } catch (e) {
      if (!isS3Error(e, 'NoSuchKey')) throw e;
    }
    const info = await headVersion(d.backend, bucket, key, from.versionId);
    if (info && info.meta[META_OID] === oidHex && isInline(info.meta)) return inlineOf(info);
    throw new S3Error('NoSuchKey', undefined, { Key: key });
  }
  const { data, info } = await d.backend.getBuffer(d.metaBucket, headerPath(bucket, key, oidHex));
  return { data, site: { inline: false, etag: info.etag } };
}

/**
 * Write resealed header bytes back where `site` says they were, conditional on what was read (PreconditionFailed
 * when someone changed it since). Returns false, writing nothing, for an inline header on a bucket that keeps
 * versions now (a real version id, or versioning Enabled since it was written): an in-place copy would make a new
 * version instead of replacing this one. The DEK revocation list still refuses its revoked blocks, and the scan
 * counts the header key it names.
 */
export async function storeHeaderBytes(d: Deps, bucket: string, key: string, oidHex: string, bytes: Buffer, site: HeaderSite): Promise<boolean> {
  if (!site.inline) {
    await d.backend.putObject(d.metaBucket, headerPath(bucket, key, oidHex), bytes, { size: bytes.length, ifMatch: site.etag });
    return true;
  }
  if (site.versionId !== undefined && site.versionId !== 'null') return false;
  // Versioning enabled since this version was written (a backend may not name its null version): an in-place copy
  // would add a new version beside it and leave this one as it was. (Suspended: the copy replaces the null version.)
  if ((await d.backend.getBucketVersioning?.(bucket)) === 'Enabled') return false;
  const value = bytes.toString('base64');
  if (value.length > INLINE_HEADER_MAX) throw new S3Error('InternalError', 'A resealed inline header outgrew its place.');
  await d.backend.copyObject(bucket, key, bucket, key, { meta: { ...site.meta, [META_HEADER]: value }, ifMatch: site.etag });
  return true;
}

/**
 * Whether new small objects of a bucket may carry their header inline: only while the bucket's versioning was never
 * enabled (looked up once per `ttlMs` per bucket; `forget` after a PutBucketVersioning through this gateway). A
 * gateway that has not yet seen another one enable versioning writes inline for at most `ttlMs` more: those
 * versions read as any other; a later re-key leaves their non-current versions under the header key they name,
 * which it then does not retire (it counts them).
 */
export class InlinePolicy {
  private readonly seen = new Map<string, { ok: boolean; at: number }>();
  constructor(
    private readonly backend: Backend,
    /** 0 turns inline headers off (every header goes to the meta bucket, data format 1). */
    readonly maxChars: number = INLINE_HEADER_MAX,
    private readonly ttlMs = 30_000,
  ) {}

  async allowed(bucket: string): Promise<boolean> {
    if (this.maxChars === 0) return false;
    if (!this.backend.getBucketVersioning) return true;
    const hit = this.seen.get(bucket);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.ok;
    const ok = (await this.backend.getBucketVersioning(bucket)) === undefined;
    if (this.seen.size > 10_000) this.seen.clear();
    this.seen.set(bucket, { ok, at: Date.now() });
    return ok;
  }

  forget(bucket: string): void {
    this.seen.delete(bucket);
  }
}

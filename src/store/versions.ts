/**
 * Object versions (docs/DESIGN.md "Versions"). On a backend that keeps versions (s3), the backend's own
 * versioning holds the ciphertext versions, and each version's data object names its own header by its `lc-oid`
 * (every write makes a fresh oid: `h/<bucket>/<sha256(key)>/<oid>` is one version's header). So what versioning
 * changes in the object layer is only WHEN a header may go:
 *   - a write (PUT, Complete, copy) drops the header of the version it replaced only when the backend really
 *     replaced it (no version kept: an unversioned bucket, or the null version under Suspended);
 *   - a delete without a version id makes a delete marker on a versioned bucket: every header stays;
 *   - a delete of one version drops that version's header.
 * A header left behind by a lost race is an orphan that `lakecrypt gc` finds: gc counts a header as live when
 * ANY version of its key names it (versionOids).
 */
import type { Backend, DeleteResult, ObjectInfo } from '../backend/types.ts';
import { isS3Error } from '../errors.ts';
import { META_FMT, META_OID, headerPath } from './header-door.ts';
import type { HeaderCache } from './header-cache.ts';

/** The id S3 gives the version written while versioning was never enabled or is suspended. */
export const NULL_VERSION_ID = 'null';

/** Whether the backend keeps object versions (then the client's version ids are the backend's). */
export const keepsVersions = (b: Backend): boolean => typeof b.listObjectVersions === 'function' && typeof b.putBucketVersioning === 'function';

/**
 * Whether a write committed as `committed` (the version id the backend answered, undefined when it said none)
 * replaced `previous` (the version that was current before it), so that the previous version's header can go.
 *   - no version id: an unversioned bucket, the write replaced it — unless the previous one had a version id
 *     (a backend that stopped saying: keep it, gc decides);
 *   - a real id: versioning is enabled, the previous version stays as a non-current one;
 *   - `null`: versioning is suspended, only a previous null version was replaced.
 */
export function replacedPrevious(previous: ObjectInfo | null, committed: string | undefined): boolean {
  if (committed === undefined) return previous?.versionId === undefined;
  if (committed !== NULL_VERSION_ID) return false;
  return previous?.versionId === undefined || previous.versionId === NULL_VERSION_ID;
}

/** Best-effort runner of the object store (a failure is logged and counted, leaves work for gc). */
type BestEffort = <T>(what: string, p: Promise<T>, fallback: T) => Promise<T>;

export interface VersionDeps {
  backend: Backend;
  metaBucket: string;
  headers: HeaderCache;
  bestEffort: BestEffort;
}

/** HEAD of a version that may be a delete marker (MethodNotAllowed): null then, as for an absent one. */
async function headVersion(backend: Backend, bucket: string, key: string, versionId?: string): Promise<ObjectInfo | null> {
  try {
    return await backend.headObject(bucket, key, versionId);
  } catch (e) {
    if (isS3Error(e, 'MethodNotAllowed') || isS3Error(e, 'NoSuchVersion')) return null;
    throw e;
  }
}

/**
 * DeleteObject, with or without a version id, and the header that goes with it. Without a version id on a
 * versioned bucket the backend makes a delete marker and every version (and header) stays; under Suspended the
 * null version it replaces loses its header. With a version id, that version and its header go.
 */
export async function deleteVersion(d: VersionDeps, bucket: string, key: string, versionId?: string): Promise<DeleteResult> {
  const info = await headVersion(d.backend, bucket, key, versionId);
  const res = (await d.backend.deleteObject(bucket, key, versionId)) ?? {};
  const oid = info?.meta[META_OID];
  // no oid: not written through lakecrypt; an inline header (format 2, inline-header.ts) went with its data object
  if (!oid || info.meta[META_FMT] === '2') return res;
  const gone =
    versionId !== undefined ||
    !res.deleteMarker ||
    (res.versionId === NULL_VERSION_ID && (info.versionId === undefined || info.versionId === NULL_VERSION_ID));
  if (gone) {
    d.headers.delete(bucket, key, oid);
    await d.bestEffort('deleted-object-header-delete', d.backend.deleteObject(d.metaBucket, headerPath(bucket, key, oid)), undefined);
  }
  return res;
}

/**
 * The oids every version of one key names (a header is live while any of them does), or undefined when the
 * backend keeps no versions. Versions are HEADed one by one: version listings carry no user metadata.
 */
export async function versionOids(backend: Backend, bucket: string, key: string): Promise<Set<string> | undefined> {
  if (!backend.listObjectVersions) return undefined;
  const oids = new Set<string>();
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await backend.listObjectVersions(bucket, { prefix: key, keyMarker, versionIdMarker });
    for (const e of page.entries) {
      if (e.key !== key || e.deleteMarker) continue;
      const oid = (await headVersion(backend, bucket, key, e.versionId))?.meta[META_OID];
      if (oid) oids.add(oid);
    }
    if (!page.isTruncated || page.entries.at(-1)?.key !== key) return oids;
    keyMarker = page.nextKeyMarker;
    versionIdMarker = page.nextVersionIdMarker;
    if (keyMarker === undefined) return oids;
  }
}

/** Every object version of a bucket (no delete markers), page by page: for gc, re-wrap and migrate walks. */
export async function* allVersions(backend: Backend, bucket: string, prefix?: string): AsyncGenerator<{ key: string; versionId: string; isLatest: boolean; lastModified: Date }> {
  if (!backend.listObjectVersions) return;
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    let page;
    try {
      page = await backend.listObjectVersions(bucket, { prefix, keyMarker, versionIdMarker });
    } catch (e) {
      if (isS3Error(e, 'NoSuchBucket')) return;
      throw e;
    }
    for (const e of page.entries) if (!e.deleteMarker) yield e;
    if (!page.isTruncated || page.nextKeyMarker === undefined) return;
    keyMarker = page.nextKeyMarker;
    versionIdMarker = page.nextVersionIdMarker;
  }
}

export { headVersion };

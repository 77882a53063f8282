/**
 * versionId on an unversioned bucket. lakecrypt keeps one version per key (GetBucketVersioning answers that
 * versioning was never enabled), so every object is the version S3 calls `null`. Tools that clean or copy by
 * version (conformance suites, Terraform's bucket destroy, `mc rb --force`, boto3's object_versions) name it
 * explicitly; any other id names a version that does not exist.
 *
 * The answers follow MinIO on an unversioned bucket (S3 answers alike where it was compared):
 *   GET/HEAD      null: the object (absent: 404 NoSuchVersion); a well-formed id: 404 NoSuchVersion;
 *                 anything else: 400 InvalidArgument "Invalid version id specified"
 *   DELETE        null: deletes; a well-formed id: nothing to delete, 204; anything else: 400 InvalidArgument
 *   DeleteObjects null: deleted (answered back with VersionId null); a well-formed id: answered as deleted, nothing
 *                 removed; anything else: an Error entry NoSuchVersion
 *   CopySource    `?versionId=null`: the object (absent: 404 NoSuchVersion); any other id: 404 NoSuchVersion
 * An empty versionId is no versionId, as S3 and MinIO take it.
 */
import { isS3Error, S3Error } from '../errors.ts';

/** The id of the only version an object in an unversioned bucket has. */
export const NULL_VERSION = 'null';

/**
 * The shapes of version id a version-aware backend could have issued (MinIO's are UUIDs, in the spellings Go's
 * uuid.Parse takes): such an id is well-formed, just unknown here.
 */
const WELL_FORMED =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}|urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$/i;

export type VersionIdKind = 'none' | 'null' | 'unknown' | 'malformed';

/** What a versionId names on an unversioned bucket. */
export function versionIdKind(versionId: string | null | undefined): VersionIdKind {
  if (versionId === null || versionId === undefined || versionId === '') return 'none';
  if (versionId === NULL_VERSION) return 'null';
  return WELL_FORMED.test(versionId) ? 'unknown' : 'malformed';
}

const invalid = (versionId: string, argument: string) =>
  new S3Error('InvalidArgument', 'Invalid version id specified', { ArgumentName: argument, ArgumentValue: versionId });
const noSuchVersion = (key: string, versionId: string) =>
  new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: versionId });

/** A read of the null version: the key's absence is NoSuchVersion, as for any version named that does not exist. */
async function readNullVersion<T>(key: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (isS3Error(e, 'NoSuchKey')) throw noSuchVersion(key, NULL_VERSION);
    throw e;
  }
}

/**
 * GET/HEAD `?versionId=`: returns when the request reads the current object. For `null`, `exists` is asked first
 * (it throws NoSuchKey when the key is absent), so a missing key answers NoSuchVersion.
 */
export async function checkReadVersion(versionId: string | null, key: string, exists: () => Promise<unknown>): Promise<void> {
  switch (versionIdKind(versionId)) {
    case 'none':
      return;
    case 'null':
      await readNullVersion(key, exists);
      return;
    case 'unknown':
      throw noSuchVersion(key, versionId!);
    case 'malformed':
      throw invalid(versionId!, 'versionId');
  }
}

/**
 * DELETE `?versionId=`: whether the current object is to be deleted. A well-formed id of a version that does not
 * exist deletes nothing and still succeeds (204), as a delete of an absent key does.
 */
export function deletesCurrent(versionId: string | null): boolean {
  const kind = versionIdKind(versionId);
  if (kind === 'malformed') throw invalid(versionId!, 'versionId');
  return kind !== 'unknown';
}

/**
 * One `<Object>` of DeleteObjects: whether to delete the current object, or the error entry it answers (MinIO
 * answers a malformed id there with NoSuchVersion, not InvalidArgument).
 */
export function deleteEntryVersion(versionId: string | undefined): { deletes: boolean } | { error: S3Error } {
  const kind = versionIdKind(versionId);
  if (kind === 'malformed') return { error: new S3Error('NoSuchVersion') };
  return { deletes: kind !== 'unknown' };
}

/**
 * x-amz-copy-source `bucket/key?versionId=...`: opens the source through `open`. Only the null version exists: any
 * other id (malformed too, as MinIO answers) is NoSuchVersion, and so is an absent key named with `null`.
 */
export async function openCopySourceVersion<T>(copySource: string, key: string, open: () => Promise<T>): Promise<T> {
  const q = copySource.indexOf('?');
  const versionId = q < 0 ? null : new URLSearchParams(copySource.slice(q + 1)).get('versionId');
  const kind = versionIdKind(versionId);
  if (kind === 'none') return open();
  if (kind === 'null') return readNullVersion(key, open);
  throw noSuchVersion(key, versionId!);
}

/**
 * ListObjectVersions' version-id-marker, checked as S3 does (after max-keys, before encoding-type; MinIO checks
 * none of it). A valid one always means "after key-marker" here: the key's only version is the null one, which
 * either is the marker or, for an id that names no version, leaves nothing of that key to list.
 */
export function checkVersionIdMarker(keyMarker: string | null, versionIdMarker: string | null): void {
  if (versionIdMarker === null) return;
  if (!keyMarker) {
    throw new S3Error('InvalidArgument', 'A version-id marker cannot be specified without a key marker.', {
      ArgumentName: 'version-id-marker', ArgumentValue: versionIdMarker,
    });
  }
  if (versionIdMarker === '') {
    throw new S3Error('InvalidArgument', 'A version-id marker cannot be empty.', { ArgumentName: 'version-id-marker', ArgumentValue: '' });
  }
  if (versionIdKind(versionIdMarker) === 'malformed') throw invalid(versionIdMarker, 'version-id-marker');
}

/*
 * On a backend that keeps versions (bucket versioning, S3 backend) the ids clients see are the backend's: a request
 * naming one is passed on, after the same shape check, and the backend answers for it (NoSuchVersion, a delete
 * marker's MethodNotAllowed). The answers above remain those of a bucket that never had versioning enabled.
 */

/** GET/HEAD/DELETE `?versionId=` on a backend that keeps versions: the id to pass on, undefined for the current object. */
export function backendVersionId(versionId: string | null | undefined, argument = 'versionId'): string | undefined {
  const kind = versionIdKind(versionId);
  if (kind === 'none') return undefined;
  if (kind === 'malformed') throw invalid(versionId!, argument);
  return versionId!;
}

/** The versionId of x-amz-copy-source, on a backend that keeps versions; a malformed one is NoSuchVersion (as above). */
export function copySourceVersionId(copySource: string, key: string): string | undefined {
  const q = copySource.indexOf('?');
  const versionId = q < 0 ? null : new URLSearchParams(copySource.slice(q + 1)).get('versionId');
  const kind = versionIdKind(versionId);
  if (kind === 'none') return undefined;
  if (kind === 'malformed') throw noSuchVersion(key, versionId!);
  return versionId!;
}

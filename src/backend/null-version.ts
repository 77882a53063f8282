import { isS3Error, S3Error } from '../errors.ts';
import { unquoteEtag } from '../s3/etags.ts';
import type { ObjectInfo } from './types.ts';

/**
 * versionId=null where a store does not take it as S3 does. On S3 and MinIO an object written without versioning
 * is the version `null`, and tools that empty or copy by version name it (Terraform, `mc rb --force`, boto3's
 * object_versions). versitygw v1.8.0 refuses every version id on GET, HEAD and CopySource with 400 InvalidArgument
 * when it runs without --versioning-dir, and with one answers HEAD ?versionId=null 404 and CopySource
 * `?versionId=null` 400 while GET finds the object (test/server/versions-versitygw.test.ts). Such an answer is
 * taken as "ask for the current object": it is the null version when it carries no version id, or `null`.
 */
export const NULL_VERSION = 'null';

/** An answer to a call naming versionId=null that is worth asking again without it. */
export function refusedNull(versionId: string | undefined, status: number, head = false): boolean {
  return versionId === NULL_VERSION && (status === 400 || (head && status === 404));
}

const isNull = (info: ObjectInfo) => info.versionId === undefined || info.versionId === NULL_VERSION;
const noSuchVersion = (key: string, cause?: unknown) => new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: NULL_VERSION }, { cause });

/** HEAD: the current object when it is the null version, else none. */
export function nullVersionOf(current: ObjectInfo | null): ObjectInfo | null {
  return current && isNull(current) ? current : null;
}

/** GET: the current object read when it is the null version; NoSuchVersion otherwise (an absent key too). */
export async function readNullVersion<T extends { body: { destroy(): void }; info: ObjectInfo }>(key: string, read: () => Promise<T>): Promise<T> {
  let got: T;
  try {
    got = await read();
  } catch (e) {
    if (isS3Error(e, 'NoSuchKey')) throw noSuchVersion(key, e);
    throw e;
  }
  if (isNull(got.info)) return got;
  got.body.destroy();
  throw noSuchVersion(key);
}

/**
 * CopySource `?versionId=null`: a copy of the current object, conditional on the ETag it had when it was seen to be
 * the null version (and on the caller's own If-Match), so a version written in between is not copied instead.
 */
export async function copyNullVersion<T>(
  key: string,
  ifMatch: string | undefined,
  head: () => Promise<ObjectInfo | null>,
  copy: (ifMatch: string) => Promise<T>,
): Promise<T> {
  const current = nullVersionOf(await head());
  if (!current) throw noSuchVersion(key);
  if (ifMatch !== undefined && unquoteEtag(ifMatch) !== current.etag) throw new S3Error('PreconditionFailed', undefined, { Key: key });
  return copy(current.etag);
}

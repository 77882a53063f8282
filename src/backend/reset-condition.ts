import { S3Error } from '../errors.ts';
import { unquoteEtag } from '../s3/etags.ts';
import { bodyNotSent } from './s3-fast.ts';
import type { ObjectInfo, PutOptions } from './types.ts';

/** What judgeAfterReset may ask the store, each only when it matters. */
export interface ResetProbes {
  bucketExists(): Promise<boolean>;
  /** The object at the key (PutObject with a condition). */
  head?(): Promise<ObjectInfo | null>;
  /** The multipart upload is still open (UploadPart). */
  uploadExists?(): Promise<boolean>;
}

/**
 * What a PUT or UploadPart whose connection the store broke before the body was sent should answer. versitygw
 * (v1.8.0) refuses such a request before it reads the body (a failed If-Match / If-None-Match, a missing bucket or
 * upload) and closes the connection: a client still sending sees a reset or a broken pipe, and the answer is lost on
 * the way (test/backend/contract.ts, "a streamed body ... is held to the condition"; MinIO, which honours
 * `Expect: 100-continue`, answers before the body). Nothing was committed (bodyNotSent), so the refusal is found
 * again by asking: NoSuchBucket, NoSuchUpload, then the condition against the object now (PreconditionFailed, or
 * NoSuchKey for If-Match on a missing key, as S3 answers). Otherwise, or when a probe fails, the error as it was.
 */
export async function judgeAfterReset(e: unknown, key: string, opts: PutOptions | undefined, probes: ResetProbes): Promise<unknown> {
  if (!bodyNotSent(e)) return e;
  const refused = (code: 'PreconditionFailed' | 'NoSuchKey' | 'NoSuchBucket' | 'NoSuchUpload') => new S3Error(code, undefined, { Key: key }, { cause: e });
  try {
    if (!(await probes.bucketExists())) return refused('NoSuchBucket');
    if (probes.uploadExists && !(await probes.uploadExists())) return refused('NoSuchUpload');
    if (!opts || !probes.head || (opts.ifMatch === undefined && opts.ifNoneMatch === undefined)) return e;
    const current = await probes.head();
    if (opts.ifNoneMatch === '*' && current !== null) return refused('PreconditionFailed');
    if (opts.ifMatch !== undefined) {
      if (current === null) return refused('NoSuchKey');
      if (unquoteEtag(opts.ifMatch) !== current.etag) return refused('PreconditionFailed');
    }
  } catch {
    // the store cannot say now either: the network error stands
  }
  return e;
}

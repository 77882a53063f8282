import { S3Error } from '../errors.ts';
import { unquoteEtag } from '../s3/etags.ts';
import { bodyNotSent } from './s3-fast.ts';
import type { ObjectInfo, PutOptions } from './types.ts';

/**
 * What a conditional streamed PUT whose connection broke before its body was sent should answer. versitygw (v1.8.0)
 * checks If-Match / If-None-Match before it reads the body and, refusing, closes the connection: a client still
 * sending sees a reset, and the 412 is lost on the way (test/backend/contract.ts, "a streamed body ... is held to
 * the condition"). Nothing was committed (bodyNotSent), so the condition is judged against the object now, as the
 * store judged it: PreconditionFailed (or NoSuchKey for If-Match on a missing key, as S3 answers) when it does not
 * hold, else the network error as it was.
 */
export async function judgeAfterReset(e: unknown, key: string, opts: PutOptions, head: () => Promise<ObjectInfo | null>): Promise<unknown> {
  if ((opts.ifMatch === undefined && opts.ifNoneMatch === undefined) || !bodyNotSent(e)) return e;
  let current: ObjectInfo | null;
  try {
    current = await head();
  } catch {
    return e;
  }
  const refused = (code: 'PreconditionFailed' | 'NoSuchKey') => new S3Error(code, undefined, { Key: key }, { cause: e });
  if (opts.ifNoneMatch === '*' && current !== null) return refused('PreconditionFailed');
  if (opts.ifMatch !== undefined) {
    if (current === null) return refused('NoSuchKey');
    if (unquoteEtag(opts.ifMatch) !== current.etag) return refused('PreconditionFailed');
  }
  return e;
}

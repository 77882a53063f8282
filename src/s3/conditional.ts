/**
 * Conditional request evaluation (RFC 7232 with S3's precedence rules).
 *
 * GET/HEAD: If-Match / If-Unmodified-Since failures -> 412 PreconditionFailed (checked first);
 * If-None-Match / If-Modified-Since -> 304 NotModified. When If-Match is present, If-Unmodified-Since is
 * ignored; when If-None-Match is present, If-Modified-Since is ignored.
 * Copy source (x-amz-copy-source-if-*): the same precedence, every failure is 412.
 */
import { S3Error } from '../errors.ts';
import { getHeader, type HeaderMap } from './sigv4.ts';

export interface ObjectState {
  /** ETag, quoted or not. */
  etag: string;
  lastModified: Date;
}

export const unquoteEtag = (e: string): string => {
  let t = e.trim();
  if (t.startsWith('W/')) t = t.slice(2);
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) t = t.slice(1, -1);
  return t;
};

/** Does an If-Match / If-None-Match header value (list, `*`, quoted or not) match the ETag? */
export function etagMatches(headerValue: string, etag: string): boolean {
  const want = unquoteEtag(etag);
  for (const item of headerValue.split(',')) {
    const t = item.trim();
    if (t === '') continue;
    if (t === '*') return true;
    if (unquoteEtag(t) === want) return true;
  }
  return false;
}

/** HTTP date -> ms, undefined if unparsable (such headers are ignored). */
function httpDate(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v.trim());
  return Number.isNaN(t) ? undefined : t;
}

/** Last-Modified at the one-second resolution of HTTP dates. */
const seconds = (d: Date): number => Math.floor(d.getTime() / 1000) * 1000;

interface CondHeaders {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
}

type Outcome = 'ok' | 'precondition-failed' | 'not-modified';

function evaluate(h: CondHeaders, obj: ObjectState, now: Date): Outcome {
  const lm = seconds(obj.lastModified);
  if (h.ifMatch !== undefined) {
    if (!etagMatches(h.ifMatch, obj.etag)) return 'precondition-failed';
  } else {
    const ius = httpDate(h.ifUnmodifiedSince);
    if (ius !== undefined && lm > ius) return 'precondition-failed';
  }
  if (h.ifNoneMatch !== undefined) {
    if (etagMatches(h.ifNoneMatch, obj.etag)) return 'not-modified';
  } else {
    const ims = httpDate(h.ifModifiedSince);
    if (ims !== undefined && ims <= now.getTime() && lm <= ims) return 'not-modified';
  }
  return 'ok';
}

/** GET/HEAD preconditions. Throws PreconditionFailed (412) or NotModified (304; caller sends ETag/Last-Modified). */
export function checkGetConditions(headers: HeaderMap, obj: ObjectState, now: Date = new Date()): void {
  const r = evaluate({
    ifMatch: getHeader(headers, 'if-match'),
    ifNoneMatch: getHeader(headers, 'if-none-match'),
    ifModifiedSince: getHeader(headers, 'if-modified-since'),
    ifUnmodifiedSince: getHeader(headers, 'if-unmodified-since'),
  }, obj, now);
  if (r === 'precondition-failed') throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Match' });
  if (r === 'not-modified') throw new S3Error('NotModified');
}

/** CopyObject / UploadPartCopy source preconditions (x-amz-copy-source-if-*). Every failure is 412. */
export function checkCopySourceConditions(headers: HeaderMap, source: ObjectState, now: Date = new Date()): void {
  const r = evaluate({
    ifMatch: getHeader(headers, 'x-amz-copy-source-if-match'),
    ifNoneMatch: getHeader(headers, 'x-amz-copy-source-if-none-match'),
    ifModifiedSince: getHeader(headers, 'x-amz-copy-source-if-modified-since'),
    ifUnmodifiedSince: getHeader(headers, 'x-amz-copy-source-if-unmodified-since'),
  }, source, now);
  if (r !== 'ok') throw new S3Error('PreconditionFailed', undefined, { Condition: 'x-amz-copy-source-If-Match' });
}

/**
 * Conditional writes (PutObject / CompleteMultipartUpload): `If-None-Match: *` fails with 412 when the key exists;
 * `If-None-Match: <etag>[, <etag>...]` with 412 when the current object's ETag is one of them (a missing key or
 * another ETag writes: MinIO's reading; AWS S3 takes `*` only); `If-Match` fails with 412 on a different ETag and
 * with NoSuchKey when the key does not exist.
 */
export function checkWriteConditions(headers: HeaderMap, existing: ObjectState | undefined): void {
  const inm = getHeader(headers, 'if-none-match');
  const im = getHeader(headers, 'if-match');
  if (inm !== undefined && existing && etagMatches(inm, existing.etag)) {
    throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-None-Match' });
  }
  if (im !== undefined) {
    if (!existing) throw new S3Error('NoSuchKey');
    if (!etagMatches(im, existing.etag)) throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Match' });
  }
}

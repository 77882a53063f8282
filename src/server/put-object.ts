/**
 * PutObject: the three ways a body goes in — native (a large body with nothing to verify, sealed by the data plane),
 * in one piece (a small plain payload, read and verified whole), or through the payload streams — and its answer.
 */
import type { HeaderChecksums, HeaderMeta } from '../engine/index.ts';
import type { Gateway, WholeUpload } from './gateway.ts';
import type { S3Request } from './request.ts';
import { checkBucketName, checkKey } from './request.ts';
import type { PutCondition } from '../store/index.ts';
import { quoteEtag } from '../s3/etags.ts';
import { nativeUploadOf, uploadChecksums, withNativeUpload } from './native-response.ts';
import { checksumHeaders, metaFromRequest, setSse, writeCondition } from './objects.ts';

export async function putObject(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  checkKey(r.key);
  // A large body whose checks the pump can make (none, a signed SHA-256, a Content-MD5, a declared CRC32, aws-chunks
  // unsigned with a CRC32 trailer or signed) may be sealed by the
  // native data plane (src/store/native-write.ts): its body is left unread until then (g.payload would start reading it).
  const upload = nativeUploadOf(r, g.authOf(r));
  const native = upload !== null && g.store.nativePutApplies(upload.size) ? upload : null;
  if (native !== null) {
    const meta = metaFromRequest(r);
    const cond = await writeCondition(g, r);
    const settle = (crc32: number | undefined) => uploadChecksums(native, crc32);
    const done = await withNativeUpload(r, native, (src) => g.store.putNative(r.bucket, r.key, src, native.size, meta, cond, native.checksums, settle));
    if (done) return answerPut(r, done.value.etag, done.value.versionId, settle(done.value.crc32));
    return putNode(g, r, meta, cond);
  }
  const whole = g.wholePayload(r, SMALL_PUT_MAX);
  if (whole) {
    try {
      // the body is read while the condition is looked at, as payload()'s stream would be
      const body = whole.read();
      // Silent on purpose: the await below observes this promise; only when the condition or the metadata is refused
      // first is it never awaited, and then that refusal is the request's answer (the gateway drains the body).
      body.catch(() => {});
      const meta = metaFromRequest(r);
      const cond = await writeCondition(g, r);
      return await putBytes(g, r, await body, meta, cond);
    } finally {
      whole.release();
    }
  }
  const streamed = g.payload(r);
  const meta = metaFromRequest(r);
  const cond = await writeCondition(g, r);
  return putNode(g, r, meta, cond, streamed);
}

/**
 * PutObject bodies up to this size are read and verified in one piece (Gateway.wholePayload), not through the
 * decoder and checksum streams; bigger ones stream (the store still reads those up to 8 MiB whole).
 */
const SMALL_PUT_MAX = 256 * 1024;

/** PutObject of a body read whole (Gateway.wholePayload): the store's put without a stream, the same answer. */
async function putBytes(g: Gateway, r: S3Request, body: WholeUpload, meta: HeaderMeta, cond: PutCondition): Promise<void> {
  const { etag, versionId } = await g.store.putBytes(r.bucket, r.key, body.plain, meta, body.checksums, cond);
  r.bytesIn = body.plain.length;
  answerPut(r, etag, versionId, body.checksums);
}

/** PutObject's 200: the ETag, the version, SSE and the checksums the body was verified against. */
function answerPut(r: S3Request, etag: string, versionId: string | undefined, checksums: HeaderChecksums): void {
  r.res.statusCode = 200;
  r.res.setHeader('ETag', quoteEtag(etag));
  if (versionId !== undefined) r.res.setHeader('x-amz-version-id', versionId);
  setSse(r);
  for (const [k, v] of Object.entries(checksumHeaders(checksums))) r.res.setHeader(k, v);
  r.res.setHeader('Content-Length', 0);
  r.res.end();
}

async function putNode(g: Gateway, r: S3Request, meta: HeaderMeta, cond: PutCondition, upload = g.payload(r)): Promise<void> {
  // A Content-MD5 without a trailer is the plaintext MD5 before the body: the ETag is sealed with the first write.
  const contentMd5 = r.header('content-md5');
  const known = upload.known && contentMd5 ? { ...upload.known, md5: Buffer.from(contentMd5.trim(), 'base64').toString('hex') } : upload.known;
  const { etag, versionId } = await g.store.put(
    r.bucket,
    r.key,
    upload.body,
    upload.size,
    meta,
    upload.finish,
    cond,
    known,
  );
  r.bytesIn = upload.size;
  answerPut(r, etag, versionId, upload.result());
}

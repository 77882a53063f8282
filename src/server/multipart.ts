import { S3Error } from '../errors.ts';
import type { HeaderChecksums, HeaderFields } from '../engine/index.ts';
import * as xml from '../s3/xml.ts';
import { combineFullObjectCrc, compositeChecksum, supportsFullObject } from '../s3/checksum.ts';
import type { Gateway } from './gateway.ts';
import { metaFromRequest, openCopySource, SSE_HEADERS, writeCondition } from './objects.ts';
import type { S3Request } from './request.ts';
import { checkBucketName, checkKey } from './request.ts';
import { sendXml } from './respond.ts';
import { consuming } from '../store/index.ts';
import { quoteEtag } from '../s3/etags.ts';
import { nativeUploadOf, uploadChecksums, withNativeUpload } from './native-response.ts';

const ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;

function partNumberOf(r: S3Request): number {
  const v = r.query.get('partNumber') ?? '';
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 10000) throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.');
  return n;
}

function uploadIdOf(g: Gateway, r: S3Request): string {
  const id = r.query.get('uploadId');
  if (!id) throw g.mpu.diagnose(new S3Error('NoSuchUpload'), { reason: 'the request names no upload id', uploadId: '' });
  return id;
}

/**
 * A refused multipart request (InvalidPart, NoSuchUpload, an integrity refusal) says at warn which lookup failed —
 * part number, key, upload id and what the backend answered — so that "the gateway's part record was missing" and
 * "the backend's CompleteMultipartUpload refused" are told apart from the log alone. The client gets S3's answer
 * only. Never a body, never key material: ETags and upload ids are the backend's names.
 */
function logRefusal(g: Gateway, r: S3Request, e: unknown): void {
  const log = g.opts.report?.log;
  if (!log || !g.mpu.isDiagnosed(e)) return;
  const d = g.mpu.diagnosisOf(e);
  const partNumber = d?.partNumber ?? (Number(r.query.get('partNumber')) || undefined);
  const reason = d?.reason ?? (e.code === 'IntegrityError' ? 'stored bytes failed their integrity check' : 'refused with no lookup recorded');
  log.warn(
    {
      reqId: r.id,
      op: r.op,
      code: e.code,
      bucket: r.bucket,
      key: r.key,
      uploadId: d?.uploadId || r.query.get('uploadId') || undefined,
      partNumber,
      etag: d?.etag,
      backend: d?.backend,
      recordedEtags: d?.recordedEtags,
      named: d?.named,
      reason,
    },
    `multipart request refused (${e.code}): ${reason}`,
  );
}

type Handler = (g: Gateway, r: S3Request) => Promise<void>;
const logsRefusals = (run: Handler): Handler => async (g, r) => {
  try {
    await run(g, r);
  } catch (e) {
    logRefusal(g, r, e);
    throw e;
  }
};

export async function createMultipartUpload(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  checkKey(r.key);
  if (!(await g.backend.bucketExists(r.bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: r.bucket });
  const alg = r.header('x-amz-checksum-algorithm')?.toUpperCase();
  if (alg !== undefined && !(ALGORITHMS as readonly string[]).includes(alg)) throw new S3Error('InvalidRequest', 'Checksum algorithm not supported.');
  const type = r.header('x-amz-checksum-type')?.toUpperCase();
  if (type !== undefined && type !== 'COMPOSITE' && type !== 'FULL_OBJECT') throw new S3Error('InvalidRequest', 'Invalid checksum type.');
  if (type === 'FULL_OBJECT' && (alg === 'SHA1' || alg === 'SHA256')) throw new S3Error('InvalidRequest', 'The FULL_OBJECT checksum type is not supported for this algorithm.');
  if (type === 'COMPOSITE' && alg === 'CRC64NVME') throw new S3Error('InvalidRequest', 'The COMPOSITE checksum type is not supported for CRC64NVME.');
  const checksums: HeaderChecksums = alg
    ? { algorithm: alg as HeaderChecksums['algorithm'], type: (type) ?? (alg === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE') }
    : {};
  const uploadId = await g.mpu.create(r.bucket, r.key, metaFromRequest(r), checksums);
  const headers: Record<string, string> = { ...SSE_HEADERS };
  if (checksums.algorithm) {
    headers['x-amz-checksum-algorithm'] = checksums.algorithm;
    headers['x-amz-checksum-type'] = checksums.type!;
  }
  sendXml(r.res, 200, xml.initiateMultipartUploadResult(r.bucket, r.key, uploadId), headers);
}

export const uploadPart = logsRefusals(async (g, r) => {
  checkBucketName(r.bucket);
  const partNumber = partNumberOf(r);
  const uploadId = uploadIdOf(g, r);
  // A part with nothing to verify may be sealed by the native data plane (as PutObject's, put-object.ts): the
  // upload's record is read first, so a refusal comes before the client's socket is taken.
  const native = nativeUploadOf(r, g.authOf(r));
  if (native !== null && g.mpu.nativePartApplies(native.size)) {
    const init = await g.mpu.init(r.bucket, r.key, uploadId);
    const settle = (crc32: number | undefined) => uploadChecksums(native, crc32);
    const done = await withNativeUpload(r, native, (src) => g.mpu.uploadPartNative(r.bucket, r.key, uploadId, partNumber, init, native.size, src, settle));
    if (done) return answerPart(r, done.value.etag, done.value.checksums);
  }
  const upload = g.payload(r);
  const { etag } = await g.mpu.uploadPart(r.bucket, r.key, uploadId, partNumber, upload.body, upload.size, upload.finish);
  r.bytesIn = upload.size;
  answerPart(r, etag, upload.result());
});

/** UploadPart's 200: the ETag, SSE and the checksum the body was verified against (none from the data plane). */
function answerPart(r: S3Request, etag: string, c: HeaderChecksums): void {
  r.res.statusCode = 200;
  r.res.setHeader('ETag', quoteEtag(etag));
  for (const [k, v] of Object.entries(SSE_HEADERS)) r.res.setHeader(k, v);
  if (c.algorithm && c.value) r.res.setHeader(`x-amz-checksum-${c.algorithm.toLowerCase()}`, c.value);
  r.res.setHeader('Content-Length', 0);
  r.res.end();
}

export const uploadPartCopy = logsRefusals(async (g, r) => {
  checkBucketName(r.bucket);
  const partNumber = partNumberOf(r);
  const uploadId = uploadIdOf(g, r);
  await g.mpu.init(r.bucket, r.key, uploadId);
  const src = await openCopySource(g, r);
  let start = 0;
  let end = src.size - 1;
  const rangeHeader = r.header('x-amz-copy-source-range');
  if (rangeHeader !== undefined) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(rangeHeader);
    if (!m) throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last.');
    start = Number(m[1]);
    end = Number(m[2]);
    if (start > end || end >= src.size) throw new S3Error('InvalidRange');
  }
  const size = src.size === 0 ? 0 : end - start + 1;
  const plain = await g.store.read(src, start, end);
  const { etag } = await consuming(plain, (s) => g.mpu.uploadPart(r.bucket, r.key, uploadId, partNumber, s, size, () => ({})));
  const info = await g.backend.headObject(src.bucket, src.key);
  sendXml(r.res, 200, xml.copyPartResult(etag, info?.lastModified ?? new Date()), SSE_HEADERS);
});

export const completeMultipartUpload = logsRefusals(async (g, r) => {
  checkBucketName(r.bucket);
  const uploadId = uploadIdOf(g, r);
  const body = await g.readSmallBody(r, 1024 * 1024);
  const requested = xml.parseCompleteMultipartUpload(body);
  if (requested.length === 0) throw new S3Error('MalformedXML');
  const cond = await writeCondition(g, r);
  const combine = async (init: HeaderFields, parts: HeaderFields[]): Promise<HeaderChecksums> => {
    // The client's per-part checksums in the body must be the ones we computed when the parts arrived.
    requested.forEach((p, i) => {
      const ours = parts[i].checksums;
      for (const alg of ALGORITHMS) {
        const theirs = p.checksums?.[alg];
        if (theirs !== undefined && (ours.algorithm !== alg || ours.value !== theirs)) {
          throw g.mpu.diagnose(new S3Error('InvalidPart', `The checksum of part ${p.partNumber} does not match.`), {
            reason: `the ${alg} the request names for the part differs from the one computed when the part arrived`,
            uploadId,
            partNumber: p.partNumber,
            etag: p.etag,
          });
        }
      }
    });
    const alg = init.checksums.algorithm;
    if (!alg) return {};
    if (parts.some((h) => h.checksums.algorithm !== alg || !h.checksums.value)) {
      return {};
    }
    const type = init.checksums.type ?? 'COMPOSITE';
    const values = parts.map((h) => h.checksums.value!);
    if (type === 'FULL_OBJECT' && supportsFullObject(alg)) {
      const value = combineFullObjectCrc(alg, parts.map((h) => ({ checksum: h.checksums.value!, length: h.parts[0].plaintextSize })));
      return { algorithm: alg, type, value, parts: values };
    }
    return { algorithm: alg, type: 'COMPOSITE', value: await compositeChecksum(alg, values), parts: values };
  };
  const done = await g.mpu.complete(r.bucket, r.key, uploadId, requested, combine, cond);
  const { etag, header, needsReseal } = done;
  let finalEtag = etag;
  let versionId = done.versionId;
  if (needsReseal) ({ etag: finalEtag, versionId } = await g.store.reseal(r.bucket, r.key));
  const c = header.checksums;
  sendXml(
    r.res,
    200,
    xml.completeMultipartUploadResult({
      location: `/${r.bucket}/${r.key}`,
      bucket: r.bucket,
      key: r.key,
      etag: finalEtag,
      checksums: c.algorithm && c.value ? { [c.algorithm]: c.value } : undefined,
      checksumType: c.algorithm && c.value ? c.type : undefined,
    }),
    // a bucket that keeps versions: the id of the version this upload became (as S3 answers it)
    versionId ? { ...SSE_HEADERS, 'x-amz-version-id': versionId } : SSE_HEADERS,
  );
});

export const abortMultipartUpload = logsRefusals(async (g, r) => {
  checkBucketName(r.bucket);
  await g.mpu.abort(r.bucket, r.key, uploadIdOf(g, r));
  r.res.statusCode = 204;
  r.res.end();
});

export const listParts = logsRefusals(async (g, r) => {
  checkBucketName(r.bucket);
  const uploadId = uploadIdOf(g, r);
  const init = await g.mpu.init(r.bucket, r.key, uploadId);
  const marker = Number(r.query.get('part-number-marker') ?? '0') || 0;
  const maxParts = Math.min(Number(r.query.get('max-parts') ?? '1000') || 1000, 1000);
  const all = (await g.mpu.listParts(r.bucket, r.key, uploadId)).filter((p) => p.partNumber > marker);
  const page = all.slice(0, maxParts);
  sendXml(
    r.res,
    200,
    xml.listPartsResult({
      bucket: r.bucket,
      key: r.key,
      uploadId,
      partNumberMarker: marker,
      nextPartNumberMarker: page.length ? page[page.length - 1].partNumber : marker,
      maxParts,
      isTruncated: all.length > page.length,
      checksumAlgorithm: init.checksums.algorithm,
      checksumType: init.checksums.type,
      parts: page.map((p) => ({
        partNumber: p.partNumber,
        etag: quoteEtag(p.etag),
        size: p.plaintextSize,
        lastModified: p.lastModified,
        checksums: p.checksums.algorithm && p.checksums.value ? { [p.checksums.algorithm]: p.checksums.value } : undefined,
      })),
    }),
  );
});

export async function listMultipartUploads(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  if (!(await g.backend.bucketExists(r.bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: r.bucket });
  const prefix = r.query.get('prefix') ?? '';
  const uploads = (await g.backend.listMultipartUploads(r.bucket))
    .filter((u) => u.key.startsWith(prefix))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated.getTime() - b.initiated.getTime()));
  sendXml(
    r.res,
    200,
    xml.listMultipartUploadsResult({
      bucket: r.bucket,
      prefix,
      maxUploads: 1000,
      isTruncated: false,
      uploads: uploads.map((u) => ({ key: u.key, uploadId: u.uploadId, initiated: u.initiated })),
      commonPrefixes: [],
    }),
  );
}

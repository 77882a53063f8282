import type { Readable } from 'node:stream';
import { isS3Error, S3Error } from '../errors.ts';
import type { HeaderChecksums, HeaderMeta } from '../engine/index.ts';
import { parseRange } from '../s3/range.ts';
import { checkCopySourceConditions, checkGetConditions, checkWriteConditions } from '../s3/conditional.ts';
import * as xml from '../s3/xml.ts';
import type { Gateway } from './gateway.ts';
import type { S3Request } from './request.ts';
import { checkBucketName, checkKey } from './request.ts';
import { sendXml } from './respond.ts';
import { consuming, knownOf, type PutCondition, type StoredObject } from '../store/index.ts';
import { quoteEtag } from '../s3/etags.ts';
import { backendVersionId, checkReadVersion, copySourceVersionId, deletesCurrent, openCopySourceVersion } from '../s3/version-id.ts';
import { keepsVersions } from '../store/versions.ts';
import { nativeClient, sendNative } from './native-response.ts';

const MAX_META_BYTES = 2048;

/** User metadata and the stored standard headers from a PUT / CreateMultipartUpload / COPY REPLACE request. */
export function metaFromRequest(r: S3Request): HeaderMeta {
  const user: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(r.req.headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const v = Array.isArray(value) ? value.join(',') : value;
    const k = name.slice('x-amz-meta-'.length);
    bytes += k.length + Buffer.byteLength(v);
    user[k] = v;
  }
  if (bytes > MAX_META_BYTES) throw new S3Error('MetadataTooLarge');
  const meta: HeaderMeta = { user };
  const std: [keyof HeaderMeta, string][] = [
    ['contentType', 'content-type'],
    ['contentEncoding', 'content-encoding'],
    ['contentDisposition', 'content-disposition'],
    ['cacheControl', 'cache-control'],
    ['contentLanguage', 'content-language'],
    ['expires', 'expires'],
  ];
  for (const [field, h] of std) {
    let v = r.header(h);
    if (field === 'contentEncoding' && v) {
      // aws-chunked is a transfer detail of this request, not a property of the object.
      v = v.split(',').map((s) => s.trim()).filter((s) => s && s !== 'aws-chunked').join(',') || undefined;
    }
    if (v !== undefined) (meta as unknown as Record<string, string>)[field] = v;
  }
  return meta;
}

export function checksumHeaders(c: HeaderChecksums): Record<string, string> {
  if (!c.algorithm || !c.value) return {};
  const h: Record<string, string> = { [`x-amz-checksum-${c.algorithm.toLowerCase()}`]: c.value };
  if (c.type) h['x-amz-checksum-type'] = c.type;
  return h;
}


/**
 * Every object is encrypted under keys from a key-management service: say so the way AWS SSE-KMS does. A
 * single-PUT object's ETag is the MD5 of its plaintext all the same (src/format/etag.ts); a multipart one's is
 * not, as on S3.
 */
export const SSE_HEADERS: Record<string, string> = { 'x-amz-server-side-encryption': 'aws:kms' };
export const setSse = (r: S3Request) => {
  for (const [k, v] of Object.entries(SSE_HEADERS)) r.res.setHeader(k, v);
};

/**
 * If-None-Match and If-Match of a write (PutObject, CompleteMultipartUpload) as a condition for the backend's
 * commit, so that it is atomic with it. `If-None-Match: *` asks for existence only: a HEAD, then the backend's own
 * If-None-Match: *. An ETag to compare (If-Match, or If-None-Match naming ETags, as MinIO takes it) names the ETag
 * clients see: checked here against the current object, whose backend ETag then goes with the commit — or, when
 * there was none, If-None-Match: * — so a write that lands between the check and the commit makes this one fail with
 * 412 rather than overwrite a version the condition was never checked against.
 */
export async function writeCondition(g: Gateway, r: S3Request): Promise<PutCondition> {
  const ifNoneMatch = r.header('if-none-match');
  const ifMatch = r.header('if-match');
  if (ifNoneMatch === undefined && ifMatch === undefined) return {};
  if (ifMatch === undefined && ifNoneMatch?.trim() === '*') {
    // Checked here too: an early answer before the body, and a guard on backends that ignore the condition.
    if (await g.backend.headObject(r.bucket, r.key)) throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-None-Match' });
    return { ifNoneMatch: '*' };
  }
  const current = await g.store.stat(r.bucket, r.key).catch((e) => {
    if (isS3Error(e, 'NoSuchKey')) return undefined;
    throw e;
  });
  checkWriteConditions(r.req.headers, current && { etag: current.etag, lastModified: current.lastModified });
  return current ? { ifMatch: current.info.etag } : { ifNoneMatch: '*' };
}

const RESPONSE_OVERRIDES: readonly [string, string][] = [
  ['response-content-type', 'Content-Type'],
  ['response-content-language', 'Content-Language'],
  ['response-expires', 'Expires'],
  ['response-cache-control', 'Cache-Control'],
  ['response-content-disposition', 'Content-Disposition'],
  ['response-content-encoding', 'Content-Encoding'],
];
/** Control characters (CR, LF, NUL, ...) have no place in a header value: a request carrying one is refused. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_RE = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * The response-* query overrides of a GET/HEAD, checked before anything is read: a CR/LF would split the response
 * (S3: 400 InvalidArgument). Other non-ASCII text goes out as its UTF-8 bytes (a UTF-8 file name in
 * Content-Disposition), as S3 sends it.
 */
function responseOverrides(r: S3Request): [string, string][] {
  const out: [string, string][] = [];
  for (const [q, name] of RESPONSE_OVERRIDES) {
    const v = r.query.get(q);
    if (v === null) continue;
    if (CONTROL_RE.test(v)) {
      throw new S3Error('InvalidArgument', `The value of ${q} contains a control character (CR, LF, NUL, ...), which a header cannot carry.`, { ArgumentName: q });
    }
    out.push([name, /^[\x20-\x7e\t]*$/.test(v) ? v : Buffer.from(v, 'utf8').toString('latin1')]);
  }
  return out;
}

function objectHeaders(obj: StoredObject, r: S3Request, withChecksum: boolean, overrides: [string, string][]): Record<string, string> {
  const m = obj.header.meta;
  const h: Record<string, string> = {
    ETag: quoteEtag(obj.etag),
    'Last-Modified': obj.lastModified.toUTCString(),
    'Accept-Ranges': 'bytes',
    'Content-Type': m.contentType ?? 'binary/octet-stream',
    ...SSE_HEADERS,
  };
  if (m.contentEncoding) h['Content-Encoding'] = m.contentEncoding;
  if (m.contentDisposition) h['Content-Disposition'] = m.contentDisposition;
  if (m.cacheControl) h['Cache-Control'] = m.cacheControl;
  if (m.contentLanguage) h['Content-Language'] = m.contentLanguage;
  if (m.expires) h['Expires'] = m.expires;
  for (const [k, v] of Object.entries(m.user)) h[`x-amz-meta-${k}`] = v;
  if (obj.info.versionId !== undefined) h['x-amz-version-id'] = obj.info.versionId;
  if (obj.header.parts.length > 1) h['x-amz-mp-parts-count'] = String(obj.header.parts.length);
  // Said on every response that serves a not-yet-migrated object as it is stored.
  if (obj.plaintext) h['x-lakecrypt-plaintext'] = 'true';
  if (withChecksum && r.header('x-amz-checksum-mode')?.toUpperCase() === 'ENABLED') {
    Object.assign(h, checksumHeaders(obj.header.checksums));
  }
  for (const [name, v] of overrides) h[name] = v;
  return h;
}

/** The plaintext range of one part (GET/HEAD ?partNumber=N), from the parts' plaintext sizes in order. */
function partRange(sizes: number[], partNumber: number): { start: number; end: number } {
  let start = 0;
  for (let i = 0; i < sizes.length; i++) {
    if (i + 1 === partNumber) return { start, end: start + sizes[i] - 1 };
    start += sizes[i];
  }
  throw new S3Error('InvalidPartNumber');
}

/** The partNumber query's N; InvalidArgument outside 1..10000. */
function partNumberOf(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 10000) throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000.');
  return n;
}

export async function getObject(g: Gateway, r: S3Request, headOnly: boolean): Promise<void> {
  checkBucketName(r.bucket);
  checkKey(r.key);
  const versionId = await readVersion(g, r);
  const overrides = responseOverrides(r);
  const partNumber = r.query.get('partNumber');
  if (!headOnly && partNumber === null && r.header('range') === undefined) return getWholeObject(g, r, overrides, versionId);
  if (!headOnly && versionId === undefined) {
    // One backend round trip when this key's layout was seen before (ObjectStore.openRange); anything it cannot
    // settle (a range that does not fit the remembered size, a bad part number) is left to the long way below.
    const fast = await g.store.openRange(r.bucket, r.key, (size, sizes) => {
      const range = partNumber !== null ? partRange(sizes, partNumberOf(partNumber)) : parseRange(r.header('range'), size);
      return range && range.end >= range.start ? range : null;
    });
    if (fast) {
      try {
        conditions(r, fast.obj);
      } catch (e) {
        fast.body.destroy();
        throw e;
      }
      return sendRange(g, r, fast.obj, fast, partNumber === null, overrides, fast.body);
    }
  }
  const obj = await g.store.stat(r.bucket, r.key, versionId);
  conditions(r, obj);
  let range: { start: number; end: number } | null;
  if (partNumber !== null) {
    const n = partNumberOf(partNumber);
    range = obj.size === 0 && n === 1 ? null : partRange(obj.header.parts.map((p) => p.plaintextSize), n);
  } else {
    range = parseRange(r.header('range'), obj.size);
  }
  return sendRange(g, r, obj, range, partNumber === null, overrides, headOnly ? null : undefined);
}

/**
 * Answer a GET/HEAD of `range` of `obj` (null: the whole object): headers, then the plaintext of the backend `body`
 * already opened for that range (openRange's), or of a ranged GET made now; HEAD (`body` null) sends none.
 */
async function sendRange(
  g: Gateway,
  r: S3Request,
  obj: StoredObject,
  range: { start: number; end: number } | null,
  noPartNumber: boolean,
  overrides: [string, string][],
  body?: Readable | null,
): Promise<void> {
  const headOnly = body === null;
  const headers = objectHeaders(obj, r, range === null && noPartNumber, overrides);
  const start = range?.start ?? 0;
  const end = range?.end ?? obj.size - 1;
  const length = obj.size === 0 ? 0 : end - start + 1;
  // Open the plaintext first (a stream, or the native data plane's pump when it applies: src/store/native-read.ts):
  // a revoked key or a changed object is answered with a clean S3 error.
  const client = headOnly ? null : nativeClient(r);
  const plain = headOnly
    ? null
    : body
      ? await g.store.openRangeBody(obj, body, start, end, client !== null)
      : await g.store.readRange(obj, start, end, client !== null);
  for (const [k, v] of Object.entries(headers)) r.res.setHeader(k, v);
  r.res.setHeader('Content-Length', length);
  if (range) r.res.setHeader('Content-Range', `bytes ${start}-${end}/${obj.size}`);
  r.res.statusCode = range ? 206 : 200;
  if (plain?.native && client) return sendNative(plain.native, r, client);
  if (!plain?.stream) {
    r.res.end();
    return;
  }
  await pipeToResponse(plain.stream, r);
}

/**
 * The version a GET/HEAD reads: undefined for the current object. A backend that keeps versions is asked for the
 * id named (its ids are the ones clients see); on one that does not, only the null version exists (version-id.ts).
 */
async function readVersion(g: Gateway, r: S3Request): Promise<string | undefined> {
  const versionId = r.query.get('versionId');
  if (keepsVersions(g.backend)) return backendVersionId(versionId);
  await checkReadVersion(versionId, r.key, () => g.store.stat(r.bucket, r.key));
  return undefined;
}

/** GET/HEAD preconditions; a 304 carries the object's ETag and Last-Modified, as S3's does. */
function conditions(r: S3Request, obj: StoredObject): void {
  try {
    checkGetConditions(r.req.headers, { etag: obj.etag, lastModified: obj.lastModified });
  } catch (e) {
    if (e instanceof S3Error && e.code === 'NotModified') {
      e.detail.ETag = quoteEtag(obj.etag);
      e.detail['Last-Modified'] = obj.lastModified.toUTCString();
    }
    throw e;
  }
}

/** GET without Range: one backend round trip (data + cached header) instead of HEAD then GET. */
async function getWholeObject(g: Gateway, r: S3Request, overrides: [string, string][], versionId?: string): Promise<void> {
  const { obj, open, openNative, openSmall, discard } = await g.store.openWhole(r.bucket, r.key, versionId);
  try {
    conditions(r, obj);
  } catch (e) {
    discard();
    throw e;
  }
  const head = () => {
    for (const [k, v] of Object.entries(objectHeaders(obj, r, true, overrides))) r.res.setHeader(k, v);
    r.res.setHeader('Content-Length', obj.size);
    r.res.statusCode = 200;
  };
  // A small object: read whole, checked whole, then answered in one write (no stream to set up).
  const whole = openSmall ? await openSmall() : null;
  if (whole) {
    head();
    r.bytesOut += whole.length;
    // write() then end(), not end(whole): Node 20's end(chunk) before the head went out writes the head's non-ASCII
    // bytes differently (a UTF-8 file name in a response-content-disposition came out as Latin-1: test/security/
    // s3-port.test.ts); both calls in one tick still leave in one write (the socket is corked until the next tick)
    r.res.write(whole);
    r.res.end();
    return;
  }
  // The native data plane when it applies (src/store/native-read.ts): null leaves the body to the Node path.
  const client = openNative ? nativeClient(r) : null;
  const native = client && openNative ? await openNative() : null;
  if (native && client) {
    head();
    return sendNative(native, r, client);
  }
  const stream = await open();
  head();
  await pipeToResponse(stream, r);
}

/**
 * Stream plaintext to the client. A failure after the status line aborts the socket (sendError does that),
 * so a client never takes a truncated or unauthenticated body for a whole one.
 */
export function pipeToResponse(stream: Readable, r: S3Request): Promise<void> {
  return new Promise((resolve, reject) => {
    let failed = false;
    stream.on('data', (chunk: Buffer) => {
      r.bytesOut += chunk.length;
      if (!r.res.write(chunk)) {
        stream.pause();
        r.res.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => {
      r.res.end(() => resolve());
    });
    stream.on('error', (e) => {
      failed = true;
      reject(e);
    });
    r.res.on('close', () => {
      if (!r.res.writableFinished && !failed) {
        stream.destroy();
        resolve();
      }
    });
  });
}

export async function deleteObject(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  checkKey(r.key);
  if (!(await g.backend.bucketExists(r.bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: r.bucket });
  const versionId = r.query.get('versionId');
  if (keepsVersions(g.backend)) {
    // A delete marker on a versioned bucket, or the named version for good (versions.ts).
    const done = await g.store.delete(r.bucket, r.key, backendVersionId(versionId));
    if (done.versionId !== undefined) r.res.setHeader('x-amz-version-id', done.versionId);
    if (done.deleteMarker) r.res.setHeader('x-amz-delete-marker', 'true');
  } else if (deletesCurrent(versionId)) {
    await g.store.delete(r.bucket, r.key);
  }
  r.res.statusCode = 204;
  r.res.end();
}

/** x-amz-copy-source: "bucket/key" or "/bucket/key", URL-encoded, optional ?versionId. */
export function parseCopySource(value: string): { bucket: string; key: string } {
  let v = value;
  const q = v.indexOf('?');
  if (q >= 0) v = v.slice(0, q);
  let decoded: string;
  try {
    decoded = decodeURIComponent(v).replace(/^\//, '');
  } catch {
    throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey.');
  }
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey.');
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

export async function openCopySource(g: Gateway, r: S3Request): Promise<StoredObject> {
  const src = parseCopySource(r.header('x-amz-copy-source')!);
  g.users.authorize(r.user, src.bucket);
  // as a source too, the meta bucket is a bucket that does not exist (see Gateway.handle)
  if (src.bucket === g.metaBucket) throw new S3Error('NoSuchBucket', undefined, { BucketName: src.bucket });
  const copySource = r.header('x-amz-copy-source')!;
  const obj = keepsVersions(g.backend)
    ? await g.store.stat(src.bucket, src.key, copySourceVersionId(copySource, src.key))
    : await openCopySourceVersion(copySource, src.key, () => g.store.stat(src.bucket, src.key));
  checkCopySourceConditions(r.req.headers, { etag: obj.etag, lastModified: obj.lastModified });
  return obj;
}

export async function copyObject(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  checkKey(r.key);
  const src = await openCopySource(g, r);
  const directive = (r.header('x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', 'Unknown metadata directive.');
  // (a named version copied onto its key is a restore, which S3 allows)
  if (directive === 'COPY' && src.bucket === r.bucket && src.key === r.key && src.versionId === undefined) {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const meta = directive === 'REPLACE' ? metaFromRequest(r) : src.header.meta;
  const reseal = async (): Promise<{ etag: string; versionId?: string }> => {
    const plain = await g.store.read(src, 0, src.size - 1);
    return consuming(plain, (s) => g.store.put(r.bucket, r.key, s, src.size, meta, () => src.header.checksums, {}, knownOf(src)));
  };
  // A copy onto its own key in a bucket that keeps versions is a new version beside the source: it gets its own
  // oid (so its own header), since a server-side copy keeps the oid and would rewrite the source version's header.
  const ontoItsVersions = src.bucket === r.bucket && src.key === r.key && src.info.versionId !== undefined;
  let done: { etag: string; versionId?: string };
  if (!src.plaintext && !ontoItsVersions && g.keys.datasetFor(src.bucket, src.key) === g.keys.datasetFor(r.bucket, r.key)) {
    try {
      done = await g.store.copySameDataset(src, r.bucket, r.key, meta);
    } catch (e) {
      // The backend refused the copy itself (S3 copies at most 5 GiB in one request; lakecrypt, like MinIO, takes
      // up to 5 TiB): move the bytes through the gateway instead, which has no such limit.
      if (!isS3Error(e, 'InvalidRequest') && !isS3Error(e, 'EntityTooLarge')) throw e;
      done = await reseal();
    }
  } else {
    // Another dataset means another KEK and another AAD binding: the bytes have to be re-sealed.
    done = await reseal();
  }
  const info = await g.backend.headObject(r.bucket, r.key, done.versionId);
  const versionHeaders: Record<string, string> = {};
  if (done.versionId !== undefined) versionHeaders['x-amz-version-id'] = done.versionId;
  if (src.info.versionId !== undefined) versionHeaders['x-amz-copy-source-version-id'] = src.info.versionId;
  sendXml(r.res, 200, xml.copyObjectResult(done.etag, info?.lastModified ?? new Date()), { ...SSE_HEADERS, ...versionHeaders });
}

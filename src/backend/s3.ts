/**
 * S3 backend: any S3-compatible store (MinIO, AWS, versitygw, ...; docs/OPERATIONS.md "Backends: what differs").
 *
 * - Every call goes through the hand-signed client in s3-fast.ts, its answers read by the scanners of s3-xml.ts and
 *   s3-versions.ts. The gateway never loads @aws-sdk/client-s3: importing it alone cost ~21 MiB RSS (issue #22).
 * - No request checksums / response validation (the ciphertext is authenticated by the format); Buffer bodies
 *   are SHA-256 signed, streamed bodies sent UNSIGNED-PAYLOAD with a Content-Length to MinIO and S3, aws-chunked
 *   with a CRC32 trailer to other stores (so a body cut short is never committed: s3-fast.ts).
 * - Keys a file-path store would resolve onto another key are refused before any request (s3-keys.ts); answers
 *   of stores that differ from S3 are read as S3's (null-version.ts, reset-condition.ts).
 * - Keep-alive agents with 64 sockets.
 * - Retries (up to 5 attempts, backoff with jitter) for every request that can be replayed (no body, or a Buffer
 *   body); a Readable body is sent once (a consumed stream cannot be resent).
 * - Errors are mapped to S3Error (see mapError).
 */
import http from 'node:http';
import https from 'node:https';
import { RawHttpPool } from './raw-http.ts';
import { openRawUpload } from './raw-upload.ts';
import { FastS3, backoff, readText, type FastAnswer, type FastRequest } from './s3-fast.ts';
import type { Readable } from 'node:stream';
import { ERRORS, S3Error, type S3ErrorCode } from '../errors.ts';
import { checkBucketName } from '../s3/names.ts';
import { checkStoredKey } from './s3-keys.ts';
import { judgeAfterReset } from './reset-condition.ts';
import { copyNullVersion, nullVersionOf, readNullVersion, refusedNull } from './null-version.ts';
import { uriEncode } from '../s3/sigv4.ts';
import type { Backend, DeleteResult, ListOptions, ListResult, ListVersionsOptions, ListVersionsResult, ObjectInfo, PutOptions, RawPut, VersioningStatus } from './types.ts';
import { parseListVersionsXml, parseVersioningXml, versioningXml } from './s3-versions.ts';
import {
  bodyError,
  child,
  completeMultipartXml,
  createBucketXml,
  errorFields,
  parseCompleteResult,
  parseInitiateMultipart,
  parseListBuckets,
  parseListParts,
  parseListUploads,
  xmlText,
} from './s3-xml.ts';
import { quoteEtag, unquoteEtag } from '../s3/etags.ts';

export interface S3BackendOptions {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region?: string;
  /**
   * Kept for the configuration's sake (s3.forcePathStyle), without effect: every request is path-style
   * (http://host/bucket/key; s3-fast.ts), as the object calls always were.
   */
  forcePathStyle?: boolean;
  /** Attempts for replayable requests (default 5). */
  maxAttempts?: number;
  /** Sockets per agent (default 64). */
  maxSockets?: number;
}

const unquote = unquoteEtag;
const quote = quoteEtag;

/** S3 (and MinIO) error codes that differ from ours but mean the same thing. */
const ALIASES: Record<string, S3ErrorCode> = {
  NotFound: 'NoSuchKey',
  ConditionalRequestConflict: 'PreconditionFailed',
  XMinioInvalidObjectName: 'InvalidArgument',
  XMinioInvalidResourceName: 'InvalidArgument',
  XMinioObjectExistsAsDirectory: 'InvalidArgument',
  XMinioParentIsObject: 'InvalidArgument',
  // versitygw (objects are files): a key beside one that is also its prefix, a directory marker with data
  ExistingObjectIsDirectory: 'InvalidArgument',
  ObjectParentIsFile: 'InvalidArgument',
  DirectoryObjectContainsData: 'InvalidArgument',
  InvalidObjectName: 'InvalidArgument',
  InvalidStorageClass: 'InvalidArgument',
  XMinioServerNotInitialized: 'ServiceUnavailable',
  XMinioStorageFull: 'ServiceUnavailable',
  OperationAborted: 'ServiceUnavailable',
  Throttling: 'SlowDown',
  ThrottlingException: 'SlowDown',
  RequestTimeTooSkewed: 'ServiceUnavailable',
  EntityTooLarge: 'EntityTooLarge',
};

/** Backend codes that refuse an object or bucket name. */
const NAME_REFUSALS = new Set(['XMinioInvalidObjectName', 'XMinioInvalidResourceName', 'InvalidObjectName']);
/** Backend codes of a store that keeps objects as files and cannot hold this key beside the ones it has. */
const TREE_REFUSALS = new Set(['ExistingObjectIsDirectory', 'ObjectParentIsFile', 'DirectoryObjectContainsData', 'XMinioObjectExistsAsDirectory', 'XMinioParentIsObject']);

/** What an error names besides its code: the bucket, key and upload the call was about. */
type ErrorCtx = { bucket?: string; key?: string; uploadId?: string };

/**
 * Map a failure to an S3Error: a store's error answer (as fastError passes it: its code, `$metadata.httpStatusCode`,
 * the shape the AWS SDK gave errors), a network error, a scanner's Error on an answer that did not read.
 */
export function mapError(e: unknown, ctx: ErrorCtx = {}): S3Error {
  if (e instanceof S3Error) return e;
  const detail: Record<string, string> = {};
  if (ctx.bucket) detail.BucketName = ctx.bucket;
  if (ctx.key) detail.Key = ctx.key;
  if (ctx.uploadId) detail.UploadId = ctx.uploadId;
  const err = e as { name?: string; Code?: string; code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
  const status = err?.$metadata?.httpStatusCode;
  const name = err?.Code ?? err?.name ?? '';
  let code: S3ErrorCode | undefined;
  if (name in ALIASES) code = ALIASES[name];
  else if (name in ERRORS) code = name as S3ErrorCode;
  else if (status === 412) code = 'PreconditionFailed';
  else if (status === 416) code = 'InvalidRange';
  else if (status === 404) code = ctx.key ? 'NoSuchKey' : 'NoSuchBucket';
  else if (status === 403) code = 'AccessDenied';
  // A 400 without a code (a HEAD has no body) on an object request: the backend refused the name (MinIO: a `..`
  // or `.` segment, an empty segment); another 4xx is the request's fault too. Client errors, never a 503.
  else if (status === 400 && ctx.key) code = 'InvalidArgument';
  else if (status !== undefined && status >= 400 && status < 500) code = 'InvalidRequest';
  else code = 'ServiceUnavailable';
  // Server-side / auth failures of the backend are never passed on verbatim to our clients as their own.
  if (code === 'SignatureDoesNotMatch' || code === 'InvalidAccessKeyId') code = 'ServiceUnavailable';
  const msg =
    code === 'ServiceUnavailable'
      ? `backend error: ${name || 'network'}: ${err?.message ?? ''}`
      : code === 'InvalidArgument' && ctx.key && (NAME_REFUSALS.has(name) || !name)
        ? 'The storage backend refuses this object key (MinIO: a "." or ".." path segment, an empty one, or one over 255 bytes).'
        : code === 'InvalidArgument' && TREE_REFUSALS.has(name)
          ? 'The storage backend keeps objects as files: a key cannot be both an object and a prefix of other keys ("a" and "a/b"), and a key ending in "/" cannot hold data (every object lakecrypt stores has some).'
          : undefined;
  return new S3Error(code, msg, detail, { cause: e });
}

function encodeCopySource(bucket: string, key: string): string {
  return `${uriEncode(bucket)}/${uriEncode(key, true)}`;
}

/** x-amz-meta-* request headers (names lower-case). */
function metaHeaders(meta: Record<string, string> | undefined): Record<string, string> {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta ?? {})) h[`x-amz-meta-${k.toLowerCase()}`] = String(v);
  return h;
}

/** Error codes in a 200 answer's body (CopyObject, CompleteMultipartUpload) worth another attempt. */
const RETRY_IN_BODY = new Set(['InternalError', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout']);

/** ListObjectsV2 with EncodingType=url: S3 encodes spaces as '+', a literal '+' as %2B. */
const urlDecode = (s: string | undefined) => (s === undefined ? undefined : decodeURIComponent(s.replace(/\+/g, ' ')));

/**
 * An error answer of the fast client, mapped; its cause carries the `<Error>` fields as the SDK's exceptions did
 * (the multipart store reads an InvalidPart's PartNumber there).
 */
function fastError(r: Omit<FastAnswer, 'body'>, ctx: ErrorCtx): S3Error {
  return mapError({ ...r.errorFields, name: r.errorCode ?? '', message: r.errorMessage, $metadata: { httpStatusCode: r.status } }, ctx);
}

interface ListedXml {
  key: string;
  size: string;
  etag: string;
  lastModified: string;
  /** Inner XML of <UserMetadata>, undefined when absent. */
  userMetadata?: string;
}

/**
 * ListObjectsV2 answers are machine-written, flat and regular: scanned with indexOf instead of a general XML
 * parser (fast-xml-parser took twice the client CPU of the SDK's own parser on a 1000-key page).
 * Every <Contents> / <CommonPrefixes> element is cut out; the top-level fields are read from what remains.
 */
function parseListXml(xml: string) {
  const contents: ListedXml[] = [];
  const prefixes: string[] = [];
  let rest = '';
  let pos = 0;
  // next occurrences, found again only once passed (an absent one is not searched for twice: no O(n^2))
  let c = xml.indexOf('<Contents>');
  let p = xml.indexOf('<CommonPrefixes>');
  for (;;) {
    if (c >= 0 && c < pos) c = xml.indexOf('<Contents>', pos);
    if (p >= 0 && p < pos) p = xml.indexOf('<CommonPrefixes>', pos);
    const at = c < 0 ? p : p < 0 ? c : Math.min(c, p);
    if (at < 0) break;
    rest += xml.slice(pos, at);
    const tag = at === c ? 'Contents' : 'CommonPrefixes';
    const start = at + tag.length + 2;
    const end = xml.indexOf(`</${tag}>`, start);
    if (end < 0) throw new Error(`malformed listing: unterminated <${tag}>`);
    const el = xml.slice(start, end); // searches stay inside the element (an absent field must not scan the rest)
    if (tag === 'Contents') {
      const key = child(el, 'Key');
      if (key === undefined) throw new Error('malformed listing: <Contents> without <Key>');
      contents.push({
        key: xmlText(key),
        size: child(el, 'Size') ?? '0',
        etag: xmlText(child(el, 'ETag') ?? ''),
        lastModified: child(el, 'LastModified') ?? '',
        userMetadata: child(el, 'UserMetadata'),
      });
    } else {
      prefixes.push(xmlText(child(el, 'Prefix') ?? ''));
    }
    pos = end + tag.length + 3;
  }
  rest += xml.slice(pos);
  if (!rest.includes('<ListBucketResult')) throw new Error('not a ListBucketResult');
  const token = child(rest, 'NextContinuationToken');
  return {
    contents,
    prefixes,
    isTruncated: child(rest, 'IsTruncated') === 'true',
    nextContinuationToken: token === undefined ? undefined : xmlText(token),
    encodingType: child(rest, 'EncodingType'),
  };
}

/** MinIO's `<UserMetadata>` children: x-amz-meta-* entries, lower-cased and without the prefix; others dropped. */
function userMeta(inner: string | undefined): Record<string, string> | undefined {
  if (inner === undefined) return undefined;
  const meta: Record<string, string> = {};
  const re = /<([^\s>/]+)\s*(\/>|>([^<]*)<\/\1>)/g;
  for (let m = re.exec(inner); m; m = re.exec(inner)) {
    const n = m[1].toLowerCase();
    if (n.startsWith('x-amz-meta-')) meta[n.slice(11)] = xmlText(m[3] ?? '');
  }
  return meta;
}

/** The x-amz-version-id an answer carries, as a field to spread (none: no field). */
function versionOf(h: http.IncomingHttpHeaders): { versionId?: string } {
  const v = h['x-amz-version-id'];
  return typeof v === 'string' && v !== '' ? { versionId: v } : {};
}

/**
 * An error answer to a call that named a version: a 404 is that version's absence (NoSuchVersion; a HEAD has no
 * body to say so), a 405 a delete marker (S3 answers MethodNotAllowed for reading one).
 */
function versionError(r: FastAnswer, ctx: { bucket: string; key: string }, versionId?: string): S3Error {
  if (versionId !== undefined && r.status === 404 && (r.errorCode === undefined || r.errorCode === 'NoSuchKey' || r.errorCode === 'NoSuchVersion')) {
    return new S3Error('NoSuchVersion', undefined, { Key: ctx.key, VersionId: versionId });
  }
  if (r.status === 405) return new S3Error('MethodNotAllowed', 'The specified method is not allowed against a delete marker.', { Key: ctx.key });
  return fastError(r, ctx);
}

function parseTotalSize(contentRange: string | undefined, contentLength: number | undefined): number {
  const m = contentRange ? /\/(\d+)\s*$/.exec(contentRange) : null;
  return m ? Number(m[1]) : (contentLength ?? 0);
}

export class S3Backend implements Backend {
  readonly kind = 's3' as const;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  private readonly maxAttempts: number;
  /** The store's region: what requests are signed for, and the LocationConstraint of a new bucket outside us-east-1. */
  private readonly region: string;

  constructor(opts: S3BackendOptions) {
    this.maxAttempts = opts.maxAttempts ?? 5;
    this.region = opts.region ?? 'us-east-1';
    const maxSockets = opts.maxSockets ?? 64;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets });
    const endpoint = new URL(opts.endpoint);
    const rawPool = () => new RawHttpPool(endpoint.hostname.replace(/^\[(.*)\]$/, '$1'), Number(endpoint.port || 80), maxSockets, 60_000);
    this.raw = endpoint.protocol === 'http:' ? rawPool() : null;
    this.rawShort = endpoint.protocol === 'http:' ? rawPool() : null;
    this.fast = new FastS3(
      opts.endpoint,
      opts.accessKey,
      opts.secretKey,
      this.region,
      endpoint.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
      opts.maxAttempts ?? 5,
      this.raw,
      'auto',
      this.rawShort,
    );
  }

  /** Every call to the store, signed by hand (see s3-fast.ts). */
  private readonly fast: FastS3;
  /** Where a GET whose body is streamed on goes on a plain-http endpoint (raw-http.ts; s3-fast.ts rawFor). */
  private readonly raw: RawHttpPool | null;
  /** Where every other raw request goes there (HEAD, GETs read whole, PUT/DELETE with a Buffer body), apart from the streams. */
  private readonly rawShort: RawHttpPool | null;
  /** False once the backend refused MinIO's `metadata=true` listing parameter. */
  private metaListing = true;

  private fastInfo(key: string, h: http.IncomingHttpHeaders): ObjectInfo {
    const meta: Record<string, string> = {};
    for (const [name, value] of Object.entries(h)) {
      if (name.startsWith('x-amz-meta-') && value !== undefined) meta[name.slice(11)] = Array.isArray(value) ? value.join(',') : value;
    }
    const length = h['content-length'] !== undefined ? Number(h['content-length']) : undefined;
    const info: ObjectInfo = {
      key,
      size: parseTotalSize(h['content-range'], length),
      etag: unquote(h.etag),
      lastModified: h['last-modified'] ? new Date(h['last-modified']) : new Date(0),
      meta,
    };
    const versionId = h['x-amz-version-id'];
    if (typeof versionId === 'string' && versionId !== '') info.versionId = versionId;
    return info;
  }

  /**
   * A call whose answer is a small XML document, read by `parse` (a scanner of s3-xml.ts): its result; an error
   * answer, a body cut short or one that does not scan thrown mapped with `ctx`.
   */
  private async askXml<T>(req: FastRequest, ctx: ErrorCtx, parse: (xml: string) => T): Promise<T> {
    const r = await this.fast.send(req);
    if (r.status >= 300) throw fastError(r, ctx);
    try {
      return parse(await readText(r.body));
    } catch (e) {
      throw mapError(e, ctx);
    }
  }

  /** A call whose answer has nothing to read: an error answer thrown mapped with `ctx`. */
  private async ask(req: FastRequest, ctx: ErrorCtx): Promise<void> {
    const r = await this.fast.send(req);
    if (r.status >= 300) throw fastError(r, ctx);
    r.body.resume();
  }

  /**
   * A call the store may answer 200 and then fail in the body, having failed after sending its headers (CopyObject,
   * CompleteMultipartUpload; s3-xml.ts bodyError). Such a failure is asked again when its code is worth it
   * (RETRY_IN_BODY: S3 documents both calls as safe to repeat), else thrown mapped with `ctx`. An error status is
   * returned to the caller as it is (`text` ''); a success with its body's text.
   */
  private async sendCheckingBody(req: FastRequest, ctx: ErrorCtx): Promise<{ r: FastAnswer; text: string }> {
    for (let attempt = 1; ; attempt++) {
      const r = await this.fast.send(req);
      if (r.status >= 300) return { r, text: '' };
      const text = await readText(r.body).catch((e) => {
        throw mapError(e, ctx);
      });
      const failed = bodyError(text);
      if (!failed) return { r, text };
      if (attempt < this.maxAttempts && RETRY_IN_BODY.has(failed.code)) {
        await backoff(attempt, false);
        continue;
      }
      throw fastError({ ...r, status: 500, errorCode: failed.code, errorMessage: failed.message, errorFields: failed.fields }, ctx);
    }
  }

  async listBuckets(): Promise<{ name: string; creationDate: Date }[]> {
    // the service itself: bucket '' is the path '/'
    return this.askXml({ method: 'GET', bucket: '' }, {}, parseListBuckets);
  }

  async createBucket(bucket: string): Promise<void> {
    // S3's rules here, not the store's: versitygw (v1.8.0) creates 'a..b', which S3 and MinIO refuse, and a bucket
    // made through one backend must stay valid on any other (migration, a later move to S3).
    checkBucketName(bucket);
    const config = createBucketXml(this.region);
    await this.ask(
      config === undefined ? { method: 'PUT', bucket } : { method: 'PUT', bucket, headers: { 'content-type': 'application/xml' }, body: Buffer.from(config) },
      { bucket },
    );
  }

  async bucketExists(bucket: string): Promise<boolean> {
    const r = await this.fast.send({ method: 'HEAD', bucket });
    if (r.status < 300) return true;
    // 404, or 400 (a name the store refuses, ...; a HEAD's answer has no body to say more): no such bucket
    if (r.status === 404 || r.status === 400) return false;
    throw fastError(r, { bucket });
  }

  async deleteBucket(bucket: string): Promise<void> {
    await this.ask({ method: 'DELETE', bucket }, { bucket });
  }

  /**
   * Through the fast client: a Buffer body is SHA-256 signed and retried like every replayable call; a stream is
   * sent once (UNSIGNED-PAYLOAD, Content-Length, Expect: 100-continue from 1 MiB), as the SDK did.
   */
  async putObject(bucket: string, key: string, body: Readable | Buffer, opts: PutOptions): Promise<{ etag: string; versionId?: string }> {
    checkStoredKey(bucket, key);
    const headers = metaHeaders(opts.meta);
    if (opts.ifMatch !== undefined) headers['if-match'] = quote(opts.ifMatch);
    if (opts.ifNoneMatch !== undefined) headers['if-none-match'] = opts.ifNoneMatch;
    // If-Match against a missing key: S3 answers 404 NoSuchKey, kept (mapError with a key).
    const r = await this.fast.send({ method: 'PUT', bucket, key, headers, body, size: opts.size }).catch(async (e: unknown) => {
      throw await judgeAfterReset(e, key, opts, { bucketExists: () => this.bucketExists(bucket), head: () => this.headObject(bucket, key) });
    });
    if (r.status >= 300) throw fastError(r, { bucket, key });
    r.body.resume();
    return { etag: unquote(r.headers.etag), ...versionOf(r.headers) };
  }

  canRawPut(): boolean {
    return this.fast.rawPutReady();
  }

  /** See Backend.rawPut: the headers putObject sends, signed UNSIGNED-PAYLOAD with the exact Content-Length. */
  rawPut(bucket: string, key: string, opts: PutOptions, first: Buffer): Promise<RawPut | null> {
    checkStoredKey(bucket, key);
    const headers = metaHeaders(opts.meta);
    if (opts.ifMatch !== undefined) headers['if-match'] = quote(opts.ifMatch);
    if (opts.ifNoneMatch !== undefined) headers['if-none-match'] = opts.ifNoneMatch;
    return this.openRaw(this.fast.rawPutHead(bucket, key, opts.size, headers), first, { bucket, key });
  }

  /** See Backend.rawUploadPart: uploadPart's request, signed as rawPut's. */
  rawUploadPart(bucket: string, key: string, uploadId: string, partNumber: number, size: number, first: Buffer): Promise<RawPut | null> {
    checkStoredKey(bucket, key);
    const head = this.fast.rawPutHead(bucket, key, size, {}, { partNumber: String(partNumber), uploadId });
    return this.openRaw(head, first, { bucket, key, uploadId });
  }

  private async openRaw(
    target: { host: string; port: number; head: string } | null,
    first: Buffer,
    ctx: { bucket: string; key: string; uploadId?: string },
  ): Promise<RawPut | null> {
    if (!target) return null;
    const up = await openRawUpload(target.host, target.port, target.head, first, 60_000).catch((e: unknown) => {
      throw new S3Error('ServiceUnavailable', `backend error: network: ${(e as Error).message}`, {}, { cause: e });
    });
    return {
      fd: up.fd,
      socket: up.socket,
      answered: () => up.answered(),
      close: () => up.close(),
      result: async () => {
        const a = await up.answer().catch((e: unknown) => {
          throw new S3Error('ServiceUnavailable', `backend error: network: ${(e as Error).message}`, {}, { cause: e });
        });
        up.close();
        if (a.status >= 300) {
          const errorCode = /<Code>([^<]+)<\/Code>/.exec(a.text)?.[1];
          const errorMessage = /<Message>([^<]*)<\/Message>/.exec(a.text)?.[1];
          throw fastError({ status: a.status, headers: a.headers, errorCode, errorMessage, errorFields: errorFields(a.text) }, ctx);
        }
        return { etag: unquote(a.headers.etag), ...versionOf(a.headers) };
      },
    };
  }

  getObject(bucket: string, key: string, range?: { start: number; end?: number }, versionId?: string): Promise<{ body: Readable; info: ObjectInfo }> {
    return this.getObjectVia(true, bucket, key, range, versionId);
  }

  /** getObject; `stream`: its body is handed on (the stream pool), else read whole at once by the caller. */
  private async getObjectVia(
    stream: boolean,
    bucket: string,
    key: string,
    range?: { start: number; end?: number },
    versionId?: string,
  ): Promise<{ body: Readable; info: ObjectInfo }> {
    checkStoredKey(bucket, key);
    if (range && (!Number.isInteger(range.start) || range.start < 0 || (range.end !== undefined && range.end < range.start)))
      throw new S3Error('InvalidRange');
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end ?? ''}` } : {};
    const r =
      versionId === undefined
        ? await this.fast.call('GET', bucket, key, headers, stream)
        : await this.fast.send({ method: 'GET', bucket, key, headers, query: { versionId }, stream });
    if (r.status >= 300 && refusedNull(versionId, r.status)) return readNullVersion(key, () => this.getObjectVia(stream, bucket, key, range));
    if (r.status >= 300) throw versionError(r, { bucket, key }, versionId);
    return { body: r.body, info: this.fastInfo(key, r.headers) };
  }

  async getBuffer(bucket: string, key: string): Promise<{ data: Buffer; info: ObjectInfo }> {
    const { body, info } = await this.getObjectVia(false, bucket, key);
    const chunks: Buffer[] = [];
    try {
      for await (const c of body) chunks.push(c as Buffer);
    } catch (e) {
      throw mapError(e, { bucket, key });
    }
    return { data: Buffer.concat(chunks), info };
  }

  async headObject(bucket: string, key: string, versionId?: string): Promise<ObjectInfo | null> {
    checkStoredKey(bucket, key);
    const r =
      versionId === undefined
        ? await this.fast.call('HEAD', bucket, key)
        : await this.fast.send({ method: 'HEAD', bucket, key, query: { versionId } });
    if (r.status >= 300 && refusedNull(versionId, r.status, true)) return nullVersionOf(await this.headObject(bucket, key));
    if (r.status === 404) return null;
    if (r.status >= 300) throw versionError(r, { bucket, key }, versionId);
    return this.fastInfo(key, r.headers);
  }

  async deleteObject(bucket: string, key: string, versionId?: string): Promise<DeleteResult> {
    checkStoredKey(bucket, key);
    const r = await this.fast.send({ method: 'DELETE', bucket, key, query: versionId === undefined ? undefined : { versionId } });
    r.body.resume();
    if (r.status >= 300) throw versionError(r, { bucket, key }, versionId);
    const out: DeleteResult = versionOf(r.headers);
    if (r.headers['x-amz-delete-marker'] === 'true') out.deleteMarker = true;
    return out;
  }

  async getBucketVersioning(bucket: string): Promise<VersioningStatus | undefined> {
    const r = await this.fast.send({ method: 'GET', bucket, query: { versioning: '' } });
    if (r.status >= 300) throw fastError(r, { bucket });
    return parseVersioningXml(await readText(r.body));
  }

  async putBucketVersioning(bucket: string, status: VersioningStatus): Promise<void> {
    const r = await this.fast.send({ method: 'PUT', bucket, query: { versioning: '' }, body: Buffer.from(versioningXml(status)) });
    if (r.status >= 300) throw fastError(r, { bucket });
    r.body.resume();
  }

  async listObjectVersions(bucket: string, opts: ListVersionsOptions): Promise<ListVersionsResult> {
    const query: Record<string, string> = { versions: '', 'encoding-type': 'url', 'max-keys': String(opts.maxKeys ?? 1000) };
    if (opts.prefix) query.prefix = opts.prefix;
    if (opts.delimiter) query.delimiter = opts.delimiter;
    if (opts.keyMarker) query['key-marker'] = opts.keyMarker;
    if (opts.versionIdMarker) query['version-id-marker'] = opts.versionIdMarker;
    const r = await this.fast.send({ method: 'GET', bucket, query });
    if (r.status >= 300) throw fastError(r, { bucket });
    try {
      return parseListVersionsXml(await readText(r.body));
    } catch (e) {
      throw mapError(e, { bucket });
    }
  }

  async copyObject(
    srcBucket: string,
    srcKey: string,
    dstBucket: string,
    dstKey: string,
    opts: { meta: Record<string, string>; ifMatch?: string; srcVersionId?: string },
  ): Promise<{ etag: string; versionId?: string }> {
    checkStoredKey(srcBucket, srcKey);
    checkStoredKey(dstBucket, dstKey);
    const headers = metaHeaders(opts.meta);
    headers['x-amz-copy-source'] =
      encodeCopySource(srcBucket, srcKey) + (opts.srcVersionId === undefined ? '' : `?versionId=${encodeURIComponent(opts.srcVersionId)}`);
    headers['x-amz-metadata-directive'] = 'REPLACE';
    if (opts.ifMatch !== undefined) headers['x-amz-copy-source-if-match'] = quote(opts.ifMatch);
    const ctx = { bucket: srcBucket, key: srcKey };
    // S3 may answer 200 and report a failure in the body (a copy that failed after the headers were sent).
    const { r, text } = await this.sendCheckingBody({ method: 'PUT', bucket: dstBucket, key: dstKey, headers }, ctx);
    if (r.status >= 300 && refusedNull(opts.srcVersionId, r.status)) {
      const { srcVersionId: _, ...rest } = opts;
      return copyNullVersion(srcKey, opts.ifMatch, () => this.headObject(srcBucket, srcKey), (etag) => this.copyObject(srcBucket, srcKey, dstBucket, dstKey, { ...rest, ifMatch: etag }));
    }
    if (r.status >= 300) throw fastError(r, ctx);
    const etag = /<ETag>([^<]*)<\/ETag>/.exec(text)?.[1];
    return { etag: unquote(etag?.replace(/&#34;|&quot;/g, '"')), ...versionOf(r.headers) };
  }

  /**
   * ListObjectsV2 through the fast client. With `withMeta`, MinIO's listing extension (`metadata=true`, what
   * minio-go's WithMetadata sends) returns `<UserMetadata>` in each `<Contents>`: entries named like
   * `X-Amz-Meta-Lc-Oid` (canonical case) plus non-user ones such as `content-type`; values are XML-escaped but not
   * url-encoded, even with encoding-type=url. Other backends ignore the parameter (no UserMetadata: `meta` stays
   * undefined) or refuse it (then the listing is redone without it, and not asked for again).
   */
  async listObjects(bucket: string, opts: ListOptions): Promise<ListResult> {
    return this.list(bucket, opts, !!opts.withMeta && this.metaListing);
  }

  private async list(bucket: string, opts: ListOptions, withMeta: boolean): Promise<ListResult> {
    const query: Record<string, string> = { 'list-type': '2', 'encoding-type': 'url', 'max-keys': String(opts.maxKeys ?? 1000) };
    if (opts.prefix) query.prefix = opts.prefix;
    if (opts.delimiter) query.delimiter = opts.delimiter;
    if (opts.startAfter) query['start-after'] = opts.startAfter;
    if (opts.continuationToken) query['continuation-token'] = opts.continuationToken;
    if (withMeta) query.metadata = 'true';
    const r = await this.fast.send({ method: 'GET', bucket, query });
    if (r.status >= 300) {
      if (withMeta && r.status === 400) {
        // An S3 that refuses the unknown parameter: if the same listing works without it, stop asking.
        const plain = await this.list(bucket, opts, false);
        this.metaListing = false;
        return plain;
      }
      throw fastError(r, { bucket });
    }
    let doc: ReturnType<typeof parseListXml>;
    try {
      doc = parseListXml(await readText(r.body));
    } catch (e) {
      // Metadata that does not scan (names not valid as XML element names...): list without it.
      if (withMeta) return this.list(bucket, opts, false);
      throw mapError(e, { bucket });
    }
    const dec = doc.encodingType === 'url' ? urlDecode : (s: string | undefined) => s;
    return {
      objects: doc.contents.map((o) => {
        const obj: ListResult['objects'][number] = {
          key: dec(o.key)!,
          size: Number(o.size),
          etag: unquote(o.etag),
          lastModified: o.lastModified ? new Date(o.lastModified) : new Date(0),
        };
        if (opts.withMeta) obj.meta = withMeta ? userMeta(o.userMetadata) : undefined;
        return obj;
      }),
      commonPrefixes: doc.prefixes.map((p) => dec(p)!),
      isTruncated: doc.isTruncated,
      nextContinuationToken: doc.isTruncated ? doc.nextContinuationToken || undefined : undefined,
    };
  }

  async createMultipart(bucket: string, key: string, meta: Record<string, string>): Promise<string> {
    checkStoredKey(bucket, key);
    return this.askXml({ method: 'POST', bucket, key, query: { uploads: '' }, headers: metaHeaders(meta) }, { bucket, key }, parseInitiateMultipart);
  }

  async uploadPart(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable | Buffer,
    size: number,
  ): Promise<{ etag: string }> {
    checkStoredKey(bucket, key);
    const r = await this.fast
      .send({ method: 'PUT', bucket, key, query: { partNumber: String(partNumber), uploadId }, body, size })
      .catch(async (e: unknown) => {
        throw await judgeAfterReset(e, key, undefined, { bucketExists: () => this.bucketExists(bucket), uploadExists: () => this.uploadExists(bucket, key, uploadId) });
      });
    if (r.status >= 300) throw fastError(r, { bucket, key, uploadId });
    r.body.resume();
    return { etag: unquote(r.headers.etag) };
  }

  async listParts(bucket: string, key: string, uploadId: string): Promise<{ partNumber: number; etag: string }[]> {
    checkStoredKey(bucket, key);
    const out: { partNumber: number; etag: string }[] = [];
    const query: Record<string, string> = { uploadId };
    for (;;) {
      const page = await this.askXml({ method: 'GET', bucket, key, query }, { bucket, key, uploadId }, parseListParts);
      for (const p of page.parts) out.push({ partNumber: p.partNumber, etag: unquote(p.etag) });
      if (!page.isTruncated || !page.nextPartNumberMarker) break;
      query['part-number-marker'] = page.nextPartNumberMarker;
    }
    return out;
  }

  /** ListParts of one part: whether the upload is still open (NoSuchUpload: not). */
  private async uploadExists(bucket: string, key: string, uploadId: string): Promise<boolean> {
    const r = await this.fast.send({ method: 'GET', bucket, key, query: { uploadId, 'max-parts': '1' } });
    r.body.resume();
    if (r.status === 404) return false;
    if (r.status >= 300) throw fastError(r, { bucket, key, uploadId });
    return true;
  }

  async completeMultipart(
    bucket: string,
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
    cond: { ifMatch?: string; ifNoneMatch?: '*' } = {},
  ): Promise<{ etag: string; versionId?: string }> {
    checkStoredKey(bucket, key);
    const ctx = { bucket, key, uploadId };
    const headers: Record<string, string> = { 'content-type': 'application/xml' };
    if (cond.ifMatch !== undefined) headers['if-match'] = quote(cond.ifMatch);
    if (cond.ifNoneMatch !== undefined) headers['if-none-match'] = cond.ifNoneMatch;
    // A Buffer body: the fast client retries a 5xx or a reset too (S3 documents Complete as safe to repeat).
    const body = Buffer.from(completeMultipartXml(parts.map((p) => ({ partNumber: p.partNumber, etag: quote(p.etag) }))));
    const { r, text } = await this.sendCheckingBody({ method: 'POST', bucket, key, query: { uploadId }, headers, body }, ctx);
    if (r.status >= 300) throw fastError(r, ctx);
    let etag: string;
    try {
      etag = parseCompleteResult(text);
    } catch (e) {
      throw mapError(e, ctx);
    }
    return { etag: unquote(etag), ...versionOf(r.headers) };
  }

  async abortMultipart(bucket: string, key: string, uploadId: string): Promise<void> {
    checkStoredKey(bucket, key);
    await this.ask({ method: 'DELETE', bucket, key, query: { uploadId } }, { bucket, key, uploadId });
  }

  async listMultipartUploads(bucket: string): Promise<{ key: string; uploadId: string; initiated: Date }[]> {
    const out: { key: string; uploadId: string; initiated: Date }[] = [];
    const query: Record<string, string> = { uploads: '', 'encoding-type': 'url' };
    for (;;) {
      const page = await this.askXml({ method: 'GET', bucket, query }, { bucket }, (xml) => {
        const p = parseListUploads(xml);
        // decoded only when the answer says it is encoded: versitygw ignores the parameter, its keys are as they are
        const dec = p.encodingType === 'url' ? urlDecode : (s: string | undefined) => s;
        return { ...p, uploads: p.uploads.map((u) => ({ ...u, key: dec(u.key)! })), nextKeyMarker: dec(p.nextKeyMarker) };
      });
      out.push(...page.uploads);
      if (!page.isTruncated) break;
      const keyMarker = page.nextKeyMarker;
      const uploadIdMarker = page.nextUploadIdMarker;
      if (!keyMarker && !uploadIdMarker) break;
      // as the SDK sent them: a marker the page did not give is left out
      for (const [name, value] of [['key-marker', keyMarker], ['upload-id-marker', uploadIdMarker]] as const) {
        if (value === undefined) delete query[name];
        else query[name] = value;
      }
    }
    // S3 lists by key then initiation time; MinIO does not sort: normalize.
    return out.sort(
      (a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)) || a.initiated.getTime() - b.initiated.getTime(),
    );
  }

  close(): Promise<void> {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.raw?.close();
    this.rawShort?.close();
    return Promise.resolve();
  }
}

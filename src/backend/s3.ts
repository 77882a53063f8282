/**
 * S3 backend: any S3-compatible store (MinIO, AWS, versitygw, ...; docs/OPERATIONS.md "Backends: what differs").
 *
 * - The per-object calls (GET, HEAD, PUT, UploadPart, CopyObject, DELETE) and ListObjectsV2 go through the
 *   hand-signed client in s3-fast.ts; buckets and the rest of multipart (rare) through @aws-sdk/client-s3.
 * - No request checksums / response validation (the ciphertext is authenticated by the format); Buffer bodies
 *   are SHA-256 signed, streamed bodies sent UNSIGNED-PAYLOAD with a Content-Length to MinIO and S3, aws-chunked
 *   with a CRC32 trailer to other stores (so a body cut short is never committed: s3-fast.ts).
 * - Keys a file-path store would resolve onto another key are refused before any request (s3-keys.ts); answers
 *   of stores that differ from S3 are read as S3's (null-version.ts, reset-condition.ts).
 * - Keep-alive agents with 64 sockets, shared by both clients.
 * - Retries (up to 5 attempts, backoff with jitter) for every request that can be replayed (no body, or a Buffer
 *   body); a Readable body is sent once (a consumed stream cannot be resent).
 * - Errors are mapped to S3Error (see mapError).
 */
import http from 'node:http';
import https from 'node:https';
import { RawHttpPool } from './raw-http.ts';
import { openRawUpload } from './raw-upload.ts';
import { FastS3, readText, type FastResponse } from './s3-fast.ts';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  HeadBucketCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { ERRORS, S3Error, type S3ErrorCode } from '../errors.ts';
import { checkBucketName } from '../s3/names.ts';
import { checkStoredKey } from './s3-keys.ts';
import { judgeAfterReset } from './reset-condition.ts';
import { copyNullVersion, nullVersionOf, readNullVersion, refusedNull } from './null-version.ts';
import { uriEncode } from '../s3/sigv4.ts';
import type { Backend, DeleteResult, ListOptions, ListResult, ListVersionsOptions, ListVersionsResult, ObjectInfo, PutOptions, RawPut, VersioningStatus } from './types.ts';
import { parseListVersionsXml, parseVersioningXml, versioningXml } from './s3-versions.ts';
import { quoteEtag, unquoteEtag } from '../s3/etags.ts';

export interface S3BackendOptions {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region?: string;
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

/** Map anything the SDK throws to an S3Error. */
export function mapError(e: unknown, ctx: { bucket?: string; key?: string; uploadId?: string } = {}): S3Error {
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

/** Error codes in a 200 CopyObject answer worth another attempt. */
const RETRY_IN_BODY = new Set(['InternalError', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout']);

/** ListObjectsV2 with EncodingType=url: S3 encodes spaces as '+', a literal '+' as %2B. */
const urlDecode = (s: string | undefined) => (s === undefined ? undefined : decodeURIComponent(s.replace(/\+/g, ' ')));

/** An error answer of the fast client, mapped like an SDK error. */
function fastError(r: FastResponse & { errorCode?: string; errorMessage?: string }, ctx: { bucket?: string; key?: string; uploadId?: string }): S3Error {
  return mapError({ name: r.errorCode ?? '', message: r.errorMessage, $metadata: { httpStatusCode: r.status } }, ctx);
}

interface ListedXml {
  key: string;
  size: string;
  etag: string;
  lastModified: string;
  /** Inner XML of <UserMetadata>, undefined when absent. */
  userMetadata?: string;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
/** XML text content: predefined entities and numeric character references (MinIO writes `&#34;`) decoded. */
function xmlText(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : ENTITIES[e],
  );
}

/** Text of the first <tag>...</tag> (or <tag/>) in xml[from, to), undefined when absent. */
function child(xml: string, tag: string, from = 0, to = xml.length): string | undefined {
  const open = xml.indexOf(`<${tag}`, from);
  if (open < 0 || open >= to) return undefined;
  const gt = xml.indexOf('>', open);
  if (gt < 0 || gt >= to) return undefined;
  const after = xml[open + tag.length + 1];
  if (after !== '>' && after !== '/' && after !== ' ') return child(xml, tag, gt + 1, to); // <KeyCount> when asked <Key>
  if (xml[gt - 1] === '/') return '';
  const close = xml.indexOf(`</${tag}>`, gt);
  if (close < 0 || close > to) return undefined;
  return xml.slice(gt + 1, close);
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
function versionError(r: FastResponse & { errorCode?: string; errorMessage?: string }, ctx: { bucket: string; key: string }, versionId?: string): S3Error {
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

/**
 * Retries of replayable calls: throttling (SlowDown, 429) and transient (5xx, network) errors, up to `maxAttempts`,
 * exponential backoff with full jitter (base 100 ms, 400 ms when throttled, cap 5 s). Unlike the SDK's standard
 * strategy there is no shared retry quota: with it, every call that was retried and then ended in a legitimate
 * error (a 404 for the keystore epoch poll, a HEAD of a new key) leaks quota, and under sustained SlowDown the
 * gateway stopped retrying altogether and passed 503s to its clients (test/reliability/faults.test.ts).
 */
class BackoffRetryStrategy {
  constructor(private readonly maxAttempts: number) {}
  private token(count: number, delay: number) {
    return { getRetryCount: () => count, getRetryDelay: () => delay };
  }
  acquireInitialRetryToken(_scope: string) {
    return Promise.resolve(this.token(0, 0));
  }
  refreshRetryTokenForRetry(token: { getRetryCount(): number }, info: { errorType: string; error?: unknown }) {
    const n = token.getRetryCount() + 1;
    if (n >= this.maxAttempts || (info.errorType !== 'THROTTLING' && info.errorType !== 'TRANSIENT')) {
      // the SDK rethrows what this rejects with: the original error when there is one
      return Promise.reject(info.error instanceof Error ? info.error : new Error('no retry'));
    }
    const base = info.errorType === 'THROTTLING' ? 400 : 100;
    return Promise.resolve(this.token(n, Math.floor(Math.random() * Math.min(5000, base * 2 ** n))));
  }
  recordSuccess(_token: unknown) {}
}

export class S3Backend implements Backend {
  readonly kind = 's3' as const;
  readonly client: S3Client;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  private readonly maxAttempts: number;

  constructor(opts: S3BackendOptions) {
    this.maxAttempts = opts.maxAttempts ?? 5;
    const maxSockets = opts.maxSockets ?? 64;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets });
    const base: S3ClientConfig = {
      endpoint: opts.endpoint,
      region: opts.region ?? 'us-east-1',
      forcePathStyle: opts.forcePathStyle ?? true,
      credentials: { accessKeyId: opts.accessKey, secretAccessKey: opts.secretKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { httpAgent: this.httpAgent, httpsAgent: this.httpsAgent, connectionTimeout: 10_000 },
    };
    this.client = new S3Client({ ...base, maxAttempts: opts.maxAttempts ?? 5, retryStrategy: new BackoffRetryStrategy(opts.maxAttempts ?? 5) });
    const endpoint = new URL(opts.endpoint);
    this.raw =
      endpoint.protocol === 'http:'
        ? new RawHttpPool(endpoint.hostname.replace(/^\[(.*)\]$/, '$1'), Number(endpoint.port || 80), maxSockets, 60_000)
        : null;
    this.fast = new FastS3(
      opts.endpoint,
      opts.accessKey,
      opts.secretKey,
      opts.region ?? 'us-east-1',
      endpoint.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
      opts.maxAttempts ?? 5,
      this.raw,
    );
  }

  /** The hot calls (GET/HEAD/PUT/DELETE/copy/list), signed by hand (see s3-fast.ts). */
  private readonly fast: FastS3;
  /** Where GET and HEAD go on a plain-http endpoint (raw-http.ts). */
  private readonly raw: RawHttpPool | null;
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

  async listBuckets(): Promise<{ name: string; creationDate: Date }[]> {
    try {
      const r = await this.client.send(new ListBucketsCommand({}));
      return (r.Buckets ?? []).map((b) => ({ name: b.Name!, creationDate: b.CreationDate ?? new Date(0) }));
    } catch (e) {
      throw mapError(e);
    }
  }

  async createBucket(bucket: string): Promise<void> {
    // S3's rules here, not the store's: versitygw (v1.8.0) creates 'a..b', which S3 and MinIO refuse, and a bucket
    // made through one backend must stay valid on any other (migration, a later move to S3).
    checkBucketName(bucket);
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: bucket }));
    } catch (e) {
      throw mapError(e, { bucket });
    }
  }

  async bucketExists(bucket: string): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
      return true;
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || status === 400) return false;
      throw mapError(e, { bucket });
    }
  }

  async deleteBucket(bucket: string): Promise<void> {
    try {
      await this.client.send(new DeleteBucketCommand({ Bucket: bucket }));
    } catch (e) {
      throw mapError(e, { bucket });
    }
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
  async rawPut(bucket: string, key: string, opts: PutOptions, first: Buffer): Promise<RawPut | null> {
    checkStoredKey(bucket, key);
    const headers = metaHeaders(opts.meta);
    if (opts.ifMatch !== undefined) headers['if-match'] = quote(opts.ifMatch);
    if (opts.ifNoneMatch !== undefined) headers['if-none-match'] = opts.ifNoneMatch;
    const target = this.fast.rawPutHead(bucket, key, opts.size, headers);
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
          throw fastError({ status: a.status, headers: a.headers, body: undefined as unknown as Readable, errorCode, errorMessage }, { bucket, key });
        }
        return { etag: unquote(a.headers.etag), ...versionOf(a.headers) };
      },
    };
  }

  async getObject(
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
        ? await this.fast.call('GET', bucket, key, headers)
        : await this.fast.send({ method: 'GET', bucket, key, headers, query: { versionId } });
    if (r.status >= 300 && refusedNull(versionId, r.status)) return readNullVersion(key, () => this.getObject(bucket, key, range));
    if (r.status >= 300) throw versionError(r, { bucket, key }, versionId);
    return { body: r.body, info: this.fastInfo(key, r.headers) };
  }

  async getBuffer(bucket: string, key: string): Promise<{ data: Buffer; info: ObjectInfo }> {
    const { body, info } = await this.getObject(bucket, key);
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
    for (let attempt = 1; ; attempt++) {
      const r = await this.fast.send({ method: 'PUT', bucket: dstBucket, key: dstKey, headers });
      if (r.status >= 300 && refusedNull(opts.srcVersionId, r.status)) {
        const { srcVersionId: _, ...rest } = opts;
        return copyNullVersion(srcKey, opts.ifMatch, () => this.headObject(srcBucket, srcKey), (etag) => this.copyObject(srcBucket, srcKey, dstBucket, dstKey, { ...rest, ifMatch: etag }));
      }
      if (r.status >= 300) throw fastError(r, ctx);
      // S3 may answer 200 and report a failure in the body (a copy that failed after the headers were sent).
      const text = await readText(r.body).catch((e) => {
        throw mapError(e, ctx);
      });
      const errorCode = /<Error>[\s\S]*?<Code>([^<]+)<\/Code>/.exec(text)?.[1];
      if (errorCode) {
        if (attempt < this.maxAttempts && RETRY_IN_BODY.has(errorCode)) {
          await new Promise((res) => setTimeout(res, Math.floor(Math.random() * Math.min(5000, 100 * 2 ** attempt))));
          continue;
        }
        throw fastError({ ...r, status: 500, errorCode, errorMessage: /<Message>([^<]*)<\/Message>/.exec(text)?.[1] }, ctx);
      }
      const etag = /<ETag>([^<]*)<\/ETag>/.exec(text)?.[1];
      return { etag: unquote(etag?.replace(/&#34;|&quot;/g, '"')), ...versionOf(r.headers) };
    }
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
    try {
      const r = await this.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: meta }));
      return r.UploadId!;
    } catch (e) {
      throw mapError(e, { bucket, key });
    }
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
    let PartNumberMarker: string | undefined;
    try {
      for (;;) {
        const r = await this.client.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumberMarker }));
        for (const p of r.Parts ?? []) if (p.PartNumber !== undefined) out.push({ partNumber: p.PartNumber, etag: unquote(p.ETag) });
        if (!r.IsTruncated || !r.NextPartNumberMarker) break;
        PartNumberMarker = r.NextPartNumberMarker;
      }
    } catch (e) {
      throw mapError(e, { bucket, key, uploadId });
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
    try {
      const r = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: quote(p.etag) })) },
          IfMatch: cond.ifMatch === undefined ? undefined : quote(cond.ifMatch),
          IfNoneMatch: cond.ifNoneMatch,
        }),
      );
      return r.VersionId ? { etag: unquote(r.ETag), versionId: r.VersionId } : { etag: unquote(r.ETag) };
    } catch (e) {
      throw mapError(e, { bucket, key, uploadId });
    }
  }

  async abortMultipart(bucket: string, key: string, uploadId: string): Promise<void> {
    checkStoredKey(bucket, key);
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
    } catch (e) {
      throw mapError(e, { bucket, key, uploadId });
    }
  }

  async listMultipartUploads(bucket: string): Promise<{ key: string; uploadId: string; initiated: Date }[]> {
    const out: { key: string; uploadId: string; initiated: Date }[] = [];
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    try {
      for (;;) {
        const r = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker, UploadIdMarker, EncodingType: 'url' }),
        );
        for (const u of r.Uploads ?? [])
          out.push({ key: urlDecode(u.Key)!, uploadId: u.UploadId!, initiated: u.Initiated ?? new Date(0) });
        if (!r.IsTruncated) break;
        KeyMarker = urlDecode(r.NextKeyMarker);
        UploadIdMarker = r.NextUploadIdMarker;
        if (!KeyMarker && !UploadIdMarker) break;
      }
    } catch (e) {
      throw mapError(e, { bucket });
    }
    // S3 lists by key then initiation time; MinIO does not sort: normalize.
    return out.sort(
      (a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)) || a.initiated.getTime() - b.initiated.getTime(),
    );
  }

  close(): Promise<void> {
    this.client.destroy();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.raw?.close();
    return Promise.resolve();
  }
}

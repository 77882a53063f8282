import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { S3Error } from '../errors.ts';
import { RawUnsupported, type RawHttpPool, type RawMethod } from './raw-http.ts';
import { requestHead } from './raw-message.ts';
import { awsChunkedBody, awsChunkedHeaders } from './aws-chunked-body.ts';
import { EMPTY_SHA256, UNSIGNED_PAYLOAD, deriveSigningKey, signString, stringToSign, uriEncode } from '../s3/sigv4.ts';
import { errorFields } from './s3-xml.ts';

/**
 * A minimal SigV4 client for every call of the S3 backend. Made for the hot paths (GET/HEAD of one object, PUT
 * (object, part, copy), DELETE, ListObjectsV2): the AWS SDK v3 spends about 3 CPU-ms of middleware per call on this
 * machine (bench/results/profile.md), more than the rest of a small GET; this path signs and sends the request
 * itself. The rare calls (buckets, multipart create/complete/abort/list) came onto it too, so that the gateway never
 * loads @aws-sdk/client-s3 (~21 MiB RSS on import, issue #22).
 *
 * Payload signing, as the SDK did: no body => the empty hash; a Buffer body => its SHA-256 (signed, so the backend
 * refuses a body altered in transit); a streamed body => UNSIGNED-PAYLOAD with a Content-Length (no chunked
 * encoding, no checksums: the ciphertext is authenticated by the format) to a store known to drop a body cut short
 * (MinIO, AWS S3: the `Server` header of its answers), else aws-chunked with a CRC32 trailer (aws-chunked-body.ts:
 * versitygw commits a cut-short raw body; the framing costs the gateway ~0.3 CPU-ms/MiB, so it is not used where it
 * is not needed); `Expect: 100-continue` from 1 MiB on so a refused request (precondition, auth) does not send the
 * body first.
 */
export interface FastResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

/** send()'s answer: an error answer (status 300 and up) with what its `<Error>` body said. */
export interface FastAnswer extends FastResponse {
  errorCode?: string;
  errorMessage?: string;
  /** Every field of the `<Error>` document (s3-xml.ts errorFields); undefined for a success. */
  errorFields?: Record<string, string>;
}

export interface FastRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** '' for the service itself (ListBuckets: the path '/'). */
  bucket: string;
  /** Undefined for a bucket-level request. */
  key?: string;
  /** Query parameters (unencoded); signed and sent in canonical order. */
  query?: Record<string, string>;
  /** Extra request headers, names lower-case. */
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  /** Content-Length of a Readable body (required with one). */
  size?: number;
  /**
   * The answer's body is handed on as a stream (getObject): such a GET may hold its connection for a whole download,
   * so it goes through the pool of streams; every other request through the pool of short exchanges (rawFor).
   */
  stream?: boolean;
}

const RETRY_STATUS = new Set([500, 502, 503, 504]);
const PEER_CLOSED = new Set(['ECONNRESET', 'EPIPE']);
const RETRY_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET']);
const EXPECT_CONTINUE_FROM = 1024 * 1024;
const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
const TIMEOUT_MS = 60_000;

/** SigV4's canonical query string (URI-encoded, sorted by name then value), also the request's own query. */
function canonicalQuery(q: Record<string, string> | undefined): string {
  if (!q) return '';
  return Object.entries(q)
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

export class FastS3 {
  private readonly url: URL;
  private readonly request: typeof http.request;
  constructor(
    endpoint: string,
    private readonly accessKey: string,
    private readonly secretKey: string,
    private readonly region: string,
    private readonly agent: http.Agent,
    private readonly maxAttempts = 5,
    /** GETs whose body is streamed on (`stream`) go through this pool when given (plain-http backends; rawFor). */
    private readonly raw: RawHttpPool | null = null,
    /** How streamed bodies go: 'auto' (raw to MinIO and S3, else aws-chunked), or always one way. */
    private readonly streams: 'auto' | 'aws-chunked' | 'content-length' = 'auto',
    /**
     * Every other request rawFor takes (HEAD, a GET read whole, PUT and DELETE with a Buffer body): a pool of their
     * own, so that none of them waits behind downloads holding the stream pool's sockets — a download's header or
     * key read included, which would otherwise wait for one of those downloads to end.
     */
    private readonly rawShort: RawHttpPool | null = raw,
  ) {
    this.url = new URL(endpoint);
    this.request = this.url.protocol === 'https:' ? (https.request) : http.request;
  }

  /** The store's `Server` header, from its last answer (undefined before the first). */
  private server: string | undefined;

  /** Path-style URI of a bucket or an object, encoded the way SigV4 canonicalises it (slashes kept). */
  private path(bucket: string, key?: string): string {
    const base = this.url.pathname.replace(/\/$/, '');
    return key === undefined ? `${base}/${uriEncode(bucket)}` : `${base}/${uriEncode(bucket)}/${uriEncode(key, true)}`;
  }

  /** Signing key per day (an HMAC chain of four): cached, it is the same for every request of the day. */
  private keyCache: { date: string; key: Buffer } | null = null;
  private signingKey(date: string): Buffer {
    if (this.keyCache?.date !== date) this.keyCache = { date, key: deriveSigningKey(this.secretKey, date, this.region) };
    return this.keyCache.key;
  }

  private sign(method: string, path: string, query: string, payloadHash: string, extra: Record<string, string>): Record<string, string> {
    const now = new Date();
    const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const date = amzDate.slice(0, 8);
    const headers: Record<string, string> = { host: this.url.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate, ...extra };
    // 'expect' is hop-by-hop and may be handled by proxies: never signed (as the SDK does).
    const names = Object.keys(headers).filter((n) => n !== 'expect').sort();
    const canonical = names.map((n) => `${n}:${headers[n].trim().replace(/\s+/g, ' ')}\n`).join('');
    const signed = names.join(';');
    const request = `${method}\n${path}\n${query}\n${canonical}\n${signed}\n${payloadHash}`;
    const scope = `${date}/${this.region}/s3/aws4_request`;
    const signature = signString(this.signingKey(date), stringToSign(amzDate, scope, request));
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${this.accessKey}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
    return headers;
  }

  /** True when rawPutHead() would give a head now (a plain-http store known to drop a body cut short). */
  rawPutReady(): boolean {
    return this.url.protocol === 'http:' && (this.streams === 'content-length' || (this.streams === 'auto' && dropsShortBodies(this.server)));
  }

  /**
   * The signed head of a PUT whose body is written to a socket of its own (raw-http.ts openRawUpload): exactly
   * `size` bytes, UNSIGNED-PAYLOAD with that Content-Length, which only a store that drops a body cut short may get
   * (rawPutReady; else null). No Expect: the body follows the head at once (a refusal is read when it comes).
   */
  rawPutHead(bucket: string, key: string, size: number, headers: Record<string, string>, q?: Record<string, string>): { host: string; port: number; head: string } | null {
    if (!this.rawPutReady()) return null;
    const path = this.path(bucket, key);
    const query = canonicalQuery(q);
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) extra[k.toLowerCase()] = v;
    extra['content-length'] = String(size);
    const signed = this.sign('PUT', path, query, UNSIGNED_PAYLOAD, extra);
    return { host: this.url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(this.url.port || 80), head: requestHead('PUT', query ? `${path}?${query}` : path, signed) };
  }

  /**
   * Over the raw pool (raw-http.ts). An answer it does not handle (another transfer coding, HTTP/1.0, ...) to a
   * GET or HEAD is asked again through node:http; to a PUT or DELETE, which may have taken effect, it is an error
   * that is not retried (send: no code) — such requests come here only for a store known to answer HTTP/1.1
   * with a length (rawFor).
   */
  private async onceRaw(raw: RawHttpPool, method: RawMethod, path: string, query: string, payloadHash: string, extra: Record<string, string>, body?: Buffer): Promise<FastResponse> {
    const headers = this.sign(method, path, query, payloadHash, extra);
    try {
      const r = await raw.request(method, query ? `${path}?${query}` : path, headers, body);
      return { status: r.status, headers: r.headers, body: r.body };
    } catch (e) {
      if (e instanceof RawUnsupported && (method === 'GET' || method === 'HEAD')) return this.once(method, path, query, EMPTY_SHA256, extra);
      throw e;
    }
  }

  /**
   * The raw pool for this request, or null for node:http: GET and HEAD without a body on any plain-http store
   * (a streamed GET through the stream pool, the rest through the short one);
   * PUT and DELETE with at most a Buffer body once the store has answered as MinIO or S3 (whose answers the pool
   * reads; node:http's ClientRequest, agent and parser were 0.2–0.6 CPU-ms of a small PUT here). POST (multipart
   * completion, batch delete) and streamed bodies stay on node:http.
   */
  private rawFor(r: FastRequest): RawHttpPool | null {
    if (r.body !== undefined && !Buffer.isBuffer(r.body)) return null;
    if (r.method === 'GET' || r.method === 'HEAD') return r.body !== undefined ? null : r.stream && r.method === 'GET' ? this.raw : this.rawShort;
    return (r.method === 'PUT' || r.method === 'DELETE') && dropsShortBodies(this.server) ? this.rawShort : null;
  }

  private once(method: string, path: string, query: string, payloadHash: string, extra: Record<string, string>, body?: Buffer | Readable): Promise<FastResponse> {
    return new Promise((resolve, reject) => {
      const headers = this.sign(method, path, query, payloadHash, extra);
      const stream = body !== undefined && !Buffer.isBuffer(body) ? body : undefined;
      const req = this.request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname,
          port: this.url.port,
          method,
          path: query ? `${path}?${query}` : path,
          headers,
          agent: this.agent,
        },
        (res) => {
          if (stream && !req.writableFinished) {
            // Answered before the whole body was sent (a refused precondition, an error): stop sending; the
            // connection cannot be reused for another request, close it once the answer is read.
            stream.unpipe(req);
            const close = () => req.destroy();
            res.once('end', close);
            res.once('close', close);
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
        },
      );
      const timeout = () => req.setTimeout(TIMEOUT_MS, () => req.destroy(Object.assign(new Error('backend request timed out'), { code: 'ETIMEDOUT' })));
      // The store broke the connection while the body was still being written (a write that failed, or a stream not
      // yet handed over whole): it cannot have committed it (see bodyNotSent). Not our own abort: a producer's error
      // destroys the request with that error instead.
      req.on('error', (e: Error & { code?: string; syscall?: string }) =>
        reject(
          body !== undefined && PEER_CLOSED.has(e.code ?? '') && (e.syscall === 'write' || !req.writableFinished)
            ? Object.assign(e, { bodyNotSent: true })
            : e,
        ),
      );
      if (!stream) {
        timeout();
        req.end(body);
        return;
      }
      // Streamed body: no idle timeout while the producer (a client upload) may be slow; armed once it is sent.
      // A failing producer aborts the request, so the backend never commits a short object.
      const onError = (e: unknown) => req.destroy(e instanceof Error ? e : new Error(String(e)));
      stream.once('error', onError);
      req.once('finish', () => {
        stream.off('error', onError);
        timeout();
      });
      req.once('close', () => stream.off('error', onError));
      // A producer that ends before the declared length would leave the request waiting for bytes that never come
      // (until the idle timeout); abort it at once instead, so the store commits nothing.
      const declared = Number(headers['content-length']);
      const pipe = () => {
        let seen = 0;
        stream.on('data', (c: Buffer) => void (seen += c.length));
        stream.once('end', () => {
          if (seen < declared) req.destroy(new Error(`request body ended after ${seen} of its declared ${declared} bytes`));
        });
        stream.pipe(req);
      };
      if (!headers.expect) {
        pipe();
        return;
      }
      // Expect: 100-continue: send the body on 100 Continue, or after 1 s without an answer (as the SDK does, for
      // servers that ignore Expect); not at all when the final answer comes first.
      let started = false;
      const start = () => {
        clearTimeout(wait);
        if (started || req.destroyed) return;
        started = true;
        pipe();
      };
      const wait = setTimeout(start, 1000);
      req.once('continue', start);
      req.once('response', () => {
        started = true;
        clearTimeout(wait);
      });
      req.once('close', () => clearTimeout(wait));
    });
  }

  /**
   * One request, with retries (exponential backoff, full jitter) on network errors, 5xx and SlowDown when the
   * request can be replayed (no body, or a Buffer body; a stream is sent once). A non-2xx answer is returned
   * with its body read: `errorCode` and the other fields from the S3 error XML.
   */
  async send(r: FastRequest): Promise<FastAnswer> {
    const path = this.path(r.bucket, r.key);
    const query = canonicalQuery(r.query);
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers ?? {})) extra[k.toLowerCase()] = v;
    let payloadHash = EMPTY_SHA256;
    let body = r.body;
    const replayable = r.body === undefined || Buffer.isBuffer(r.body);
    if (Buffer.isBuffer(r.body)) {
      payloadHash = createHash('sha256').update(r.body).digest('hex');
      extra['content-length'] = String(r.body.length);
    } else if (r.body) {
      if (r.size === undefined) throw new Error('FastS3: a streamed body needs its size');
      if (this.streams === 'aws-chunked' || (this.streams === 'auto' && !dropsShortBodies(this.server))) {
        payloadHash = STREAMING_UNSIGNED_TRAILER;
        Object.assign(extra, awsChunkedHeaders(r.size));
        body = awsChunkedBody(r.body, r.size);
      } else {
        payloadHash = UNSIGNED_PAYLOAD;
        extra['content-length'] = String(r.size);
      }
      if (r.size >= EXPECT_CONTINUE_FROM) extra.expect = '100-continue';
    } else if (r.method === 'PUT' || r.method === 'POST') {
      extra['content-length'] = '0'; // else node sends Transfer-Encoding: chunked
    }
    for (let attempt = 1; ; attempt++) {
      let res: FastResponse;
      try {
        const raw = this.rawFor(r);
        res = raw
          ? await this.onceRaw(raw, r.method as RawMethod, path, query, payloadHash, extra, r.body as Buffer | undefined)
          : await this.once(r.method, path, query, payloadHash, extra, body);
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (replayable && attempt < this.maxAttempts && RETRY_CODES.has(code)) {
          await backoff(attempt, false);
          continue;
        }
        throw new S3Error('ServiceUnavailable', `backend error: network: ${(e as Error).message}`, {}, { cause: e });
      }
      if (typeof res.headers.server === 'string') this.server = res.headers.server;
      // A HEAD answer has no body, but its socket only goes back to the pool once the message is read to the end.
      if (r.method === 'HEAD') res.body.resume();
      if (res.status < 300) return res;
      const text = r.method === 'HEAD' ? '' : await readText(res.body, 64 * 1024).catch(() => '');
      const errorCode = /<Code>([^<]+)<\/Code>/.exec(text)?.[1];
      const errorMessage = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
      if (replayable && attempt < this.maxAttempts && (RETRY_STATUS.has(res.status) || errorCode === 'SlowDown')) {
        await backoff(attempt, res.status === 503 || errorCode === 'SlowDown');
        continue;
      }
      return { ...res, errorCode, errorMessage, errorFields: errorFields(text) };
    }
  }

  /** GET or HEAD of one object (see send). */
  call(method: 'GET' | 'HEAD', bucket: string, key: string, extra: Record<string, string> = {}, stream = false) {
    return this.send({ method, bucket, key, headers: extra, stream });
  }
}

/**
 * The store closed the connection (reset, broken pipe) before the body was sent whole: it received less than the
 * declared length and committed nothing (MinIO, S3; others get streamed bodies aws-chunked, which ensures it; a
 * Buffer body is signed with its SHA-256, so a store takes none of it short). For a Buffer body, after its retries.
 */
export function bodyNotSent(e: unknown): boolean {
  return e instanceof S3Error && (e.cause as { bodyNotSent?: boolean } | undefined)?.bodyNotSent === true;
}

/**
 * Stores that refuse a request whose body ends before its Content-Length (MinIO, S3: IncompleteBody, or nothing
 * when the connection drops) and commit nothing. A store not known to (versitygw v1.8.0 commits what it received;
 * a proxy's own Server header; no answer seen yet) gets aws-chunked framing.
 */
function dropsShortBodies(server: string | undefined): boolean {
  return server !== undefined && /^(MinIO|AmazonS3)\b/.test(server);
}

/** Exponential backoff with full jitter (base 100 ms, 400 ms when throttled, cap 5 s): every retry of the S3 backend. */
export function backoff(attempt: number, throttled: boolean): Promise<void> {
  const base = throttled ? 400 : 100;
  return new Promise((r) => setTimeout(r, Math.floor(Math.random() * Math.min(5000, base * 2 ** attempt))));
}

/** The whole (small) body of a response as text; past `max` characters the rest is drained and dropped. */
export async function readText(body: Readable, max = 64 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    if (n < max) {
      chunks.push(c);
      n += c.length;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

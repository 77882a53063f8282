import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, type Readable, type Writable } from 'node:stream';
import type { Backend } from '../backend/types.ts';
import { S3Error } from '../errors.ts';
import type { HeaderChecksums } from '../engine/index.ts';
import type { KeyService } from '../keys/service.ts';
import { ChecksumSet, decodeDigest, expectedFromRequest, type ChecksumResult, type ExpectedChecksums } from '../s3/checksum.ts';
import { checkPlainPayload, createPayloadDecoder } from '../s3/chunked.ts';
import { readBodyLimited } from '../s3/xml.ts';
import { verifyRequest, type AuthResult } from '../s3/sigv4.ts';
import { isSigV2, verifySigV2 } from '../s3/sigv2.ts';
import { addressOf, type S3Request } from './request.ts';
import { clientWaits } from './expect-continue.ts';
import { bodyTakenByPump } from './native-response.ts';
import { sendError } from './respond.ts';
import { refusal, routeOf } from './routes.ts';
import { defaultOf } from '../ops/config.ts';
import { dataplaneUnavailable, nativeDataplane } from '../engine/dataplane.ts';
import { InlinePolicy, MultipartStore, ObjectStore, type BestEffortReport } from '../store/index.ts';
import { readExactly } from '../store/streams.ts';
import type { User, Users } from '../auth/users.ts';

export interface GatewayOptions {
  backend: Backend;
  keys: KeyService;
  users: Users;
  metaBucket: string;
  region: string;
  blockSize: number;
  /** See StartOptions.inlineHeaderMax (default: INLINE_HEADER_MAX). */
  inlineHeaderMax?: number;
  /** See StartOptions.dataPlane (default 'auto'). */
  dataPlane?: 'auto' | 'node';
  /** Host suffixes for virtual-hosted-style requests (bucket.<domain>). */
  domains: string[];
  /**
   * Content-Security-Policy of every response ('sandbox' when unset; '' or 'off' = none). Beside
   * X-Content-Type-Options: nosniff, always sent: an object served from the gateway's origin must not run as it.
   */
  objectCsp?: string;
  /** Failures of best-effort steps of the object layer: logged and counted. */
  report?: BestEffortReport;
  /** How long an opened header (with its DEKs) stays cached; at most the key cache TTL (start.ts). */
  headerCacheTtlMs?: number;
  /** Accept Signature Version 2 (header and query-string auth), as MinIO does; the sigv2 setting (default on). */
  sigv2?: boolean;
  /** Called once per finished request (access log, metrics). */
  onRequestDone?: (r: S3Request, status: number, ms: number, error?: S3Error) => void;
}

export interface Upload {
  /** Decoded, authenticated plaintext body. */
  body: Readable;
  /** Plaintext length the client declared. */
  size: number;
  /** Runs after the last byte: verifies checksums (throws BadDigest) and returns what to store. */
  finish: () => Promise<HeaderChecksums>;
  /** The checksums computed (after finish). */
  result: () => HeaderChecksums;
  /** What will be stored when the upload verifies, if already known before the body (no trailer). */
  known?: HeaderChecksums;
}

/** A small payload read whole and verified (Gateway.wholePayload): its bytes and the checksums to store and answer. */
export interface WholeUpload {
  plain: Buffer;
  checksums: HeaderChecksums;
}

/** What a verified upload stores and answers: the MD5 when the client sent one, and the checksum it named. */
function verifiedChecksums(expected: ExpectedChecksums, got: ChecksumResult): HeaderChecksums {
  const out: HeaderChecksums = got.md5 ? { md5: got.md5.toString('hex') } : {};
  const alg = expected.algorithm;
  if (alg && got.checksums[alg]) Object.assign(out, { algorithm: alg, value: got.checksums[alg], type: 'FULL_OBJECT' });
  return out;
}

/** The S3 front end: authentication, dispatch to handlers, one error path. */
export class Gateway {
  readonly backend: Backend;
  readonly keys: KeyService;
  readonly users: Users;
  readonly store: ObjectStore;
  readonly mpu: MultipartStore;
  readonly metaBucket: string;
  readonly region: string;
  private readonly auth = new WeakMap<S3Request, AuthResult>();
  private readonly sigv2: boolean;
  /** The Content-Security-Policy value sent ('' = none). */
  readonly csp: string;
  inflight = 0;
  /** Requests finished since start (src/ops/memory-trim.ts: was there activity since its last trim). */
  served = 0;

  constructor(readonly opts: GatewayOptions) {
    this.backend = opts.backend;
    this.keys = opts.keys;
    this.users = opts.users;
    this.metaBucket = opts.metaBucket;
    this.region = opts.region;
    const csp = (opts.objectCsp ?? defaultOf('objectCsp')).trim();
    this.csp = csp === 'off' ? '' : csp;
    this.sigv2 = opts.sigv2 ?? defaultOf('sigv2');
    this.store = new ObjectStore(opts.backend, opts.keys, opts.metaBucket, opts.blockSize, opts.headerCacheTtlMs, undefined, undefined, opts.report);
    if (opts.inlineHeaderMax !== undefined) this.store.inline = new InlinePolicy(opts.backend, opts.inlineHeaderMax);
    this.store.dataPlane = opts.dataPlane ?? 'auto';
    // Said once at start: 'auto' without the addon serves every body through Node, as 'node' does.
    if (this.store.dataPlane === 'auto' && !nativeDataplane()) opts.report?.log?.warn({ why: dataplaneUnavailable() }, 'native data plane unavailable: bodies move through Node');
    this.mpu = new MultipartStore(this.store);
  }

  /** The request's verified signature (after dispatch authenticated it): what a native upload's chunk signatures chain from. */
  authOf(r: S3Request): AuthResult | undefined {
    return this.auth.get(r);
  }

  /** The plaintext body of an upload request: every SigV4 payload mode decoded and verified, checksums on. */
  payload(r: S3Request): Upload {
    const auth = this.auth.get(r)!;
    const headers = r.req.headers;
    const streaming = auth.payloadMode.startsWith('streaming');
    const lengthHeader = streaming ? r.header('x-amz-decoded-content-length') : r.header('content-length');
    if (lengthHeader === undefined) throw new S3Error('MissingContentLength');
    if (!/^\d{1,16}$/.test(lengthHeader)) throw new S3Error('InvalidArgument', 'Invalid content length.');
    const size = Number(lengthHeader);
    if (size > 5 * 1024 ** 4) throw new S3Error('EntityTooLarge');
    const decoder = createPayloadDecoder(auth, headers);
    const trailerNames = (r.header('x-amz-trailer') ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
    const expected = expectedFromRequest(headers, trailerNames);
    const sums = ChecksumSet.forRequest(expected);
    const tap = sums.stream();
    // Not pipeline(): a failed decoder must not destroy the request socket, so the error response can still go out.
    feed(r.req, decoder);
    const body = pipeline(decoder, tap, () => {}) as unknown as Readable;
    let result: HeaderChecksums = {};
    return {
      body,
      size,
      finish: async () => {
        result = verifiedChecksums(expected, await sums.verify(expected, decoder.trailers));
        return result;
      },
      result: () => result,
      known:
        expected.trailerName !== undefined
          ? undefined
          : expected.algorithm && expected.value
            ? { algorithm: expected.algorithm, value: expected.value, type: 'FULL_OBJECT' }
            : expected.algorithm
              ? undefined
              : {},
    };
  }

  /**
   * A small plain payload (signed or UNSIGNED-PAYLOAD, Content-Length framing, no trailer) of at most `max` bytes,
   * read whole and verified in one piece: no decoder or checksum stream per request (issue #22: a 4 KiB PUT spent
   * ~0.5 ms setting up and running them). The same checks as payload()'s: the length (readExactly), the signed SHA-256
   * (chunked.ts checkPlainPayload) and Content-MD5 / x-amz-checksum-* (ChecksumSet.verify). Null when the request is not
   * such a payload, or when the store's whole-body budget is spent: then payload(). `release` gives the budget back
   * once the caller is done with the bytes.
   */
  wholePayload(r: S3Request, max: number): { read: () => Promise<WholeUpload>; release: () => void } | null {
    const auth = this.auth.get(r)!;
    if (auth.payloadMode !== 'signed' && auth.payloadMode !== 'unsigned') return null;
    if (r.header('x-amz-trailer') !== undefined || r.header('transfer-encoding') !== undefined) return null;
    const lengthHeader = r.header('content-length');
    if (lengthHeader === undefined || !/^\d{1,16}$/.test(lengthHeader)) return null;
    const size = Number(lengthHeader);
    if (size > max || !this.store.bodyBudget.take(size)) return null;
    let released = false;
    const release = () => {
      if (!released) this.store.bodyBudget.give(size);
      released = true;
    };
    const read = async (): Promise<WholeUpload> => {
      const expected = expectedFromRequest(r.req.headers);
      const plain = await readExactly(r.req, size).catch((e: unknown) => {
        // a client gone before the whole body (a reset, an abort) sent an incomplete body, as payload() says
        throw e instanceof S3Error ? e : new S3Error('IncompleteBody', undefined, {}, { cause: e });
      });
      checkPlainPayload(auth, plain);
      const sums = ChecksumSet.forRequest(expected);
      sums.update(plain);
      return { plain, checksums: verifiedChecksums(expected, await sums.verify(expected)) };
    };
    return { read, release };
  }

  /** Read a small XML body (Complete, Delete, CreateBucket) through the same payload verification. */
  async readSmallBody(r: S3Request, max: number): Promise<Buffer> {
    const auth = this.auth.get(r)!;
    const declared = Number(r.header(auth.payloadMode.startsWith('streaming') ? 'x-amz-decoded-content-length' : 'content-length') ?? '0');
    if (declared > max) throw new S3Error('MaxMessageLengthExceeded');
    const md5 = r.header('content-md5');
    const want = md5 === undefined ? undefined : decodeDigest(md5, 16);
    if (md5 !== undefined && !want) throw new S3Error('InvalidDigest');
    const decoder = createPayloadDecoder(auth, r.req.headers);
    feed(r.req, decoder);
    const body = await readBodyLimited(decoder, max);
    // A SigV2 request signs its Content-MD5 but not its body: checking one against the other is what binds a
    // DeleteObjects list or a Complete part list to the signature (as the SHA-256 does under SigV4).
    if (want && !want.equals(createHash('md5').update(body).digest())) throw new S3Error('BadDigest');
    return body;
  }

  /**
   * Who is calling: the one door for both signature versions, before any authorization (which then follows the
   * same user record whichever way the request was signed). SigV2 is recognised by its own Authorization scheme
   * or query parameters; with the sigv2 setting off it goes to the SigV4 verifier, which refuses it as S3 does
   * (InvalidRequest, "the authorization mechanism you have provided is not supported").
   */
  private authenticate(r: S3Request, virtualHosted: boolean): AuthResult {
    const req = r.req;
    if (this.sigv2 && isSigV2(req.headers, r.rawQuery)) {
      // distinct header fields: SigV2 joins repeated x-amz-* fields with a bare ',' (Node joins with ', ')
      const resourcePath = virtualHosted ? `/${r.bucket}${r.rawPath}` : r.rawPath;
      return verifySigV2({ method: r.method, path: r.rawPath, query: r.rawQuery, headers: req.headersDistinct, resourcePath }, this.users.secretFor);
    }
    // The credential scope must name this gateway's region (S3: AuthorizationHeaderMalformed naming the expected
    // one), except for GetBucketLocation: clients that do not know the region yet sign that with us-east-1, and
    // MinIO accepts any region for it too.
    const region = r.op === 'GetBucketLocation' ? undefined : this.region;
    return verifyRequest({ method: r.method, path: r.rawPath, query: r.rawQuery, headers: req.headers }, this.users.secretFor, { region });
  }

  /** Node request listener: the hot path reads and writes Node streams directly. */
  handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const id = requestId();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q >= 0 ? url.slice(0, q) : url;
    const rawQuery = q >= 0 ? url.slice(q + 1) : '';
    const r: S3Request = {
      id,
      req,
      res,
      method: req.method ?? 'GET',
      rawPath,
      rawQuery,
      query: new URLSearchParams(rawQuery),
      bucket: '',
      key: '',
      user: undefined as unknown as User,
      op: 'Unknown',
      header: (name) => {
        const v = req.headers[name];
        return Array.isArray(v) ? v.join(',') : v;
      },
      bytesIn: 0,
      bytesOut: 0,
    };
    res.setHeader('x-amz-request-id', id);
    res.setHeader('Server', 'lakecrypt');
    // Object bodies are anyone's uploads: a browser must neither sniff them into HTML nor run them as our origin.
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (this.csp) res.setHeader('Content-Security-Policy', this.csp);
    this.inflight++;
    let error: S3Error | undefined;
    try {
      const addr = addressOf(rawPath, req.headers.host, this.opts.domains);
      r.bucket = addr.bucket;
      r.key = addr.key;
      const route = routeOf(r);
      r.op = route?.op ?? 'Unknown';
      const auth = this.authenticate(r, addr.virtual);
      this.auth.set(r, auth);
      r.user = this.users.get(auth.accessKey)!;
      if (r.bucket) {
        this.users.authorize(r.user, r.bucket, r.op === 'CreateBucket');
        // The meta bucket is out of reach of S3 requests, and looks like a bucket that does not exist (not a 403,
        // which would tell its objects from absent ones). CreateBucket of its name is BucketAlreadyExists, as for a
        // name another account holds: that says nothing the configuration does not (the name is public).
        if (r.bucket === this.metaBucket) {
          throw r.op === 'CreateBucket'
            ? new S3Error('BucketAlreadyExists', undefined, { BucketName: r.bucket })
            : new S3Error('NoSuchBucket', undefined, { BucketName: r.bucket });
        }
      }
      if (!route) throw refusal(r);
      await route.run(this, r);
    } catch (e) {
      // Read (and drop) what the client is still sending, within bounds, so it sees the error response rather
      // than a connection reset halfway through its upload — unless it waits for a 100 Continue still held (it sends
      // nothing until then; the answer goes without one and node:http closes that connection after it) or a pump took
      // the body (node:http reads none of it again: the connection closes after the answer).
      if (!req.complete && !res.headersSent && !clientWaits(req) && !bodyTakenByPump(req)) await drainRequest(req, 2_000, 64 * 1024 * 1024);
      error = sendError(res, e, rawPath, id, r.method);
      if (!req.complete) req.resume();
    } finally {
      this.inflight--;
      this.served++;
      this.opts.onRequestDone?.(r, error?.status ?? res.statusCode, performance.now() - started, error);
    }
  };
}

/** Request ids: 8 random bytes as 16 uppercase hex digits, cut from a pool refilled 128 ids at a time. */
let idPool = '';
let idAt = 0;
export function requestId(): string {
  if (idAt >= idPool.length) {
    idPool = randomBytes(8 * 128).toString('hex').toUpperCase();
    idAt = 0;
  }
  const id = idPool.slice(idAt, idAt + 16);
  idAt += 16;
  return id;
}

/** Pipe the request body into a decoder; errors travel downstream only. */
function feed(req: IncomingMessage, decoder: Writable): void {
  req.on('error', (e) => decoder.destroy(e));
  req.on('aborted', () => decoder.destroy(new S3Error('IncompleteBody')));
  req.pipe(decoder);
}

function drainRequest(req: IncomingMessage, maxMs: number, maxBytes: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', done);
      req.off('error', done);
      req.off('close', done);
      resolve();
    };
    const onData = (b: Buffer) => {
      seen += b.length;
      if (seen > maxBytes) done();
    };
    const timer = setTimeout(done, maxMs);
    req.on('data', onData);
    req.once('end', done);
    req.once('error', done);
    req.once('close', done);
    // The body may have been piped into a decoder that already failed: make sure it flows again.
    req.unpipe();
    req.resume();
  });
}

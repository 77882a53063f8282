/**
 * The client's side of a GET body moved by the native data plane (src/store/native-read.ts): node:http writes the
 * status line and headers, then a pump thread writes exactly Content-Length bytes to the socket's fd, then the
 * response is ended with no body of node's, so the keep-alive connection carries the next request.
 *
 * Only where the bytes on the socket are the bytes of the fd (plain TCP, not TLS) and this response owns the socket
 * (not a pipelined request queued behind another response). While the pump runs, node writes nothing to the socket
 * (the handler owns the response until it ends), and the fd stays open whatever asks to destroy the socket: the
 * request is held until the pump stopped (holdSocket), so no other connection can get that fd number under a
 * running thread.
 */
import type { IncomingMessage } from 'node:http';
import type net from 'node:net';
import { fdOf, holdSocket, nativeDataplane, takePumpSlot } from '../engine/dataplane.ts';
import type { HeaderChecksums } from '../engine/index.ts';
import { decodeDigest, expectedFromRequest, type ExpectedChecksums } from '../s3/checksum.ts';
import type { NativeRead } from '../store/native-read.ts';
import { NativeUploadError, type ChunkSigning, type NativeUploadSource, type NativeVerify } from '../store/native-write.ts';
import { bodyHeld, takeHeldBody } from './expect-continue.ts';
import { startReads, stopReads } from './socket-reads.ts';
import type { AuthResult } from '../s3/sigv4.ts';
import type { S3Request } from './request.ts';

/** The client's plain TCP socket when a native body could be written to it, else null. */
export function nativeClient(r: S3Request): net.Socket | null {
  const socket = r.req.socket;
  if (r.req.method !== 'GET' || fdOf(socket) < 0) return null;
  // a response queued behind another on a pipelined connection is not on the socket yet
  if (r.res.socket !== socket || (socket as net.Socket & { _httpMessage?: unknown })._httpMessage !== r.res) return null;
  return socket;
}

/** Resolve once everything node was asked to write to `s` has gone to the kernel (the pump writes after it). */
function flushed(s: net.Socket): Promise<void> {
  if (s.writableLength === 0) return Promise.resolve();
  return new Promise((resolve, reject) => s.write(Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
}

/** How long a pump waits for either side before it fails: the connection idle time-out, else 2 minutes. */
function idleOf(socket: net.Socket): number {
  const t = (socket as net.Socket & { timeout?: number }).timeout;
  return typeof t === 'number' && t > 0 ? t : 120_000;
}

/**
 * Send the response (its status and headers set by the caller, Content-Length = body.length) with a native body.
 * A failure after the status line rejects (the gateway's error path then destroys the socket: the client sees a
 * cut connection, never a short body that looks whole); a client gone resolves with the socket destroyed.
 */
export async function sendNative(body: NativeRead, r: S3Request, socket: net.Socket): Promise<void> {
  const idleMs = idleOf(socket);
  const fd = fdOf(socket);
  r.res.flushHeaders();
  try {
    await flushed(socket);
  } catch {
    // the client went away before the body: nothing was sent of it
    body.discard();
    r.res.destroy();
    return;
  }
  if (socket.destroyed || fdOf(socket) !== fd) {
    body.discard();
    return;
  }
  const hold = holdSocket(socket, () => body.stop());
  let out: Awaited<ReturnType<NativeRead['send']>>;
  try {
    out = await body.send(fd, idleMs);
  } finally {
    hold.release();
  }
  r.bytesOut += out.bytesOut;
  if (out.error) throw out.error;
  if (out.clientGone || hold.destroyRequested()) {
    r.res.destroy();
    return;
  }
  await new Promise<void>((resolve) => r.res.end(resolve));
}

/** A request body the native data plane may seal: its plaintext size, what it must hash to, what is stored. */
export interface NativeUpload {
  size: number;
  /** Bytes on the wire (Content-Length): `size`, or an aws-chunked body's framed length; -1 in chunked transfer coding. */
  wireSize: number;
  /** Checked by the pump before the last chunk leaves (native-write.ts). */
  verify: NativeVerify;
  /**
   * The checksums stored and answered once it verified (a declared CRC32, else none); null for an aws-chunked body:
   * CRC32, its value the one the pump computed (and checked against the trailer when one came).
   */
  checksums: HeaderChecksums | null;
}

/** An upload's checksums once the pump's answer is in (NativeUpload.checksums). */
export function uploadChecksums(upload: NativeUpload, crc32: number | undefined): HeaderChecksums {
  if (upload.checksums) return upload.checksums;
  if (crc32 === undefined) throw new Error('an aws-chunked upload without its CRC-32');
  const v = Buffer.alloc(4);
  v.writeUInt32BE(crc32);
  return { algorithm: 'CRC32', value: v.toString('base64'), type: 'FULL_OBJECT' };
}

/**
 * A PutObject or UploadPart body the native data plane may seal (src/store/native-write.ts), or null: a body whose
 * checks the pump makes itself, on a plain TCP socket this request owns, with SigV4 header auth and either
 * - Content-Length framing, x-amz-content-sha256 UNSIGNED-PAYLOAD or the payload's hex SHA-256 (the signature covers
 *   that value; the pump hashes the body against it), a Content-MD5 or none (rclone), no trailer, and no checksum but a
 *   declared x-amz-checksum-crc32 with x-amz-sdk-checksum-algorithm CRC32 or none (boto3 and the AWS CLI over http); or
 * - an aws-chunked body of STREAMING-UNSIGNED-PAYLOAD-TRAILER with a Content-Length and an x-amz-checksum-crc32
 *   trailer (the AWS SDK for Go v2), whose framing and trailer the pump reads; or the same inside HTTP chunked
 *   transfer coding with no Content-Length (the JavaScript SDK's stream uploads), when its body was held from its
 *   first byte at its `Expect: 100-continue` (src/server/expect-continue.ts); or
 * - an aws-chunked body of STREAMING-AWS4-HMAC-SHA256-PAYLOAD with a Content-Length (minio-go and mc over http),
 *   no trailer, and a Content-MD5, a declared x-amz-checksum-crc32, both or neither: the pump checks each chunk's
 *   signature, chained from the request's (`auth`, the request's verified SigV4 result), and those digests; or
 * - one of STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER with a Content-Length and an x-amz-checksum-crc32 trailer (the
 *   AWS SDK for Java v2 over http): the chunks' signatures, the trailer's and its CRC32 checked by the pump.
 * Anything else — and anything malformed, which the Node path answers with its own error — is the Node path
 * (g.payload), which decodes and verifies.
 */
export function nativeUploadOf(r: S3Request, auth?: AuthResult): NativeUpload | null {
  const h = r.req.headers;
  if (r.req.method !== 'PUT' || fdOf(r.req.socket) < 0) return null;
  const payload = h['x-amz-content-sha256'];
  if (!/^AWS4-HMAC-SHA256 /.test(h.authorization ?? '') || typeof payload !== 'string') return null;
  const chunked = payload === 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
  const signedTrailer = payload === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
  const signedChunks = payload === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' || signedTrailer;
  if (!chunked && !signedChunks && payload !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(payload)) return null;
  // aws-chunks in chunked transfer coding: the pump reads both framings, from the body's first byte — a body held at its
  // head (src/server/expect-continue.ts holds only those: Transfer-Encoding chunked, no Content-Length, this payload)
  const te = h['transfer-encoding'] !== undefined;
  if (te && !bodyHeld(r.req)) return null;
  // minio-go signs its chunks without naming aws-chunked in Content-Encoding (the Node path goes by the payload mode too)
  if (!signedChunks && chunked !== /aws-chunked/i.test(String(h['content-encoding'] ?? ''))) return null;
  if (!chunked && !signedTrailer && h['x-amz-trailer'] !== undefined) return null;
  if (!chunked && !signedChunks && h['x-amz-decoded-content-length'] !== undefined) return null;
  const cl = h['content-length'];
  const dl = chunked || signedChunks ? h['x-amz-decoded-content-length'] : cl;
  if ((!te && (cl === undefined || !/^\d{1,16}$/.test(cl))) || typeof dl !== 'string' || !/^\d{1,16}$/.test(dl)) return null;
  const size = Number(dl);
  const wireSize = te ? -1 : Number(cl);
  if (size > 5 * 1024 ** 4 || (!te && wireSize < size)) return null;
  const socket = r.req.socket;
  if (r.res.socket !== socket || (socket as net.Socket & { _httpMessage?: unknown })._httpMessage !== r.res) return null;
  let expected: ExpectedChecksums;
  try {
    expected = expectedFromRequest(h);
  } catch {
    return null; // the Node path answers it with the same check's error
  }
  if (!nativeDataplane()?.CRC32) return null;
  // signed chunks: the chain starts at the request's own signature, under its signing key (what the Node path's decoder checks)
  let signing: ChunkSigning | undefined;
  if (signedChunks) {
    if (auth?.payloadMode !== (signedTrailer ? 'streaming-signed-trailer' : 'streaming-signed') || auth.signingKey.length !== 32 || !/^[0-9a-f]{64}$/.test(auth.seedSignature)) return null;
    signing = { signingKey: auth.signingKey, seedSignature: auth.seedSignature, amzDate: auth.amzDate, scope: auth.scope };
  }
  if (chunked || signedTrailer) {
    if (expected.md5 !== undefined) return null;
    // the framing is the pump's to read, the CRC32 trailer its to check (none came: as the Node path, accepted)
    if (expected.trailerName !== 'x-amz-checksum-crc32' || expected.algorithm !== 'CRC32') return null;
    return { size, wireSize, verify: { awsChunked: wireSize, ...(signing ? { signedChunks: signing, signedTrailer: true } : {}) }, checksums: null };
  }
  if (expected.trailerName !== undefined) return null;
  let verify: NativeVerify;
  if (signing) {
    verify = { awsChunked: wireSize, signedChunks: signing };
  } else {
    verify = payload === 'UNSIGNED-PAYLOAD' ? {} : { sha256: Buffer.from(payload, 'hex') };
  }
  // a Content-MD5 (rclone, minio-js): verified by the pump, then the object's ETag as on the Node path
  const md5 = expected.md5 !== undefined ? decodeDigest(expected.md5, 16) : undefined;
  const withMd5: HeaderChecksums = md5 ? { md5: md5.toString('hex') } : {};
  if (md5) verify.md5 = md5;
  if (expected.algorithm === undefined) return { size, wireSize, verify, checksums: withMd5 };
  const crc = expected.algorithm === 'CRC32' && expected.value !== undefined ? decodeDigest(expected.value, 4) : undefined;
  if (!crc) return null;
  return { size, wireSize, verify: { ...verify, crc32: crc.readUInt32BE(0) }, checksums: { ...withMd5, algorithm: 'CRC32', value: crc.toString('base64'), type: 'FULL_OBJECT' } };
}

interface ServerParser {
  remove(): void;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number, connections?: unknown): void;
  resume(): void;
  constructor: { REQUEST: number };
}

/** Requests whose body a pump took: node:http reads none of it again (a drain after a failure would only wait). */
const taken = new WeakSet<IncomingMessage>();

/** A pump took this request's body (whole or not): node:http will read none of it. */
export function bodyTakenByPump(req: IncomingMessage): boolean {
  return taken.has(req);
}

/** A request body taken from node:http for a pump: its source, and how the connection is given back or cut. */
export interface TakenUpload {
  source: NativeUploadSource;
  /** The body was read whole by the pump: node:http reads the connection again (its next request). */
  giveBack(): void;
  /** The body was not read whole: the connection cannot carry another request; it closes after the answer. */
  abandon(): void;
}

/**
 * Take the request body's bytes from node:http: libuv's reads on the client socket stop (src/server/socket-reads.ts)
 * and the body bytes node had already read go first (`pre`) — for a body in chunked transfer coding, the raw bytes
 * kept when its head was parsed, the reads having stopped then (src/server/expect-continue.ts).
 * The socket's fd is held open (holdSocket) until giveBack or abandon; a destroy meanwhile stops the pump.
 */
export function takeNativeUpload(r: S3Request, size: number, verify: NativeVerify = {}): TakenUpload | null {
  const socket = r.req.socket;
  const fd = fdOf(socket);
  if (fd < 0 || socket.destroyed) return null;
  let pre: Buffer;
  if (size < 0) {
    // chunked transfer coding: the body's raw bytes from its first one — those of the head's read, then the socket's,
    // whose reads stopped when the head was parsed (src/server/expect-continue.ts); what node:http decoded is dropped
    const early = takeHeldBody(r.req, r.res);
    if (!early) return null;
    pre = early;
  } else {
    if (!stopReads(socket)) return null;
    // what node:http parsed before the reads stopped is in the request's buffer (only body bytes: at most `size`)
    const parts: Buffer[] = [];
    for (let c = r.req.read() as Buffer | null; c !== null; c = r.req.read() as Buffer | null) parts.push(c);
    pre = Buffer.concat(parts);
  }
  taken.add(r.req);
  const control = new Int32Array(1);
  const hold = holdSocket(socket, () => Atomics.store(control, 0, 1));
  const source: NativeUploadSource = { fd, socket, pre: size >= 0 && pre.length > size ? pre.subarray(0, size) : pre, control, idleMs: idleOf(socket), verify };
  let done = false;
  return {
    source,
    giveBack() {
      if (done) return;
      done = true;
      hold.release();
      if (socket.destroyed) return;
      const req = r.req;
      const parser = (socket as unknown as { parser: ServerParser | null }).parser;
      if (!req.complete && parser) {
        // llhttp still counts the body it never saw: start it afresh, as node:http does for a new connection
        const server = (socket as unknown as { server?: object }).server ?? {};
        const key = Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections');
        const connections = key ? (server as Record<symbol, unknown>)[key] : undefined;
        // Out of the server's connection list first: the list is ordered by the parser's message start time, which
        // initialize() resets, so re-adding a parser still in it leaves a stale entry behind (node's own
        // on_message_begin takes it out the same way). A stale entry outlives the connection with a null socket and
        // breaks server.closeIdleConnections() at shutdown ("Cannot read properties of null (reading
        // '_httpMessage')").
        parser.remove();
        parser.initialize(parser.constructor.REQUEST, { type: 'HTTPINCOMINGMESSAGE', socket }, (server as { maxHeaderSize?: number }).maxHeaderSize ?? 0, 0, connections);
        req.complete = true;
        req.push(null);
      }
      req.resume(); // lets 'end' out, so node:http lets go of the request
      startReads(socket); // the parser resumed too
    },
    abandon() {
      if (done) return;
      done = true;
      r.res.shouldKeepAlive = false;
      r.res.setHeader('Connection', 'close');
      hold.release();
    },
  };
}

/**
 * Seal the request's body through the native data plane when a pump slot is free and node:http gives its socket up
 * (takeNativeUpload): `{ value }` of `seal`, or null when the body was not taken (the caller takes the Node path,
 * the body still unread). After a whole body the connection goes back to node:http; otherwise it closes after the
 * answer, and a client that sent less than its Content-Length or went away gets none (its connection is cut).
 */
export async function withNativeUpload<T>(r: S3Request, upload: NativeUpload, seal: (src: NativeUploadSource) => Promise<T>): Promise<{ value: T } | null> {
  const { size } = upload;
  const slot = takePumpSlot();
  const taken = slot ? takeNativeUpload(r, upload.wireSize, upload.verify) : null;
  if (!taken) {
    slot?.();
    return null;
  }
  try {
    const value = await seal(taken.source);
    taken.giveBack();
    r.bytesIn = size;
    return { value };
  } catch (e) {
    taken.abandon();
    if (e instanceof NativeUploadError && e.clientGone) r.res.destroy();
    throw e;
  } finally {
    slot!();
  }
}

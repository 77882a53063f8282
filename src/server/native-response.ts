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
import type net from 'node:net';
import { fdOf, holdSocket, takePumpSlot } from '../engine/dataplane.ts';
import type { NativeRead } from '../store/native-read.ts';
import { NativeUploadError, type NativeUploadSource } from '../store/native-write.ts';
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

/**
 * A PutObject body the native data plane may seal (src/store/native-write.ts): its plaintext size, or null. Only a
 * body whose bytes on the wire are the object and that has nothing to verify: SigV4 header auth with
 * x-amz-content-sha256 UNSIGNED-PAYLOAD, framed by Content-Length (no Transfer-Encoding, no aws-chunked), no
 * Content-MD5, no x-amz-checksum-* header or trailer, no x-amz-sdk-checksum-algorithm; on a plain TCP socket this
 * request owns. Anything else is the Node path (g.payload), which decodes and verifies.
 */
export function nativeUploadSize(r: S3Request): number | null {
  const h = r.req.headers;
  if (r.req.method !== 'PUT' || fdOf(r.req.socket) < 0) return null;
  if (!/^AWS4-HMAC-SHA256 /.test(h.authorization ?? '') || h['x-amz-content-sha256'] !== 'UNSIGNED-PAYLOAD') return null;
  if (h['transfer-encoding'] !== undefined || /aws-chunked/i.test(String(h['content-encoding'] ?? ''))) return null;
  if (h['content-md5'] !== undefined || h['x-amz-trailer'] !== undefined || h['x-amz-sdk-checksum-algorithm'] !== undefined) return null;
  if (h['x-amz-decoded-content-length'] !== undefined) return null;
  for (const name of Object.keys(h)) if (name.startsWith('x-amz-checksum-')) return null;
  const cl = h['content-length'];
  if (cl === undefined || !/^\d{1,16}$/.test(cl)) return null;
  const size = Number(cl);
  if (size > 5 * 1024 ** 4) return null;
  const socket = r.req.socket;
  if (r.res.socket !== socket || (socket as net.Socket & { _httpMessage?: unknown })._httpMessage !== r.res) return null;
  return size;
}

interface ServerParser {
  remove(): void;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number, connections?: unknown): void;
  resume(): void;
  constructor: { REQUEST: number };
}
type ReadHandle = { reading?: boolean; readStop(): number; readStart(): number };
const handleOf = (s: net.Socket) => (s as unknown as { _handle?: ReadHandle | null })._handle ?? null;
const setPaused = (s: net.Socket, v: boolean) => void ((s as unknown as { _paused: boolean })._paused = v);

/** A request body taken from node:http for a pump: its source, and how the connection is given back or cut. */
export interface TakenUpload {
  source: NativeUploadSource;
  /** The body was read whole by the pump: node:http reads the connection again (its next request). */
  giveBack(): void;
  /** The body was not read whole: the connection cannot carry another request; it closes after the answer. */
  abandon(): void;
}

/**
 * Take the request body's bytes from node:http: libuv's reads on the client socket stop (node:http's own `_paused`
 * guard keeps its resume hooks from restarting them) and the body bytes node had already read go first (`pre`).
 * The socket's fd is held open (holdSocket) until giveBack or abandon; a destroy meanwhile stops the pump.
 */
export function takeNativeUpload(r: S3Request, size: number): TakenUpload | null {
  const socket = r.req.socket;
  const fd = fdOf(socket);
  const h = handleOf(socket);
  if (fd < 0 || !h || socket.destroyed) return null;
  setPaused(socket, true);
  h.reading = false;
  h.readStop();
  // what node:http parsed before the reads stopped is in the request's buffer (only body bytes: at most `size`)
  const parts: Buffer[] = [];
  for (let c = r.req.read() as Buffer | null; c !== null; c = r.req.read() as Buffer | null) parts.push(c);
  const pre = Buffer.concat(parts);
  const control = new Int32Array(1);
  const hold = holdSocket(socket, () => Atomics.store(control, 0, 1));
  const source: NativeUploadSource = { fd, socket, pre: pre.length > size ? pre.subarray(0, size) : pre, control, idleMs: idleOf(socket) };
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
      parser?.resume();
      req.resume(); // lets 'end' out, so node:http lets go of the request
      setPaused(socket, false);
      const hh = handleOf(socket);
      if (hh && !hh.reading) {
        hh.reading = true;
        hh.readStart();
      }
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
export async function withNativeUpload<T>(r: S3Request, size: number, seal: (src: NativeUploadSource) => Promise<T>): Promise<{ value: T } | null> {
  const slot = takePumpSlot();
  const taken = slot ? takeNativeUpload(r, size) : null;
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

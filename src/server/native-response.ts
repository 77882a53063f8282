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
import { fdOf, holdSocket } from '../engine/dataplane.ts';
import type { NativeRead } from '../store/native-read.ts';
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

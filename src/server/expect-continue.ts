/**
 * `Expect: 100-continue`, answered by the gateway rather than by node:http (which answers every one at once, then
 * reads the body as it comes).
 *
 * Why: the AWS SDK for JavaScript sends its stream uploads as aws-chunks inside HTTP chunked transfer coding, and
 * the native data plane can seal such a body only from its first byte on the wire (native/http-chunked.c): once
 * llhttp has read part of a chunk, how much of that chunk is left cannot be learnt from node:http. So for such a
 * request — a PUT in chunked transfer coding of STREAMING-UNSIGNED-PAYLOAD-TRAILER whose socket read began with its
 * request line — the socket's reads stop the moment its head is parsed, and the raw bytes that read held after the
 * head are kept: with them, the pump gets the body whole from its first byte (`takeHeldBody`), whatever node:http
 * decoded of them being dropped. Its 100 Continue is held too: it goes when the body is wanted — by the pump, or by
 * the Node path on its first read of the request (which restarts the reads). The SDK waits for it (with an agent of
 * its own, its default); a client that sends the body at once is served the same way.
 *
 * A request answered before its body is wanted (an auth failure, a missing bucket) gets no 100 Continue, and node:http
 * closes its connection after the answer (a server that sent no 100 Continue does not know whether the body follows);
 * a client known to wait has sent nothing to drain. Every other request is answered 100 Continue at once, as
 * node:http does, and then goes to the server's 'request' listeners as before.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { startReads, stopReads } from './socket-reads.ts';

/** A held request: the raw bytes its head's read held after the head (empty: the client waits for 100 Continue). */
const held = new WeakMap<IncomingMessage, Buffer>();

/** A PUT whose body the pump may read in chunked transfer coding (src/server/native-response.ts, nativeUploadOf). */
function mayGoNative(req: IncomingMessage): boolean {
  const h = req.headers;
  return (
    req.method === 'PUT' &&
    !(req.socket as { encrypted?: boolean }).encrypted &&
    /^chunked$/i.test(h['transfer-encoding'] ?? '') &&
    h['content-length'] === undefined &&
    h['x-amz-content-sha256'] === 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
  );
}

type Parser = { getCurrentBuffer?: () => Buffer };

/**
 * The raw bytes after the request's head in the socket read that carried it, or null when that read did not begin with
 * the request's line. Called while llhttp runs that read (the 'checkContinue' event comes from its headers-complete
 * callback), whose bytes are the parser's current buffer (a copy). A read that begins with the request line holds the
 * whole head, which ends at its first blank line; a head split over reads, or a read that begins with anything else
 * (a pipelined request's end), is left to the Node path.
 */
function bodyStart(req: IncomingMessage): Buffer | null {
  const parser = (req.socket as unknown as { parser?: Parser | null }).parser;
  const buf = parser?.getCurrentBuffer?.();
  if (!Buffer.isBuffer(buf)) return null;
  const line = Buffer.from(`${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`, 'latin1');
  if (buf.length < line.length || !buf.subarray(0, line.length).equals(line)) return null;
  const end = buf.indexOf('\r\n\r\n');
  return end < 0 ? null : Buffer.from(buf.subarray(end + 4));
}

/** The server's 'checkContinue' listener: hold the body (and its 100 Continue) the pump may take, answer the rest at once. */
export function answerExpectContinue(server: Server): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const early = mayGoNative(req) ? bodyStart(req) : null;
    if (early && stopReads(req.socket)) {
      held.set(req, early);
      // The Node path's first read of the body (g.payload, a drain, node:http's own discard after an answer) reads the
      // socket again and sends the 100 Continue.
      const read = req._read.bind(req);
      req._read = (n: number) => {
        req._read = read;
        if (held.has(req)) startReads(req.socket);
        sendContinue(req, res);
        read(n);
      };
    } else {
      res.writeContinue();
    }
    server.emit('request', req, res);
  };
}

/** The held 100 Continue goes out now, unless the answer already has (no 1xx after a final status). */
function sendContinue(req: IncomingMessage, res: ServerResponse): void {
  if (!held.delete(req) || res.headersSent || res.writableEnded) return;
  res.writeContinue();
}

/** The request's body is held: every byte of it is still to be had, from its first (takeHeldBody). */
export function bodyHeld(req: IncomingMessage): boolean {
  return held.has(req);
}

/** The request's body is held and none of it has come: the client waits for its 100 Continue (nothing to drain). */
export function clientWaits(req: IncomingMessage): boolean {
  return held.get(req)?.length === 0;
}

/**
 * For the pump: the body's raw bytes that came with the head (to be taken first; the rest is in the socket, whose reads
 * stopped then), and the 100 Continue sent, so a waiting client sends the body to the pump. Null when the body is not
 * held, or node:http has the whole of it already (complete): the Node path reads it (its first read restarts the
 * socket's reads and sends the 100 Continue).
 */
export function takeHeldBody(req: IncomingMessage, res: ServerResponse): Buffer | null {
  const early = held.get(req);
  if (early === undefined || req.complete) return null;
  sendContinue(req, res);
  return early;
}

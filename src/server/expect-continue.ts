/**
 * `Expect: 100-continue`, answered by the gateway rather than by node:http (which answers every one at once, then
 * reads the body as it comes).
 *
 * Why: the AWS SDK for JavaScript sends its stream uploads as aws-chunks inside HTTP chunked transfer coding, and
 * the native data plane can seal such a body only from its first byte on the wire (native/http-chunked.c): once
 * llhttp has read part of a chunk, how much of that chunk is left cannot be learnt from node:http. Such a request —
 * a PUT in chunked transfer coding of STREAMING-UNSIGNED-PAYLOAD-TRAILER whose head ended its socket read — gets its
 * 100 Continue only when its body is wanted: by the pump, after node:http's reads on the socket stopped
 * (`takeHeldBody`), or by the Node path, on its first read of the request. A request answered before its body is
 * wanted (an auth failure, a missing bucket) gets no 100 Continue, and node:http closes its connection after the
 * answer (a server that sent no 100 Continue does not know whether the body follows). Every other request is
 * answered 100 Continue at once, as node:http does, and then goes to the server's 'request' listeners as before.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** A held request: socket bytes read when its head was parsed (nothing of the body may be read after it). */
const held = new WeakMap<IncomingMessage, number>();

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
 * Whether the socket read that carried the request's head ended with it: called while llhttp runs that read (the
 * 'checkContinue' event comes from its headers-complete callback), so nothing after the head has been parsed, and
 * the read's bytes are the parser's current buffer. Only a buffer whose one blank line is its end qualifies (a
 * pipelined request before it, or body bytes after it, do not: the Node path reads those bodies). A blank line split
 * over two reads is not seen here; takeHeldBody then finds what node:http parsed of the body.
 */
function headEndedRead(req: IncomingMessage): boolean {
  const parser = (req.socket as unknown as { parser?: Parser | null }).parser;
  const buf = parser?.getCurrentBuffer?.();
  if (!Buffer.isBuffer(buf) || buf.length < 4) return false;
  return buf.indexOf('\r\n\r\n') === buf.length - 4;
}

/** The server's 'checkContinue' listener: hold the 100 Continue of a body the pump may take, answer the rest at once. */
export function answerExpectContinue(server: Server): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (mayGoNative(req) && headEndedRead(req)) {
      held.set(req, req.socket.bytesRead);
      // The Node path's first read of the body (g.payload, a pipe, node:http's own discard after an answer) sends it.
      const read = req._read.bind(req);
      req._read = (n: number) => {
        req._read = read;
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

/** The request's 100 Continue is held: its body may still be wholly in the socket. */
export function continueHeld(req: IncomingMessage): boolean {
  return held.has(req);
}

/**
 * For the pump: true when nothing of the request's body has been read from its socket (its 100 Continue was held,
 * the socket read nothing since the head, node:http buffered nothing), and then `stopReads` is called — it must
 * stop node:http's reads on the socket — and the 100 Continue sent, so the client sends the body to the pump.
 * False leaves everything as it was (the Node path reads the body, and its first read sends the 100 Continue).
 */
export function takeHeldBody(req: IncomingMessage, res: ServerResponse, stopReads: () => void): boolean {
  const bytesRead = held.get(req);
  // (a head whose blank line straddled two reads lets body bytes into the read it ended: node:http then holds data, or
  // the whole of an empty body — readableLength or complete says so)
  if (bytesRead === undefined || req.socket.bytesRead !== bytesRead || req.readableLength > 0 || req.complete) return false;
  stopReads();
  sendContinue(req, res);
  return true;
}

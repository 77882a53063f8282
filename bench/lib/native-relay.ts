/**
 * Middle processes for bench/floor.ts whose body bytes move in native code (native/dataplane.c), the floor of
 * issue #22's design (b): JavaScript keeps the HTTP heads, the addon moves the body between the two sockets' file
 * descriptors on a thread of its own.
 *
 *   node --import tsx bench/lib/native-relay.ts <mode> <backend endpoint> <access key> <secret key>
 *
 *   tcp-native, tcp-native-aes    a TCP relay: each direction of each connection is one pump until end of file
 *                                 (pass, or aes-pass: AES-256-GCM over every byte, as relay.ts tcp-aes)
 *   http-native, http-native-aes  a null gateway: node:http server, `GET /bucket/key` and `PUT /bucket/key` to the
 *                                 backend over a raw keep-alive socket (SigV4 by tools/sigv4.ts); the response or
 *                                 request body goes through one pump (pass / aes-pass), the heads stay in JS
 *   http-native-seal              the same with lakecrypt's data format: a PUT is sealed (docs/FORMAT.md 2.1-2.2:
 *                                 prefix, a random DEK per 8 MiB block, chunk AADs) and a GET opened (prefix and
 *                                 every tag checked); the DEKs stay in this process's memory (no header object), so
 *                                 only objects written through this process since it started can be read back
 *
 * Prints `listening <port>` once it accepts connections.
 *
 * Handing a socket to the pump and back (the part the gateway would reuse):
 * - The pump must be the only reader of its input fd. A socket created here reads through `onread` with a callback
 *   that returns false at the end of the response head: libuv stops reading then and nothing in Node starts it
 *   again until `resume()`. A node:http server socket is read by the C++ parser (`parser.consume`); its reads are
 *   stopped with `readStop()` inside the request handler (still inside the parser's read callback, so no further
 *   read happens), and `socket._paused = true` (node:http's own flag for this) keeps IncomingMessage's `_read` and
 *   the server's resume hook from starting them again. Body bytes the parser had already taken from that same read
 *   are in the request's buffer: they go to the pump first (`pre`).
 * - Giving a server socket back after a PUT: llhttp still expects the body it never saw, so the parser is
 *   re-initialised as the server does for a new connection (`parser.initialize`, with the server's connection
 *   list), the request is ended (`complete`, `push(null)`), `_paused` cleared and reads started again. The next
 *   request on the keep-alive connection then parses as usual.
 * - A GET's response: `writeHead` with Content-Length, `flushHeaders()`, wait until the head left Node's socket
 *   buffer, pump exactly Content-Length bytes into the fd, then `res.end()` with no body (node:http writes nothing
 *   more, and keeps the connection).
 * - Writes: Node writes nothing to a socket while a pump writes to it (the handler owns the response until then).
 * - A pooled backend connection is read again while idle (after the pump took exactly its body): a backend that
 *   closes idle connections (MinIO's idle time-out) is seen then, not by the next request's pump as EPIPE.
 */
import http from 'node:http';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { AAD_MAGIC, ciphertextSize, DATA_MAGIC, PREFIX_SIZE } from '../../src/format/layout.ts';
import { signHeaders } from '../../tools/sigv4.ts';
import { fdOf, loadDataplane, pump, type PumpMode } from './dataplane.ts';

const [mode = '', endpoint = '', accessKey = '', secretKey = ''] = process.argv.slice(2);
const PUMP: Record<string, PumpMode> = { 'tcp-native': 'pass', 'tcp-native-aes': 'aes-pass', 'http-native': 'pass', 'http-native-aes': 'aes-pass', 'http-native-seal': 'seal' };
const pumpMode = PUMP[mode];
if (!pumpMode || !endpoint) {
  console.error(`usage: native-relay.ts ${Object.keys(PUMP).join('|')} <endpoint> [<access key> <secret key>]`);
  process.exit(2);
}
loadDataplane(); // built (when stale) and loaded before the first connection
// a clean exit on SIGTERM, so `node --cpu-prof` writes its profile
process.on('SIGTERM', () => process.exit(0));
const backendUrl = new URL(endpoint);
const backendHost = backendUrl.hostname;
const backendPort = Number(backendUrl.port || 80);
/** aes-pass: one key for the process (its output is dropped: only the CPU it costs matters). */
const key = randomBytes(32);
/** LAKECRYPT_NATIVE_READ_KIB: the pumps' read size (the addon's default: 256 KiB), for A/B runs of the pipeline's granularity. */
const readSize = process.env.LAKECRYPT_NATIVE_READ_KIB ? Number(process.env.LAKECRYPT_NATIVE_READ_KIB) * 1024 : undefined;

function listen(server: net.Server): void {
  server.listen(0, '127.0.0.1', () => console.log(`listening ${(server.address() as net.AddressInfo).port}`));
}

interface Handle { fd: number; reading: boolean; readStart(): number; readStop(): number }
const handleOf = (s: net.Socket) => (s as unknown as { _handle: Handle | null })._handle;

/** Resolve once everything Node was asked to write to `s` has gone to the kernel (a pump may write after it). */
function flushed(s: net.Socket): Promise<void> {
  if (s.writableLength === 0) return Promise.resolve();
  return new Promise((resolve, reject) => s.write(Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
}

if (mode.startsWith('tcp-')) {
  listen(
    // pauseOnConnect: libuv never reads the client socket, the pumps do
    net.createServer({ pauseOnConnect: true }, (client) => {
      client.setNoDelay(true);
      const upstream = net.connect({ host: backendHost, port: backendPort, noDelay: true, onread: { buffer: Buffer.alloc(16), callback: () => false } } as net.NetConnectOpts);
      upstream.pause(); // no read(0) at connect: nothing in Node reads the backend socket either
      const control = new Int32Array(1); // the first pump to fail stops the other
      const fail = () => (Atomics.store(control, 0, 1), client.destroy(), upstream.destroy());
      upstream.once('error', fail);
      upstream.once('connect', () => {
        upstream.removeListener('error', fail);
        upstream.on('error', () => Atomics.store(control, 0, 1));
        client.on('error', () => Atomics.store(control, 0, 1));
        const one = (from: net.Socket, to: net.Socket) =>
          pump({ inFd: fdOf(from), outFd: fdOf(to), length: -1, mode: pumpMode, key, shutdown: true, control, idleMs: 0, readSize }).catch(() => Atomics.store(control, 0, 1));
        // both directions end (EOF passed on as a half close, or a failure) before either fd is closed
        void Promise.all([one(client, upstream), one(upstream, client)]).then(() => (client.destroy(), upstream.destroy()));
      });
    }),
  );
} else {
  listen(nullGateway());
}

// ---- the null gateway over the native pump ----

interface Head { status: number; headers: Record<string, string>; rest: Buffer }

/** One keep-alive connection to the backend, read by `onread`: JS sees the response head, the body goes to a pump. */
class BackendConn {
  static idle: BackendConn[] = [];
  readonly socket: net.Socket;
  private parts: Buffer[] = [];
  private waiter: { resolve(h: Head): void; reject(e: Error): void } | null = null;
  private bodyWaiter: { left: number; got: Buffer[]; resolve(b: Buffer): void } | null = null;
  private dead = false;
  /** Exchanges done on this connection: a reused one may have been closed by the backend just before it was sent. */
  exchanges = 0;

  static async acquire(): Promise<BackendConn> {
    for (let c = BackendConn.idle.pop(); c; c = BackendConn.idle.pop()) if (!c.dead) return c;
    const c = new BackendConn();
    await new Promise<void>((resolve, reject) => c.socket.once('connect', resolve).once('error', reject));
    return c;
  }

  private constructor() {
    this.socket = net.connect({ host: backendHost, port: backendPort, noDelay: true, onread: { buffer: Buffer.allocUnsafe(64 * 1024), callback: (n: number, b: Uint8Array) => this.onRead(Buffer.from(b.subarray(0, n))) } } as net.NetConnectOpts);
    this.socket.pause();
    const gone = (e?: Error) => {
      this.dead = true;
      this.waiter?.reject(e ?? new Error('backend closed the connection'));
      this.waiter = null;
    };
    this.socket.on('error', gone).on('end', () => gone()).on('close', () => gone());
  }

  get fd(): number {
    return fdOf(this.socket);
  }

  /** Send a request head; resolves with the response head (and any body bytes read with it), libuv's reads stopped. */
  request(head: string): Promise<Head> {
    this.exchanges++;
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.parts = [];
      this.socket.write(head, 'latin1');
      this.socket.resume();
    });
  }

  /** A small body after the head (an error's XML, a PUT's empty body), read in JS. */
  async readBody(h: Head): Promise<Buffer> {
    const len = Number(h.headers['content-length'] ?? 0);
    return (await this.readAtLeast(h, len)).subarray(0, len);
  }

  /** The bytes after the head, at least n of them (whatever one read brought beyond: the caller hands it on). */
  readAtLeast(h: Head, n: number): Promise<Buffer> {
    if (h.rest.length >= n) return Promise.resolve(h.rest);
    return new Promise((resolve) => {
      this.bodyWaiter = { left: n - h.rest.length, got: [h.rest], resolve };
      this.socket.resume();
    });
  }

  private onRead(b: Buffer): boolean {
    if (this.bodyWaiter) {
      const w = this.bodyWaiter;
      w.got.push(b);
      w.left -= Math.min(w.left, b.length);
      if (w.left > 0) return true;
      this.bodyWaiter = null;
      w.resolve(Buffer.concat(w.got));
      return false;
    }
    if (!this.waiter) {
      // bytes nobody asked for (an idle connection): out of step, never reuse it
      this.destroy();
      return false;
    }
    this.parts.push(b);
    const all = Buffer.concat(this.parts);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) return true;
    const [statusLine = '', ...lines] = all.toString('latin1', 0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const w = this.waiter;
    this.waiter = null;
    w?.resolve({ status: Number(statusLine.split(' ')[1]), headers, rest: all.subarray(end + 4) });
    return false; // stop reading: the body belongs to the pump (or to readBody)
  }

  release(h: Head): void {
    if (this.dead || /close/i.test(h.headers.connection ?? '')) return this.destroy();
    // read while idle, so that the backend closing it (MinIO's idle time-out) is seen before the next request
    // is sent on it: the pump has taken exactly the body, nothing else is due
    this.socket.resume();
    BackendConn.idle.push(this);
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }
}

function backendHead(method: 'GET' | 'PUT', path: string, extra: Record<string, string>): string {
  const host = `${backendHost}:${backendPort}`;
  const { headers } = signHeaders({ accessKey, secretKey }, { method, host, path, headers: extra, payload: 'UNSIGNED-PAYLOAD' });
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

interface ServerParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number, connections?: unknown): void;
  resume(): void;
  constructor: { REQUEST: number };
}

/** Take a node:http server socket's reads from libuv (and from node:http) so that a pump can read its fd. */
function takeReads(socket: net.Socket): void {
  (socket as unknown as { _paused: boolean })._paused = true; // node:http's own guard: its resume hooks pause again
  const h = handleOf(socket)!;
  h.reading = false;
  h.readStop();
}

/** Give a server socket back after a pump read `req`'s body: llhttp reset to a request's start, reads restarted. */
function giveReadsBack(server: http.Server, req: http.IncomingMessage): void {
  const socket = req.socket;
  const parser = (socket as unknown as { parser: ServerParser | null }).parser;
  if (!req.complete && parser) {
    // the parser still counts the body it never saw: start it afresh, as node:http does for each new connection
    const connections = (server as unknown as Record<symbol, unknown>)[Object.getOwnPropertySymbols(server).find((s) => s.description === 'http.server.connections')!];
    parser.initialize(parser.constructor.REQUEST, { type: 'HTTPINCOMINGMESSAGE', socket }, (server as { maxHeaderSize?: number }).maxHeaderSize ?? 0, 0, connections);
    req.complete = true;
    req.push(null);
  }
  parser?.resume(); // node:http paused it at the end of the read the handler ran in (it saw `_paused`)
  req.resume(); // lets 'end' out, so node:http lets go of the request
  (socket as unknown as { _paused: boolean })._paused = false;
  const h = handleOf(socket);
  if (h && !h.reading) {
    h.reading = true;
    h.readStart();
  }
}

/** http-native-seal: what a header would hold, kept in memory by path (the floor measures the data path only). */
interface Sealing { deks: Buffer; aadPrefix: Buffer; oid: Buffer; size: number }
const sealings = new Map<string, Sealing>();
const BLOCK = 8 * 1024 * 1024;
const DATASET_ID = createHash('sha256').update('floor').digest();

function newSealing(path: string, size: number): Sealing {
  const old = sealings.get(path);
  if (old) old.deks.fill(0);
  const oid = randomBytes(16);
  const s = { deks: randomBytes(32 * Math.max(1, Math.ceil(size / BLOCK))), aadPrefix: Buffer.concat([AAD_MAGIC, DATASET_ID, oid]), oid, size };
  sealings.set(path, s);
  return s;
}

function dataPrefix(oid: Buffer): Buffer {
  const p = Buffer.alloc(PREFIX_SIZE);
  DATA_MAGIC.copy(p, 0);
  p[8] = 1;
  oid.copy(p, 16);
  return p;
}

/** A pump that failed, on stderr (its code and message: no body bytes, no key). */
function logFailure(method: string, path: string, e: unknown): void {
  const err = e as { code?: string; message?: string };
  console.error(`[native-relay] ${method} ${path}: ${err.code ?? 'Error'} ${err.message ?? String(e)}`);
}

function nullGateway(): http.Server {
  const fail = (res: http.ServerResponse, status: number, msg: string) => {
    if (res.headersSent) res.destroy();
    else res.writeHead(status).end(msg);
  };

  async function get(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    req.resume();
    let conn = await BackendConn.acquire();
    let h: Head;
    try {
      h = await conn.request(backendHead('GET', path, {}));
    } catch (e) {
      if (conn.exchanges < 2) throw e;
      conn = await BackendConn.acquire(); // closed by the backend as it was reused: a GET can be sent again
      h = await conn.request(backendHead('GET', path, {}));
    }
    if (h.status !== 200) {
      const body = await conn.readBody(h);
      conn.release(h);
      res.writeHead(h.status, { 'Content-Type': h.headers['content-type'] ?? 'application/xml' }).end(body);
      return;
    }
    let length = Number(h.headers['content-length']);
    let pre = h.rest;
    const sealing = pumpMode === 'seal' ? sealings.get(path) : undefined;
    if (pumpMode === 'seal') {
      // the prefix names the object version the DEKs belong to: checked before a byte of plaintext goes out
      const head = await conn.readAtLeast(h, PREFIX_SIZE);
      if (!sealing || length !== ciphertextSize(sealing.size) || !head.subarray(0, PREFIX_SIZE).equals(dataPrefix(sealing.oid))) {
        conn.destroy();
        return fail(res, 500, 'not an object sealed by this process');
      }
      length = sealing.size;
      pre = head.subarray(PREFIX_SIZE);
    }
    res.writeHead(200, { 'Content-Length': length, ETag: h.headers.etag ?? '' });
    res.flushHeaders();
    await flushed(res.socket!);
    try {
      if (sealing) await pump({ inFd: conn.fd, outFd: fdOf(res.socket!), length, pre, mode: 'open', deks: sealing.deks, aadPrefix: sealing.aadPrefix, blockSize: BLOCK, readSize });
      else await pump({ inFd: conn.fd, outFd: fdOf(res.socket!), length, pre, mode: pumpMode, key, readSize });
    } catch (e) {
      logFailure('GET', path, e);
      conn.destroy();
      res.destroy(); // the client sees a short body, never a wrong one
      return;
    }
    conn.release(h);
    res.end();
  }

  function put(server: http.Server, req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    // the benchmark's client sends UNSIGNED-PAYLOAD bodies: the bytes on the wire are the object
    if (String(req.headers['x-amz-content-sha256']).startsWith('STREAMING')) return void res.writeHead(501).end('aws-chunked body');
    const length = Number(req.headers['content-length']);
    takeReads(req.socket);
    // the rest of the read this handler runs in is parsed after it returns: those body bytes are in req then
    setImmediate(() => {
      const pre: Buffer[] = [];
      for (let c = req.read() as Buffer | null; c !== null; c = req.read() as Buffer | null) pre.push(c);
      void (async () => {
        const conn = await BackendConn.acquire();
        const sealing = pumpMode === 'seal' ? newSealing(path, length) : undefined;
        const head = conn.request(backendHead('PUT', path, { 'content-length': String(sealing ? ciphertextSize(length) : length) }));
        head.catch(() => undefined); // a failed body write is the failure reported; this one is awaited only after it
        if (sealing) conn.socket.write(dataPrefix(sealing.oid));
        let pumped = true;
        try {
          await flushed(conn.socket);
          const io = { inFd: fdOf(req.socket), outFd: conn.fd, length, pre: Buffer.concat(pre), readSize };
          if (sealing) await pump({ ...io, mode: 'seal', deks: sealing.deks, aadPrefix: sealing.aadPrefix, blockSize: BLOCK });
          else await pump({ ...io, mode: pumpMode, key });
        } catch (e) {
          logFailure('PUT', path, e);
          pumped = false;
        }
        if (!pumped) {
          conn.destroy();
          res.destroy();
          return;
        }
        giveReadsBack(server, req);
        const h = await head;
        const body = await conn.readBody(h);
        conn.release(h);
        res.writeHead(h.status, h.status === 200 ? { ETag: h.headers.etag ?? '' } : { 'Content-Type': 'application/xml' }).end(body);
      })().catch((e: Error) => fail(res, 502, e.message));
    });
  }

  const server: http.Server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'PUT') return put(server, req, res, path);
    if (req.method === 'GET') return void get(req, res, path).catch((e: Error) => fail(res, 502, e.message));
    res.writeHead(405).end();
  });
  return server;
}

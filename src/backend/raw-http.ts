import net from 'node:net';
import type { Readable } from 'node:stream';
import { RawBody, parseHead, requestHead, type DetachedBody } from './raw-message.ts';

export type { DetachedBody } from './raw-message.ts';

/**
 * Requests to a plain-http backend over pooled keep-alive sockets, answers read into one reused buffer per socket
 * (net's `onread`) and parsed here. Node's http client spends 1.9–3.8 CPU-ms per MiB of response body on this
 * machine (llhttp, IncomingMessage, a fresh 64 KiB buffer per socket read), more than decrypting it; this path
 * about half of that (bench/backend-read.ts). For a small PUT its ClientRequest, agent and parser cost 0.2–0.6 of
 * the gateway's 2.5–3 CPU-ms (bench/README.md "Small requests on the raw backend client"), so a request whose body
 * is one Buffer comes here too: head and body leave in one write. It speaks what an S3 server answers over HTTP/1.1: a status
 * line, headers, and a body framed by Content-Length or the chunked transfer coding. Anything else (another
 * transfer coding, a body delimited by the connection closing, HTTP/1.0) is refused with `RawUnsupported` before
 * any of the body is read; the caller repeats a GET or HEAD through node:http, and does not send a request with
 * effects here to a store it does not know to answer that way (s3-fast.ts).
 */
export class RawUnsupported extends Error {}

export interface RawResponse {
  status: number;
  /** Names lower-case; repeated headers joined with ", " (as node:http does for most headers). */
  headers: Record<string, string>;
  body: Readable;
}

/** A network failure, with the code the caller's retry rule knows (ECONNRESET, ETIMEDOUT, ...). */
export class RawNetworkError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** True when the socket was reused from the pool and closed before any byte of the answer: safe to resend. */
    readonly stale = false,
  ) {
    super(message);
  }
}

/**
 * Take over the rest of `body` (a response from this module, framed by Content-Length, not yet ended, nothing of
 * it consumed by anyone else) once at least `minPre` of its bytes are buffered. Null when the body is of another
 * kind, chunked, already complete, or its connection failed: the body is then as it was, for the Node path.
 */
export function detachBody(body: Readable, minPre: number): Promise<DetachedBody | null> {
  return body instanceof RawBody ? body.detach(minPre) : Promise.resolve(null);
}

/** The fd of a plain TCP socket (libuv's handle), or -1. */
function fdOf(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** The methods sent here: GET and HEAD, and PUT and DELETE with at most one Buffer of body. */
export type RawMethod = 'GET' | 'HEAD' | 'PUT' | 'DELETE';

const READ_BUFFER = 256 * 1024;
const MAX_HEAD = 64 * 1024;
const IDLE_MS = 15_000;
const MAX_LINE = 4096;
const CRLFCRLF = Buffer.from('\r\n\r\n');

export class RawHttpPool {
  private readonly idle: Conn[] = [];
  private readonly waiters: ((c: Conn) => void)[] = [];
  private open = 0;
  private closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly maxSockets: number,
    readonly timeoutMs: number,
  ) {}

  /**
   * One request (with `body`, its Content-Length among `headers`); a reused socket that turns out closed by the
   * server before any byte of the answer is replaced, transparently, up to twice. With a body that resends it, as
   * the caller's own retry of a network error would (s3-fast.ts send: only Buffer bodies, which replay whole).
   */
  async request(method: RawMethod, target: string, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
    const head = requestHead(method, target, headers);
    for (let attempt = 0; ; attempt++) {
      const conn = await this.acquire();
      const reused = conn.exchanges > 0;
      try {
        return await conn.exchange(method, head, body);
      } catch (e) {
        if (reused && e instanceof RawNetworkError && e.stale && attempt < 2) {
          // the backend closed it while idle (a restart, its idle timeout): the other idle ones likely too
          for (const c of this.idle.splice(0)) c.destroy();
          continue;
        }
        throw e;
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  private acquire(): Promise<Conn> {
    if (this.closed) return Promise.reject(new RawNetworkError('backend client closed', 'ECONNREFUSED'));
    const c = this.idle.pop();
    if (c) {
      c.unidle();
      return Promise.resolve(c);
    }
    if (this.open < this.maxSockets) return Promise.resolve(this.connect());
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private connect(): Conn {
    this.open++;
    return new Conn(this, this.host, this.port, this.timeoutMs);
  }

  /** A socket done with its exchange, its response read to the end. */
  released(c: Conn): void {
    const w = this.waiters.shift();
    if (w) return w(c);
    if (this.closed) return c.destroy();
    c.idleFor(IDLE_MS);
    this.idle.push(c);
  }

  /** A socket gone (closed, failed, or not reusable). */
  gone(c: Conn): void {
    this.open--;
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (this.closed) return;
    const w = this.waiters.shift();
    if (w) w(this.connect());
  }
}

/** One keep-alive connection: idle -> head (request sent, reading the answer's head) -> body -> idle. */
class Conn {
  readonly socket: net.Socket;
  exchanges = 0;
  private state: 'idle' | 'head' | 'body' | 'detached' | 'dead' = 'idle';
  /** A detach waiting for enough body bytes to be buffered. */
  private preWait: { need: number; wake: () => void } | null = null;
  private headParts: Buffer[] = [];
  private headLen = 0;
  private method: RawMethod = 'GET';
  private onHead: ((r: RawResponse) => void) | null = null;
  private onFail: ((e: Error) => void) | null = null;
  private body: RawBody | null = null;
  /** Content-Length: bytes of body left. Chunked: bytes left in the current chunk. */
  private remaining = 0;
  /** Chunked transfer coding: where in the framing the next byte falls, and a partly read framing line. */
  private chunked: 'size' | 'data' | 'data-end' | 'trailer' | null = null;
  private line = '';
  private keepAlive = true;
  private paused = false;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pool: RawHttpPool,
    host: string,
    port: number,
    private readonly timeoutMs: number,
  ) {
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: Buffer.allocUnsafe(READ_BUFFER), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf as Buffer) },
    } as net.NetConnectOpts);
    this.socket.setTimeout(timeoutMs, () => this.fail(new RawNetworkError('backend request timed out', 'ETIMEDOUT')));
    this.socket.on('error', (e: NodeJS.ErrnoException) => this.fail(new RawNetworkError(e.message, e.code ?? 'ECONNRESET')));
    this.socket.on('end', () => this.fail(new RawNetworkError('backend closed the connection', 'ECONNRESET', this.state === 'head' && this.headLen === 0)));
    this.socket.on('close', () => this.fail(new RawNetworkError('backend closed the connection', 'ECONNRESET', this.state === 'head' && this.headLen === 0)));
  }

  exchange(method: RawMethod, head: string, body?: Buffer): Promise<RawResponse> {
    if (this.state !== 'idle') return Promise.reject(new RawNetworkError('backend connection busy', 'ECONNRESET'));
    this.exchanges++;
    this.state = 'head';
    this.paused = false;
    this.method = method;
    this.headParts = [];
    this.headLen = 0;
    return new Promise((resolve, reject) => {
      this.onHead = resolve;
      this.onFail = reject;
      if (!body?.length) {
        this.socket.write(head, 'latin1');
        return;
      }
      // one writev for head and body: the store sees the whole request at once (one wake-up, one segment)
      this.socket.cork();
      this.socket.write(head, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    });
  }

  unidle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  idleFor(ms: number): void {
    this.idleTimer = setTimeout(() => this.destroy(), ms);
    this.idleTimer.unref();
  }

  destroy(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.unidle();
    this.socket.destroy();
    this.pool.gone(this);
    this.wakeDetach();
  }

  /** See detachBody(). */
  async detach(body: RawBody, minPre: number): Promise<DetachedBody | null> {
    const ours = () => this.state === 'body' && this.body === body && this.chunked === null && this.remaining > 0 && !body.destroyed;
    // the taker reads whole chunks from the fd: wait (reads go on, bounded by the body's high-water mark) until
    // the bytes it needs first are here; a failure or the end of the body wakes this too
    while (ours() && body.readableLength < minPre) await new Promise<void>((wake) => (this.preWait = { need: minPre, wake }));
    const fd = fdOf(this.socket);
    if (!ours() || fd < 0) return null;
    // From here the fd's bytes belong to the taker: an onread socket's pause() stops libuv's reads at once.
    this.socket.pause();
    this.paused = false;
    this.state = 'detached';
    this.body = null; // before read(): the body's _read (more()) and abandon hooks no longer reach this connection
    const pre = body.readableLength > 0 ? (body.read() as Buffer) : Buffer.alloc(0);
    body.destroy();
    // no JavaScript sees the bytes move: the socket's time-out would fire on a healthy transfer (the taker has its own)
    this.socket.setTimeout(0);
    const left = this.remaining;
    let settled = false;
    return {
      socket: this.socket,
      fd,
      pre,
      left,
      done: () => {
        if (settled || this.state !== 'detached') return;
        settled = true;
        this.remaining = 0;
        this.state = 'idle';
        this.socket.setTimeout(this.timeoutMs);
        if (!this.keepAlive) return this.destroy();
        // read while idle again, so that the backend closing it is seen before the next request is sent on it
        this.socket.resume();
        this.pool.released(this);
      },
      abort: () => {
        if (settled) return;
        settled = true;
        this.destroy();
      },
    };
  }

  private wakeDetach(): void {
    const w = this.preWait;
    this.preWait = null;
    w?.wake();
  }

  /** The socket failed or closed: whoever waits on it hears so, once. */
  private fail(e: RawNetworkError): void {
    const { state, body } = this;
    if (state === 'dead') return;
    const onFail = this.onFail;
    this.onHead = this.onFail = null;
    this.body = null;
    this.destroy();
    if (state === 'head') onFail?.(e);
    else if (state === 'body' && body) body.fail(e);
    this.wakeDetach();
  }

  private onRead(n: number, buf: Buffer): boolean {
    if (this.state === 'head') return this.readHead(buf.subarray(0, n));
    if (this.state === 'body') return this.readBody(buf, 0, n);
    // bytes nobody asked for (idle) or after the end: the stream is out of step, never reuse it
    this.destroy();
    return false;
  }

  private readHead(chunk: Buffer): boolean {
    this.headParts.push(Buffer.from(chunk)); // the read buffer is reused: keep a copy
    this.headLen += chunk.length;
    const all = this.headParts.length === 1 ? this.headParts[0] : Buffer.concat(this.headParts);
    this.headParts = [all];
    const end = all.indexOf(CRLFCRLF);
    if (end < 0) {
      if (this.headLen > MAX_HEAD) this.protocolError('response head too large');
      return true;
    }
    let parsed: { status: number; headers: Record<string, string>; http11: boolean };
    try {
      parsed = parseHead(all.toString('latin1', 0, end));
    } catch (e) {
      this.protocolError((e as Error).message);
      return false;
    }
    const rest = all.subarray(end + 4);
    if (parsed.status >= 100 && parsed.status < 200) {
      // an interim answer (100 Continue): the real head follows
      this.headParts = [];
      this.headLen = 0;
      return rest.length ? this.readHead(rest) : true;
    }
    const { status, headers } = parsed;
    let length: number;
    const coding = headers['transfer-encoding']?.toLowerCase();
    if (this.method === 'HEAD' || status === 204 || status === 304) length = 0;
    else if (!parsed.http11) {
      this.unsupported();
      return false;
    } else if (coding !== undefined) {
      if (coding.trim() !== 'chunked') {
        this.unsupported();
        return false;
      }
      length = -1;
    } else if (/^\d{1,15}$/.test(headers['content-length'] ?? '')) length = Number(headers['content-length']);
    else {
      this.unsupported();
      return false;
    }
    this.keepAlive = !/(^|,)\s*close\s*(,|$)/i.test(headers.connection ?? '');
    this.remaining = Math.max(0, length);
    this.chunked = length < 0 ? 'size' : null;
    this.line = '';
    this.state = 'body';
    const body: RawBody = new RawBody(
      () => {
        if (this.body === body && this.paused) {
          this.paused = false;
          this.socket.resume();
        }
      },
      // a body abandoned before its end leaves the connection mid-message: it cannot carry another request
      // (checked by identity: once this body ended, the connection may already carry the next one)
      () => this.body === body && this.destroy(),
      (minPre) => this.detach(body, minPre),
    );
    this.body = body;
    const onHead = this.onHead!;
    this.onHead = this.onFail = null;
    onHead({ status, headers, body: this.body });
    if (length === 0) {
      if (rest.length) this.keepAlive = false;
      this.endBody();
      return true;
    }
    return rest.length ? this.readBody(rest, 0, rest.length) : true;
  }

  private readBody(buf: Buffer, from: number, to: number): boolean {
    if (this.chunked) return this.readChunked(buf, from, to);
    const take = Math.min(to - from, this.remaining);
    const chunk = Buffer.allocUnsafe(take);
    buf.copy(chunk, 0, from, from + take);
    this.remaining -= take;
    if (to - from > take) this.keepAlive = false; // more than the body: never reuse
    const more = this.body!.push(chunk);
    if (this.remaining === 0) {
      this.endBody();
      return true;
    }
    if (this.preWait && this.body!.readableLength >= this.preWait.need) this.wakeDetach();
    if (!more) this.paused = true;
    return more;
  }

  /** The chunked transfer coding (RFC 9112 7.1): size line, data, CRLF, ..., 0, trailer lines, empty line. */
  private readChunked(buf: Buffer, from: number, to: number): boolean {
    let i = from;
    let more = true;
    while (i < to && this.state === 'body') {
      if (this.chunked === 'data') {
        const take = Math.min(to - i, this.remaining);
        const chunk = Buffer.allocUnsafe(take);
        buf.copy(chunk, 0, i, i + take);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.chunked = 'data-end';
        more = this.body!.push(chunk) && more;
        continue;
      }
      const nl = buf.indexOf(10, i);
      if (nl < 0 || nl >= to) {
        this.line += buf.toString('latin1', i, to);
        if (this.line.length > MAX_LINE) return this.chunkError('framing line too long');
        return true;
      }
      let line = this.line + buf.toString('latin1', i, nl);
      this.line = '';
      i = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (this.chunked === 'data-end') {
        if (line !== '') return this.chunkError('chunk not followed by CRLF');
        this.chunked = 'size';
      } else if (this.chunked === 'size') {
        const m = /^([0-9a-fA-F]{1,12})[ \t]*(;.*)?$/.exec(line);
        if (!m) return this.chunkError('bad chunk size');
        this.remaining = parseInt(m[1], 16);
        this.chunked = this.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        // end of the trailer section: the message is complete
        if (i < to) this.keepAlive = false;
        this.endBody();
        return true;
      }
    }
    if (!more) this.paused = true;
    return more;
  }

  private chunkError(why: string): boolean {
    this.fail(new RawNetworkError(`backend sent a malformed chunked body: ${why}`, 'EPROTO'));
    return false;
  }

  private endBody(): void {
    const body = this.body!;
    this.body = null;
    this.state = 'idle';
    body.push(null);
    if (this.keepAlive) this.pool.released(this);
    else this.destroy();
    this.wakeDetach();
  }

  private unsupported(): void {
    const reject = this.onFail;
    this.onHead = this.onFail = null;
    this.destroy();
    reject?.(new RawUnsupported('backend answer is not a Content-Length HTTP/1.1 message'));
  }

  private protocolError(why: string): void {
    this.fail(new RawNetworkError(`backend sent a malformed answer: ${why}`, 'EPROTO'));
  }
}

/**
 * A backend PUT on a connection of its own whose body another writer puts on the socket's fd (the native data
 * plane's seal pump, src/store/native-write.ts): the signed head (s3-fast.ts rawPutHead) and the body's first bytes
 * are written here, the answer read and parsed here (raw-message.ts parseHead).
 */
import net from 'node:net';
import { RawNetworkError } from './raw-http.ts';
import { parseHead } from './raw-message.ts';

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** The fd of a plain TCP socket (libuv's handle), or -1. */
function fdOf(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** The answer to a raw upload: status, headers (as RawResponse's), and its whole (small) body as text. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/**
 * One PUT whose body somebody else writes to `fd` (the native data plane's seal pump): the request head and the
 * body's first bytes are already on their way when this resolves. Its own connection, never pooled: a body cut short
 * must leave nothing that could carry another request, and one connect per large upload costs nothing measurable.
 * The answer is read as it arrives (an early refusal too, while the body is still being written).
 */
export interface RawUpload {
  readonly socket: net.Socket;
  readonly fd: number;
  /** The backend's answer once it is whole; rejects when the connection ends or fails before that. */
  answer(): Promise<RawAnswer>;
  /** True once an answer is whole (an early refusal while the body was still being written). */
  answered(): boolean;
  /** Close the connection (before the body is whole: the store commits nothing). */
  close(): void;
}

const MAX_ANSWER = 256 * 1024;

export function openRawUpload(host: string, port: number, head: string, first: Buffer, timeoutMs: number): Promise<RawUpload> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: the store closing its side must not make node shut ours under a thread still writing to it
    const socket = net.connect({ host, port, noDelay: true, allowHalfOpen: true });
    let got: Buffer = Buffer.alloc(0);
    let result: RawAnswer | null = null;
    let failure: Error | null = null;
    let waiter: { ok: (a: RawAnswer) => void; no: (e: Error) => void } | null = null;
    let opened = false;
    const settle = () => {
      if (!waiter) return;
      if (result) waiter.ok(result);
      else if (failure) waiter.no(failure);
      else return;
      waiter = null;
    };
    const onFail = (e: Error) => {
      failure ??= e;
      if (!opened) {
        opened = true;
        socket.destroy();
        reject(failure);
      }
      settle();
    };
    socket.on('data', (c: Buffer) => {
      if (result) return;
      got = Buffer.concat([got, c]);
      if (got.length > MAX_ANSWER) return onFail(new RawNetworkError('backend answer to an upload too large', 'EPROTO'));
      const end = got.indexOf(CRLFCRLF);
      if (end < 0) return;
      let parsed: ReturnType<typeof parseHead>;
      try {
        parsed = parseHead(got.toString('latin1', 0, end));
      } catch (e) {
        return onFail(new RawNetworkError(`backend sent a malformed answer: ${(e as Error).message}`, 'EPROTO'));
      }
      if (parsed.status >= 100 && parsed.status < 200) {
        got = got.subarray(end + 4);
        return;
      }
      const cl = parsed.headers['content-length'];
      const length = cl !== undefined && /^\d{1,9}$/.test(cl) ? Number(cl) : parsed.headers['transfer-encoding'] ? -1 : 0;
      const body = got.subarray(end + 4);
      // a chunked error body is taken when the store closes the connection; an S3 answer to a PUT has a length
      if (length >= 0 && body.length < length) return;
      result = { status: parsed.status, headers: parsed.headers, text: body.toString('utf8') };
      settle();
    });
    socket.on('end', () => onFail(new RawNetworkError('backend closed the connection', 'ECONNRESET')));
    socket.on('close', () => onFail(new RawNetworkError('backend closed the connection', 'ECONNRESET')));
    socket.on('error', (e: NodeJS.ErrnoException) => onFail(new RawNetworkError(e.message, e.code ?? 'ECONNRESET')));
    socket.setTimeout(timeoutMs, () => onFail(new RawNetworkError('backend connection timed out', 'ETIMEDOUT')));
    socket.once('connect', () => {
      socket.write(head, 'latin1');
      socket.write(first, (e) => {
        if (opened) return;
        opened = true;
        const fd = fdOf(socket);
        if (e || fd < 0) {
          socket.destroy();
          return reject(e ?? new RawNetworkError('backend socket has no fd', 'EBADF'));
        }
        // no JavaScript sees the body move: the pump has its own idle limit
        socket.setTimeout(0);
        resolve({
          socket,
          fd,
          answered: () => result !== null,
          answer: () =>
            new Promise<RawAnswer>((ok, no) => {
              waiter = { ok, no };
              settle();
            }),
          close: () => socket.destroy(),
        });
      });
    });
  });
}

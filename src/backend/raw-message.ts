import { Readable } from 'node:stream';
import type net from 'node:net';

/**
 * The message pieces of the raw HTTP client (raw-http.ts): the response body stream, the request head it writes
 * and the response head it parses.
 */

/**
 * The rest of a Content-Length response body, handed to a reader of the socket's file descriptor (the native
 * data plane, src/engine/dataplane.ts): node no longer reads the socket, the taker reads exactly `left` bytes from
 * `fd` after `pre`, then says how it ended.
 */
export interface DetachedBody {
  readonly socket: net.Socket;
  readonly fd: number;
  /** Body bytes already read from the socket (at least the `minPre` asked for, unless the body is shorter). */
  readonly pre: Buffer;
  /** Body bytes still to be read from `fd` after `pre`. */
  readonly left: number;
  /** The taker read exactly `left` bytes: the connection carries the next request (back to its pool). */
  done(): void;
  /** The taker failed or stopped somewhere in the body: the connection is closed. */
  abort(): void;
}

/** One socket read queued (was 512 KiB: queued buffers outlived cheap GCs; bench/README.md "c4 vs c1"). */
const BODY_HWM = 64 * 1024;

/**
 * A response body. Like node:http's IncomingMessage, it emits 'error' only to a listener, so a failure can never
 * take the process down. A failure before the consumer is attached (the gateway looks the header up between the
 * backend's answer and reading its body) is kept, and delivered as soon as an 'error' listener is added or the
 * consumer reads.
 */
export class RawBody extends Readable {
  private pending: Error | null = null;
  constructor(
    private readonly more: () => void,
    private readonly abandoned: () => void,
    readonly detach: (minPre: number) => Promise<DetachedBody | null>,
  ) {
    super({ highWaterMark: BODY_HWM });
  }

  fail(e: Error): void {
    if (this.listenerCount('error') > 0) return void this.destroy(e);
    this.pending = e;
    const deliver = (event: string | symbol) => {
      if (event !== 'error' || !this.pending) return;
      this.off('newListener', deliver);
      const err = this.pending;
      this.pending = null;
      process.nextTick(() => this.destroy(err));
    };
    this.on('newListener', deliver);
  }

  override _read(): void {
    if (this.pending) this.destroy(this.pending);
    else this.more();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.abandoned();
    cb(err && this.listenerCount('error') > 0 ? err : null);
  }
}

export function requestHead(method: string, target: string, headers: Record<string, string>): string {
  if (!/^\/[\x21-\x7e]*$/.test(target)) throw new Error('raw-http: request target must be printable ASCII without spaces');
  let s = `${method} ${target} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(k) || /[\r\n\0]/.test(v)) throw new Error(`raw-http: invalid request header ${JSON.stringify(k)}`);
    s += `${k}: ${v}\r\n`;
  }
  return `${s}\r\n`;
}

export function parseHead(text: string): { status: number; headers: Record<string, string>; http11: boolean } {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) throw new Error('bad status line');
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const c = line.indexOf(':');
    if (c <= 0) throw new Error('bad header line');
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(m[2]), headers, http11: m[1] === '1' };
}

import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';

/**
 * A streamed request body framed as aws-chunked with a CRC32 trailer (x-amz-content-sha256:
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER, what current AWS SDKs send by default), so that a body cut short is never an
 * object: the store commits only after the terminating chunk and a trailer checksum that matches what it received.
 *
 * Why: the gateway holds back the last ciphertext bytes until an upload's checksums verified and destroys the
 * backend request when they do not, relying on the store to drop a body shorter than its Content-Length. MinIO and
 * S3 do; versitygw v1.8.0 commits the bytes it received when the connection closes early (a truncated object that
 * replaces the current one: test/backend/contract.ts, "a streamed body that fails before its end").
 *
 * Frames are FRAME bytes (the last one shorter), so the encoded length is known before the first byte is read
 * (S3 wants a Content-Length with aws-chunked); data is written through as slices, never copied. A source that ends
 * early or yields more than `size` bytes errors the framed stream, which aborts the request.
 */
export const FRAME = 64 * 1024;
const TRAILER = 'x-amz-checksum-crc32';

function headerOf(n: number): Buffer {
  return Buffer.from(`${n.toString(16)}\r\n`, 'latin1');
}
const CRLF = Buffer.from('\r\n', 'latin1');

/** Bytes on the wire for a body of `size` bytes. */
export function awsChunkedLength(size: number): number {
  const full = Math.floor(size / FRAME);
  const rest = size % FRAME;
  const frame = (n: number) => n.toString(16).length + 2 + n + 2;
  // '0\r\n', the trailer line (8 base64 characters of CRC32), the closing '\r\n'
  return full * frame(FRAME) + (rest ? frame(rest) : 0) + 3 + (TRAILER.length + 1 + 8 + 2) + 2;
}

export function awsChunkedHeaders(size: number): Record<string, string> {
  return {
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': String(size),
    'x-amz-trailer': TRAILER,
    'content-length': String(awsChunkedLength(size)),
  };
}

class Framer extends Transform {
  private sent = 0;
  /** Bytes still due in the frame being written (0: the next byte starts a frame). */
  private left = 0;
  private crc = 0;
  constructor(private readonly size: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.sent + chunk.length > this.size) return done(new Error(`request body longer than its declared ${this.size} bytes`));
    this.crc = crc32(chunk, this.crc);
    let at = 0;
    while (at < chunk.length) {
      if (this.left === 0) {
        this.left = Math.min(FRAME, this.size - this.sent);
        this.push(headerOf(this.left));
      }
      const n = Math.min(this.left, chunk.length - at);
      this.push(at === 0 && n === chunk.length ? chunk : chunk.subarray(at, at + n));
      at += n;
      this.sent += n;
      this.left -= n;
      if (this.left === 0) this.push(CRLF);
    }
    done();
  }
  override _flush(done: TransformCallback): void {
    if (this.sent !== this.size) return done(new Error(`request body ended after ${this.sent} of its declared ${this.size} bytes`));
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(this.crc >>> 0);
    this.push(Buffer.from(`0\r\n${TRAILER}:${sum.toString('base64')}\r\n\r\n`, 'latin1'));
    done();
  }
}

/** `body` framed; an error of `body` errors the result (and so aborts the request it is piped into). */
export function awsChunkedBody(body: Readable, size: number): Readable {
  const framer = new Framer(size);
  pipeline(body, framer, () => {});
  return framer;
}

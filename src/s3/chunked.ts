/**
 * Request payload decoding for every SigV4 payload mode: plain signed / unsigned bodies and the
 * `aws-chunked` content encoding (signed chunks, unsigned chunks with trailer, signed chunks with signed trailer).
 *
 * The decoder never emits bytes of a signed chunk before that chunk's signature has been verified.
 * Errors are always S3Error and are reported through the stream ('error').
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from '../errors.ts';
import { EMPTY_SHA256, getHeader, signaturesEqual, signString, type AuthResult, type HeaderMap } from './sigv4.ts';

export const MAX_CHUNK_HEADER = 4096;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
const MAX_TRAILER_BYTES = 16 * 1024;

export interface PayloadDecoder extends Transform {
  /** Trailing headers (lowercase names), complete before 'end' is emitted. Never includes x-amz-trailer-signature. */
  readonly trailers: Map<string, string>;
  /** Plaintext bytes emitted so far. */
  readonly decodedLength: number;
}

/** Content-Encoding with the `aws-chunked` token removed (undefined when nothing is left). */
export function stripAwsChunked(contentEncoding: string | undefined): string | undefined {
  if (contentEncoding === undefined) return undefined;
  const rest = contentEncoding.split(',').map((s) => s.trim()).filter((s) => s && s.toLowerCase() !== 'aws-chunked');
  return rest.length ? rest.join(',') : undefined;
}

function parseLength(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (!/^\d{1,16}$/.test(t)) throw new S3Error('InvalidArgument', `Invalid ${name}.`, { ArgumentName: name });
  return Number(t);
}

/** Chunk string to sign (AWS4-HMAC-SHA256-PAYLOAD). */
export const chunkStringToSign = (amzDate: string, scope: string, prevSig: string, chunkSha256Hex: string): string =>
  `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${prevSig}\n${EMPTY_SHA256}\n${chunkSha256Hex}`;

/** Trailer string to sign (AWS4-HMAC-SHA256-TRAILER). */
export const trailerStringToSign = (amzDate: string, scope: string, prevSig: string, trailerSha256Hex: string): string =>
  `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${prevSig}\n${trailerSha256Hex}`;

type State = 'header' | 'data' | 'data-crlf' | 'final-crlf' | 'trailer' | 'done';

class AwsChunkedDecoder extends Transform implements PayloadDecoder {
  readonly trailers = new Map<string, string>();
  decodedLength = 0;
  private state: State = 'header';
  private line: Buffer[] = [];
  private lineLen = 0;
  private remaining = 0;
  private chunkSig = '';
  private prevSig: string;
  private hash: Hash | undefined;
  private pending: Buffer[] = [];
  private crlfSeen = 0;
  private trailerLines: string[] = [];
  private trailerSig: string | undefined;
  private trailerBytes = 0;
  private readonly signed: boolean;
  private readonly withTrailer: boolean;

  constructor(private readonly auth: AuthResult, private readonly expectedLength: number | undefined) {
    super();
    this.signed = auth.payloadMode === 'streaming-signed' || auth.payloadMode === 'streaming-signed-trailer';
    this.withTrailer = auth.payloadMode !== 'streaming-signed';
    this.prevSig = auth.seedSignature;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consume(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      cb();
    } catch (e) {
      cb(asS3Error(e));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.state === 'trailer') {
        // lenient: trailer whose final blank line (or last CRLF) is missing
        if (this.lineLen > 0) {
          let last = Buffer.concat(this.line).toString('latin1');
          this.line = [];
          this.lineLen = 0;
          if (last.endsWith('\r')) last = last.slice(0, -1);
          this.trailerLine(last);
        }
        if (this.state === 'trailer') this.finishTrailer();
      }
      if (this.state !== 'done') throw new S3Error('IncompleteBody', 'The request body ended before the final aws-chunked chunk.');
      if (this.expectedLength !== undefined && this.decodedLength !== this.expectedLength) {
        throw new S3Error('IncompleteBody', `Decoded ${this.decodedLength} bytes, x-amz-decoded-content-length is ${this.expectedLength}.`);
      }
      cb();
    } catch (e) {
      cb(asS3Error(e));
    }
  }

  /** Append to the current line; returns the line (without CR LF) when complete, else undefined. */
  private takeLine(buf: Buffer, pos: number, limit: number, what: string): { line?: string; pos: number } {
    const nl = buf.indexOf(0x0a, pos);
    const end = nl < 0 ? buf.length : nl;
    const piece = buf.subarray(pos, end);
    this.lineLen += piece.length;
    if (this.lineLen > limit) throw new S3Error('InvalidRequest', `The aws-chunked ${what} is too long.`);
    if (piece.length) this.line.push(piece);
    if (nl < 0) return { pos: buf.length };
    let s = Buffer.concat(this.line).toString('latin1');
    this.line = [];
    this.lineLen = 0;
    if (s.endsWith('\r')) s = s.slice(0, -1);
    return { line: s, pos: nl + 1 };
  }

  private consume(buf: Buffer): void {
    let pos = 0;
    while (pos < buf.length) {
      switch (this.state) {
        case 'header': {
          const r = this.takeLine(buf, pos, MAX_CHUNK_HEADER, 'chunk header');
          pos = r.pos;
          if (r.line !== undefined) this.startChunk(r.line);
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, buf.length - pos);
          const piece = buf.subarray(pos, pos + n);
          pos += n;
          this.remaining -= n;
          this.decodedLength += n;
          if (this.expectedLength !== undefined && this.decodedLength > this.expectedLength) {
            throw new S3Error('IncompleteBody', 'The aws-chunked body is longer than x-amz-decoded-content-length.');
          }
          if (this.signed) {
            this.hash!.update(piece);
            this.pending.push(Buffer.from(piece));
          } else if (n) {
            this.push(Buffer.from(piece));
          }
          if (this.remaining === 0) {
            if (this.signed) this.verifyChunk();
            this.state = 'data-crlf';
            this.crlfSeen = 0;
          }
          break;
        }
        case 'data-crlf':
        case 'final-crlf': {
          const c = buf[pos++];
          const want = this.crlfSeen === 0 ? 0x0d : 0x0a;
          if (c !== want) {
            // tolerate a bare LF
            if (!(this.crlfSeen === 0 && c === 0x0a)) throw new S3Error('IncompleteBody', 'Malformed aws-chunked framing: expected CRLF after chunk data.');
            this.crlfSeen = 2;
          } else {
            this.crlfSeen++;
          }
          if (this.crlfSeen === 2) this.state = this.state === 'data-crlf' ? 'header' : 'done';
          break;
        }
        case 'trailer': {
          const r = this.takeLine(buf, pos, MAX_TRAILER_BYTES, 'trailer');
          pos = r.pos;
          if (r.line !== undefined) this.trailerLine(r.line);
          break;
        }
        case 'done': {
          // Some clients append a CRLF; anything else after the end is an error.
          for (; pos < buf.length; pos++) {
            const c = buf[pos];
            if (c !== 0x0d && c !== 0x0a) throw new S3Error('IncompleteBody', 'Unexpected data after the final aws-chunked chunk.');
          }
          break;
        }
      }
    }
  }

  private startChunk(line: string): void {
    const semi = line.indexOf(';');
    const sizeStr = (semi < 0 ? line : line.slice(0, semi)).trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeStr)) throw new S3Error('IncompleteBody', 'Malformed aws-chunked chunk header.');
    const size = parseInt(sizeStr, 16);
    if (size > MAX_CHUNK_SIZE) throw new S3Error('InvalidRequest', `aws-chunked chunk size ${size} exceeds the ${MAX_CHUNK_SIZE} byte limit.`);
    if (this.signed) {
      const ext = semi < 0 ? '' : line.slice(semi + 1).trim();
      const m = /^chunk-signature=([0-9a-f]{64})$/.exec(ext);
      if (!m) throw new S3Error('SignatureDoesNotMatch', 'The aws-chunked chunk signature is missing or malformed.');
      this.chunkSig = m[1]!;
      this.hash = createHash('sha256');
      this.pending = [];
    }
    if (size === 0) {
      if (this.signed) this.verifyChunk();
      this.state = this.withTrailer ? 'trailer' : 'final-crlf';
      this.crlfSeen = 0;
      return;
    }
    this.remaining = size;
    this.state = 'data';
  }

  private verifyChunk(): void {
    const digest = this.hash!.digest('hex');
    this.hash = undefined;
    const expected = signString(this.auth.signingKey, chunkStringToSign(this.auth.amzDate, this.auth.scope, this.prevSig, digest));
    if (!signaturesEqual(expected, this.chunkSig)) {
      this.pending = [];
      throw new S3Error('SignatureDoesNotMatch', 'The aws-chunked chunk signature does not match.');
    }
    this.prevSig = this.chunkSig;
    for (const p of this.pending) this.push(p);
    this.pending = [];
  }

  private trailerLine(line: string): void {
    this.trailerBytes += line.length;
    if (this.trailerBytes > MAX_TRAILER_BYTES) throw new S3Error('InvalidRequest', 'The aws-chunked trailer is too long.');
    if (line === '') {
      this.finishTrailer();
      return;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new S3Error('IncompleteBody', 'Malformed aws-chunked trailer line.');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'x-amz-trailer-signature') {
      if (this.trailerSig !== undefined) throw new S3Error('IncompleteBody', 'Duplicate x-amz-trailer-signature.');
      this.trailerSig = value;
      return;
    }
    if (this.trailerSig !== undefined) throw new S3Error('IncompleteBody', 'Trailer header after x-amz-trailer-signature.');
    if (this.trailers.has(name)) throw new S3Error('InvalidRequest', `Duplicate trailer ${name}.`);
    this.trailers.set(name, value);
    this.trailerLines.push(`${line}\n`);
  }

  private finishTrailer(): void {
    if (this.signed) {
      if (this.trailerSig === undefined) throw new S3Error('SignatureDoesNotMatch', 'The aws-chunked trailer signature is missing.');
      const digest = createHash('sha256').update(this.trailerLines.join(''), 'latin1').digest('hex');
      const expected = signString(this.auth.signingKey, trailerStringToSign(this.auth.amzDate, this.auth.scope, this.prevSig, digest));
      if (!signaturesEqual(expected, this.trailerSig)) {
        throw new S3Error('SignatureDoesNotMatch', 'The aws-chunked trailer signature does not match.');
      }
    }
    this.state = 'done';
  }
}

/** signed: pass through while hashing, compare at the end; unsigned: pass through. Enforces Content-Length if given. */
class PlainDecoder extends Transform implements PayloadDecoder {
  readonly trailers = new Map<string, string>();
  decodedLength = 0;
  private readonly hash: Hash | undefined;
  constructor(private readonly expectedHash: string | undefined, private readonly expectedLength: number | undefined) {
    super();
    this.hash = expectedHash === undefined ? undefined : createHash('sha256');
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    this.decodedLength += b.length;
    if (this.expectedLength !== undefined && this.decodedLength > this.expectedLength) {
      cb(new S3Error('IncompleteBody', 'The request body is longer than Content-Length.'));
      return;
    }
    this.hash?.update(b);
    cb(null, b);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expectedLength !== undefined && this.decodedLength !== this.expectedLength) {
      cb(new S3Error('IncompleteBody'));
      return;
    }
    if (this.hash && !signaturesEqual(this.hash.digest('hex'), this.expectedHash!)) {
      cb(new S3Error('XAmzContentSHA256Mismatch'));
      return;
    }
    cb();
  }
}

/**
 * PlainDecoder's hash check for a plain (not aws-chunked) payload read whole (Gateway.wholePayload, which has
 * already read exactly Content-Length bytes): a signed payload must have the SHA-256 it was signed with, compared in
 * constant time, else XAmzContentSHA256Mismatch.
 */
export function checkPlainPayload(auth: AuthResult, body: Buffer): void {
  if (auth.payloadMode === 'signed' && !signaturesEqual(createHash('sha256').update(body).digest('hex'), auth.payloadHash ?? '')) {
    throw new S3Error('XAmzContentSHA256Mismatch');
  }
}

function asS3Error(e: unknown): S3Error {
  if (e instanceof S3Error) return e;
  return new S3Error('InternalError', undefined, {}, { cause: e });
}

/**
 * Build the decoder that turns the raw request body into the plain payload for the request's payload mode.
 * Headers used: x-amz-decoded-content-length (streaming modes), content-length (plain modes).
 */
export function createPayloadDecoder(auth: AuthResult, headers: HeaderMap): PayloadDecoder {
  switch (auth.payloadMode) {
    case 'signed':
    case 'unsigned':
      return new PlainDecoder(auth.payloadMode === 'signed' ? auth.payloadHash : undefined,
        parseLength(getHeader(headers, 'content-length'), 'Content-Length'));
    case 'streaming-signed':
    case 'streaming-signed-trailer':
    case 'streaming-unsigned-trailer':
      return new AwsChunkedDecoder(auth, parseLength(getHeader(headers, 'x-amz-decoded-content-length'), 'x-amz-decoded-content-length'));
  }
}

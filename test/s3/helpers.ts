/** Test-only helpers: an independent aws-chunked encoder, AWS's own SigV4 signer as an oracle. */
import { createHash, createHmac } from 'node:crypto';
import { Readable } from 'node:stream';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AuthResult } from '../../src/s3/sigv4.ts';
import { signHeaders } from '../../tools/sigv4.ts';

export const AK = 'AKIAIOSFODNN7EXAMPLE';
export const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
export const lookup = (k: string) => (k === AK ? SK : undefined);

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const hmac = (k: Uint8Array, s: string) => createHmac('sha256', k).update(s).digest('hex');
const EMPTY = sha('');

/** The signer's hash interface over node:crypto. */
class Sha256 {
  private h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(private readonly secret?: Uint8Array | string) {
    this.h = secret ? createHmac('sha256', secret as never) : createHash('sha256');
  }
  update(d: Uint8Array | string) {
    this.h.update(d);
  }
  async digest() {
    return new Uint8Array(this.h.digest());
  }
  reset() {
    this.h = this.secret ? createHmac('sha256', this.secret as never) : createHash('sha256');
  }
}

/**
 * AWS's own SigV4 signer (@smithy/signature-v4, what the SDKs use): the independent oracle the gateway's
 * verifier is held against. Raw test requests use tools/sigv4.ts, which shares the gateway's canonical forms.
 */
export function awsSigner(creds: { accessKey: string; secretKey: string }, region = 'us-east-1'): SignatureV4 {
  return new SignatureV4({ service: 's3', region, credentials: { accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey }, sha256: Sha256 as never, uriEscapePath: false, applyChecksum: false });
}

export interface EncodeOpts {
  mode: 'streaming-signed' | 'streaming-signed-trailer' | 'streaming-unsigned-trailer';
  auth?: Pick<AuthResult, 'signingKey' | 'amzDate' | 'scope' | 'seedSignature'>;
  trailers?: Array<[string, string]>;
}

/** Encode chunks of payload as aws-chunked per the AWS streaming docs. */
export function encodeAwsChunked(chunks: Buffer[], o: EncodeOpts): Buffer {
  const out: Buffer[] = [];
  const signed = o.mode !== 'streaming-unsigned-trailer';
  let prev = o.auth?.seedSignature ?? '';
  for (const c of [...chunks.filter((x) => x.length > 0), Buffer.alloc(0)]) {
    let head = c.length.toString(16);
    if (signed) {
      const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${o.auth!.amzDate}\n${o.auth!.scope}\n${prev}\n${EMPTY}\n${sha(c)}`;
      prev = hmac(o.auth!.signingKey, sts);
      head += `;chunk-signature=${prev}`;
    }
    out.push(Buffer.from(head + '\r\n'));
    if (c.length) out.push(c, Buffer.from('\r\n'));
  }
  if (o.mode === 'streaming-signed') {
    out.push(Buffer.from('\r\n'));
  } else {
    const tl = (o.trailers ?? []).map(([k, v]) => `${k}:${v}`);
    for (const l of tl) out.push(Buffer.from(l + '\r\n'));
    if (o.mode === 'streaming-signed-trailer') {
      const sts = `AWS4-HMAC-SHA256-TRAILER\n${o.auth!.amzDate}\n${o.auth!.scope}\n${prev}\n${sha(tl.map((l) => l + '\n').join(''))}`;
      out.push(Buffer.from(`x-amz-trailer-signature:${hmac(o.auth!.signingKey, sts)}\r\n`));
    }
    out.push(Buffer.from('\r\n'));
  }
  return Buffer.concat(out);
}

/**
 * A PutObject of `body` in signed 64 KiB aws-chunks — with a signed trailer when `trailers` are given (the AWS SDK for
 * Java v2 over http), else none (minio-go, mc over http) — signed for `creds` at `endpoint`: what to send (tools/sigv4.ts
 * rawRequest); `forge` edits the framed body after signing.
 */
export function signedStreamingPut(
  creds: { accessKey: string; secretKey: string },
  endpoint: string,
  path: string,
  body: Buffer,
  opts: { trailers?: Array<[string, string]>; headers?: Record<string, string>; forge?: (framed: Buffer) => Buffer } = {},
): { method: 'PUT'; path: string; headers: Record<string, string>; body: Buffer } {
  const chunks: Buffer[] = [];
  for (let off = 0; off < body.length; off += 65536) chunks.push(body.subarray(off, off + 65536));
  const mode = opts.trailers ? 'streaming-signed-trailer' : 'streaming-signed';
  const { trailers } = opts;
  const dummy = { signingKey: Buffer.alloc(32), amzDate: '', scope: '', seedSignature: '' };
  const length = encodeAwsChunked(chunks, { mode, auth: dummy, trailers }).length; // the frame's length does not depend on the signatures
  const trailing: Record<string, string> = trailers
    ? { 'content-encoding': 'aws-chunked', 'x-amz-trailer': trailers.map(([k]) => k).join(','), 'x-amz-sdk-checksum-algorithm': 'CRC32' }
    : {};
  const headers = { ...trailing, ...opts.headers, 'content-length': String(length), 'x-amz-decoded-content-length': String(body.length) };
  const payload = trailers ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER' : 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
  const signed = signHeaders(creds, { method: 'PUT', host: new URL(endpoint).host, path, headers, payload });
  const framed = encodeAwsChunked(chunks, { mode, auth: signed.auth, trailers });
  return { method: 'PUT', path, headers: signed.headers, body: opts.forge ? opts.forge(framed) : framed };
}

/** Split a buffer at the given cut points. */
export function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const pts = [...new Set(cuts.map((c) => Math.max(0, Math.min(buf.length, c))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of pts) {
    out.push(buf.subarray(last, p));
    last = p;
  }
  out.push(buf.subarray(last));
  return out.filter((b) => b.length > 0);
}

export async function collect(src: Buffer[], t: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  return new Promise<Buffer>((resolve, reject) => {
    t.on('data', (d: Buffer) => out.push(d));
    t.on('end', () => resolve(Buffer.concat(out)));
    t.on('error', reject);
    Readable.from(src).on('error', reject).pipe(t as NodeJS.WritableStream);
  });
}

export const crc32b64 = async (b: Buffer) => {
  const { Crc32 } = await import('@aws-crypto/crc32');
  const x = Buffer.alloc(4);
  x.writeUInt32BE(new Crc32().update(b).digest() >>> 0);
  return x.toString('base64');
};

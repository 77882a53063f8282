/**
 * The one S3 client configuration used against every target, and streaming body helpers.
 * Keep-alive agent; checksums WHEN_REQUIRED (no CRC32 over every byte on the client, so the client is not the
 * bottleneck; stream bodies are sent with UNSIGNED-PAYLOAD, Buffer bodies are SHA-256 signed by the SDK).
 */
import { Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface Endpoint {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

export function makeClient(e: Endpoint, maxSockets = 64): S3Client {
  return new S3Client({
    endpoint: e.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: e.accessKey, secretAccessKey: e.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets }), requestTimeout: 600_000 },
  });
}

/**
 * The JavaScript SDK as it comes: a CRC32 for every PUT, so a stream body goes as aws-chunks with a CRC32 trailer in
 * HTTP chunked transfer coding, behind `Expect: 100-continue` (which the SDK waits for only with an agent of its own:
 * options here, not an Agent instance).
 */
export function makeDefaultClient(e: Endpoint, o: { agent?: boolean } = {}): S3Client {
  return new S3Client({
    endpoint: e.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: e.accessKey, secretAccessKey: e.secretKey },
    maxAttempts: 1,
    // an http.Agent of the caller's: then the SDK sends the body without waiting for 100 Continue
    requestHandler: o.agent ? { httpAgent: new Agent({ keepAlive: true }), requestTimeout: 600_000 } : { requestTimeout: 600_000 },
  });
}

/** 4 MiB of random bytes reused as the content of every generated body (incompressible, no allocation per byte). */
const pattern = randomBytes(4 * MiB);

/** A Readable of `size` bytes generated on the fly (never held in memory). */
export function bodyStream(size: number, chunk = MiB): Readable {
  let sent = 0;
  let off = 0;
  return new Readable({
    highWaterMark: chunk,
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, size - sent, pattern.length - off);
      const b = pattern.subarray(off, off + n);
      off = (off + n) % pattern.length;
      sent += n;
      this.push(b);
    },
  });
}

export function bodyBuffer(size: number, seed = 0): Buffer {
  const off = (seed * 4099) % (pattern.length - size + 1);
  return Buffer.from(pattern.subarray(off, off + size));
}

export async function putStream(c: S3Client, bucket: string, key: string, size: number): Promise<void> {
  await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bodyStream(size), ContentLength: size }));
}

/** GET (optionally a range) and drain the body; returns the number of bytes received. */
export async function getDrain(c: S3Client, bucket: string, key: string, range?: string): Promise<number> {
  const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
  let n = 0;
  for await (const chunk of r.Body as AsyncIterable<Uint8Array>) n += chunk.length;
  return n;
}

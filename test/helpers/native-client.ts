/**
 * The client the native data plane tests use (test/server/native-*.test.ts): bench/lib/s3.ts's settings, so a
 * stream body goes UNSIGNED-PAYLOAD with its Content-Length and nothing asks for a checksum — the bodies the
 * gateway's pumps take.
 */
import { Agent } from 'node:http';
import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import type { TestGateway } from '../../tools/gateway.ts';

const MiB = 1024 * 1024;

export function nativeClient(g: TestGateway): S3Client {
  return new S3Client({
    endpoint: g.url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: g.accessKey, secretAccessKey: g.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 4 }), requestTimeout: 300_000 },
  });
}

/** A Readable over `b` in 1 MiB pieces (the SDK cannot hash it: it sends UNSIGNED-PAYLOAD). */
export const streamOf = (b: Buffer): Readable =>
  Readable.from(
    (function* () {
      for (let i = 0; i < b.length; i += MiB) yield b.subarray(i, i + MiB);
    })(),
  );

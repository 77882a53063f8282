/**
 * Shared-MinIO helpers for tests (the server itself is started once by global-setup.ts).
 *
 *   import { minioCoords, uniqueBucket, minioBackend } from '../helpers/s3.ts';
 *   const { endpoint, accessKey, secretKey } = minioCoords();
 *   const bucket = uniqueBucket('mytest');            // valid, unique S3 bucket name (not created)
 *   const backend = minioBackend();                   // S3Backend against the shared MinIO
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import type { MinioCoords } from '../../tools/minio.ts';

export function minioCoords(): MinioCoords {
  return inject('minio');
}

let counter = 0;
/** A fresh valid bucket name: `<prefix>-<pid>-<n>-<random>`, lower-case, <= 63 chars. */
export function uniqueBucket(prefix = 't'): string {
  const p = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 30).replace(/^-+|-+$/g, '') || 't';
  return `${p}-${process.pid}-${++counter}-${randomBytes(3).toString('hex')}`;
}

export function minioBackend(overrides: { maxAttempts?: number } = {}): Backend {
  const m = minioCoords();
  return createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region, ...overrides });
}

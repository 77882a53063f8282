import { describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords } from '../helpers/s3.ts';
import { versionsContract } from './contract.ts';

versionsContract('s3 (MinIO)', () => {
  const m = minioCoords();
  return Promise.resolve({ backend: createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region }) });
});

describe('fs backend: no object versions', () => {
  it('has none of the versioning calls (the gateway then answers PutBucketVersioning NotImplemented)', async () => {
    const tmp = makeTmpDir('lakecrypt-fs-versions-');
    const b = createBackend({ kind: 'fs', dataDir: tmp.path });
    expect(['getBucketVersioning', 'putBucketVersioning', 'listObjectVersions'].map((m) => typeof (b as unknown as Record<string, unknown>)[m])).toEqual(['undefined', 'undefined', 'undefined']);
    await b.close();
    tmp.cleanup();
  });
});

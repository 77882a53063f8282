import { createBackend } from '../../src/backend/index.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords } from '../helpers/s3.ts';
import { versionsContract } from './contract.ts';

versionsContract('s3 (MinIO)', () => {
  const m = minioCoords();
  return Promise.resolve({ backend: createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region }) });
});

versionsContract('fs', () => {
  const tmp = makeTmpDir('lakecrypt-fs-versions-');
  return Promise.resolve({ backend: createBackend({ kind: 'fs', dataDir: tmp.path }), cleanup: () => tmp.cleanup() });
});

import { createBackend } from '../../src/backend/index.ts';
import { minioCoords } from '../helpers/s3.ts';
import { backendContract } from './contract.ts';

backendContract('s3 (MinIO)', async () => {
  const m = minioCoords();
  return { backend: createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region }) };
});

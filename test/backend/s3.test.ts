import { describe, it, expect } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import { minioCoords } from '../helpers/s3.ts';
import { backendContract } from './contract.ts';

backendContract(
  's3 (MinIO)',
  async () => {
    const m = minioCoords();
    return { backend: createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region }) };
  },
  // MinIO stores 'p' and 'p/q' both, but lists only 'p'
  { listsMetadata: true, nestedKeys: 'unlisted' },
);

describe('s3 backend connection reuse', () => {
  it('HEADs (found and missing) and GETs give their sockets back: 60 calls over 2 sockets complete', async () => {
    const m = minioCoords();
    const backend = createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region, maxSockets: 2 });
    const bucket = `sockets-${Date.now()}`;
    await backend.createBucket(bucket);
    await backend.putObject(bucket, 'k', Buffer.from('v'), { size: 1 });
    for (let i = 0; i < 20; i++) {
      expect((await backend.headObject(bucket, 'k'))?.size).toBe(1);
      expect(await backend.headObject(bucket, `missing-${i}`)).toBeNull();
      expect((await backend.getBuffer(bucket, 'k')).data.toString()).toBe('v');
    }
    await backend.deleteObject(bucket, 'k');
    await backend.deleteBucket(bucket);
    await backend.close();
  }, 30_000);
});

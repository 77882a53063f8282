/**
 * The backend contract against versitygw (v1.8.0: S3 over a POSIX directory, metadata in xattrs) through the same
 * S3 backend class as MinIO: lakecrypt's second real S3 store. What differs from MinIO is named in the traits.
 */
import { createBackend } from '../../src/backend/index.ts';
import { startVersitygw } from '../../tools/versitygw.ts';
import { backendContract } from './contract.ts';

backendContract(
  's3 (versitygw)',
  async () => {
    const v = await startVersitygw();
    return {
      backend: createBackend({ kind: 's3', endpoint: v.endpoint, accessKey: v.accessKey, secretKey: v.secretKey, region: v.region }),
      cleanup: () => v.stop(),
    };
  },
  // no listing extension (metadata=true is ignored, not refused); part sizes checked before later parts' existence
  { listsMetadata: false, partSizeBeforeLaterParts: true },
);

import { createBackend } from '../../src/backend/index.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { backendContract } from './contract.ts';

backendContract('fs', async () => {
  const tmp = makeTmpDir('lakecrypt-fs-contract-');
  return { backend: createBackend({ kind: 'fs', dataDir: tmp.path }), cleanup: () => tmp.cleanup() };
});

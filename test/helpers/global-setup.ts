/**
 * Vitest globalSetup: one MinIO for the whole run, shared by every test file.
 *
 * In a test:
 *   import { inject } from 'vitest';
 *   const minio = inject('minio');   // { endpoint, accessKey, secretKey, region, dataDir }
 * or use `minioCoords()` / `uniqueBucket()` from test/helpers/s3.ts (the process harness shared with bench and scripts is in tools/).
 *
 * Set LAKECRYPT_TEST_MINIO_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY) to use an already running server instead.
 */
import type { TestProject } from 'vitest/node';
import { startMinio, type MinioCoords, type MinioHandle } from '../../tools/minio.ts';
import { buildNative } from '../../scripts/build-native.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    minio: MinioCoords;
  }
}

let handle: MinioHandle | null = null;

export default async function setup(project: TestProject) {
  // The native data plane, so that the gateway's large GETs take it in tests (a missing gcc only warns: the Node path).
  try {
    buildNative({ quiet: true });
  } catch (e) {
    console.warn(`[global-setup] native data plane not built: ${e instanceof Error ? e.message : String(e)}`);
  }
  let coords: MinioCoords;
  if (process.env.LAKECRYPT_TEST_MINIO_ENDPOINT) {
    coords = {
      endpoint: process.env.LAKECRYPT_TEST_MINIO_ENDPOINT,
      accessKey: process.env.LAKECRYPT_TEST_MINIO_ACCESS_KEY ?? 'minioadmin',
      secretKey: process.env.LAKECRYPT_TEST_MINIO_SECRET_KEY ?? 'minioadmin',
      region: 'us-east-1',
      dataDir: '',
    };
  } else {
    handle = await startMinio();
    const { endpoint, accessKey, secretKey, region, dataDir } = handle;
    coords = { endpoint, accessKey, secretKey, region, dataDir };
  }
  project.provide('minio', coords);
  // Also as env vars, for child processes (e.g. a gateway started by a test) and non-vitest tools.
  process.env.LAKECRYPT_TEST_MINIO_ENDPOINT = coords.endpoint;
  process.env.LAKECRYPT_TEST_MINIO_ACCESS_KEY = coords.accessKey;
  process.env.LAKECRYPT_TEST_MINIO_SECRET_KEY = coords.secretKey;
  return async () => {
    await handle?.stop();
    handle = null;
  };
}

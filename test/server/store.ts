/**
 * The S3 store behind a suite's gateway when it is neither the fs backend nor the shared MinIO: versitygw, started
 * by the test file that runs the suite (api-versitygw.test.ts and the others).
 *
 *   const store = versitygwStore();          // at the top of a test file: started before the suite, stopped after
 *   apiSuite('s3', store);                   // the suite's gateway uses it instead of the shared MinIO
 *
 * A suite names the store it runs on with `storeName(kind, store)` ('fs' | 'minio' | 'versitygw') where the store's
 * own behaviour shows through the gateway, and says which behaviour at that spot.
 */
import { afterAll, beforeAll } from 'vitest';
import type { MinioCoords } from '../../tools/minio.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { startVersitygw, type VersitygwHandle } from '../../tools/versitygw.ts';

export interface SuiteStore {
  name: 'versitygw';
  /** For test titles: the name, and how it was started when that matters ('versitygw --versioning-dir'). */
  label: string;
  /** Its S3 coordinates (startTestGateway's `minio` option); known once the test file's beforeAll ran. */
  coords(): MinioCoords;
}

export type StoreName = 'fs' | 'minio' | 'versitygw';

export function storeName(kind: 'fs' | 's3', store?: SuiteStore): StoreName {
  return store?.name ?? (kind === 'fs' ? 'fs' : 'minio');
}

/** A private versitygw for this test file (beforeAll / afterAll at the file's top level). */
export function versitygwStore(o: { versioning?: boolean } = {}): SuiteStore {
  let v: VersitygwHandle | undefined;
  let tmp: { path: string; cleanup(): void } | undefined;
  beforeAll(async () => {
    tmp = o.versioning ? makeTmpDir('lakecrypt-versitygw-versions-') : undefined;
    v = await startVersitygw({ versioningDir: tmp?.path });
  });
  afterAll(async () => {
    await v?.stop();
    tmp?.cleanup();
  });
  return {
    name: 'versitygw',
    label: o.versioning ? 'versitygw --versioning-dir' : 'versitygw',
    coords() {
      if (!v) throw new Error('versitygw is not running (versitygwStore() must be called at the top level of the test file)');
      return v;
    },
  };
}

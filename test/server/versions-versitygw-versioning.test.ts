import { versionsSuite } from './versions-suite.ts';
import { versitygwStore } from './store.ts';

// The gateway's backend is a private versitygw with bucket versioning available (--versioning-dir), buckets left
// unversioned: the null version's answers differ from versitygw without it (HEAD ?versionId=null 404, CopySource 400).
versionsSuite('s3', versitygwStore({ versioning: true }));

import { conformanceSuite } from './conformance-suite.ts';
import { versitygwStore } from './store.ts';

// The gateway's backend is a private versitygw (v1.8.0, S3 over a POSIX directory): lakecrypt's second real S3 store.
conformanceSuite('s3', versitygwStore());

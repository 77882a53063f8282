import { conformanceSuite } from './conformance-suite.ts';

conformanceSuite('s3');

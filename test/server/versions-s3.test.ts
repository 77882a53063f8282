import { versionsSuite } from './versions-suite.ts';

versionsSuite('s3');

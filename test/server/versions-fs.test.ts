import { versionsSuite } from './versions-suite.ts';

versionsSuite('fs');

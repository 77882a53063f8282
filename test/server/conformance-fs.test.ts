import { conformanceSuite } from './conformance-suite.ts';

conformanceSuite('fs');

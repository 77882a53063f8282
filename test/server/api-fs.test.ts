import { apiSuite } from './api-suite.ts';

apiSuite('fs');

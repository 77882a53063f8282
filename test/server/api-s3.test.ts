import { apiSuite } from './api-suite.ts';

apiSuite('s3');

import { randomBytes } from 'node:crypto';

let n = 0;
/** A fresh valid S3 bucket name. */
export function uniqueBucketName(prefix = 't'): string {
  return `${prefix}-${process.pid}-${++n}-${randomBytes(4).toString('hex')}`;
}

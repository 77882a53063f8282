import { S3Error } from '../errors.ts';

/** S3's bucket naming rules: the one definition the server, the backends and the configuration share. */
export function isBucketName(bucket: string): boolean {
  return (
    typeof bucket === 'string' &&
    bucket.length >= 3 &&
    bucket.length <= 63 &&
    /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(bucket) &&
    !bucket.includes('..') &&
    // a dash beside a dot: not a valid DNS label, refused by S3 and MinIO alike
    !bucket.includes('.-') &&
    !bucket.includes('-.') &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(bucket) &&
    !bucket.startsWith('xn--') &&
    !bucket.startsWith('sthree-') &&
    !bucket.endsWith('-s3alias') &&
    !bucket.endsWith('--ol-s3')
  );
}

/** Throws InvalidBucketName. */
export function checkBucketName(bucket: string): void {
  if (!isBucketName(bucket)) throw new S3Error('InvalidBucketName', undefined, { BucketName: String(bucket) });
}

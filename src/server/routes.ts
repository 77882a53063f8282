/**
 * The one routing table of the S3 port: which handler serves a request AND the S3 operation name that logs and
 * metrics use, from the same row, so the two cannot drift apart. Rows are tried in order; the first whose `when`
 * holds serves. A request no row takes gets the answer S3 gives for it (`refusal`).
 */
import { S3Error } from '../errors.ts';
import * as buckets from './buckets.ts';
import type { Gateway } from './gateway.ts';
import * as mp from './multipart.ts';
import { getObjectAttributes } from './object-attributes.ts';
import * as objects from './objects.ts';
import { putObject } from './put-object.ts';
import type { S3Request } from './request.ts';

export interface Route {
  /** S3 API operation name (logs, metrics, per-operation rules such as GetBucketLocation's region). */
  op: string;
  when: (r: S3Request) => boolean;
  run: (g: Gateway, r: S3Request) => Promise<void>;
}

/** Query parameters that select another API than the plain object/bucket one. */
const SUBRESOURCES = new Set([
  'acl', 'policy', 'cors', 'lifecycle', 'tagging', 'website', 'logging', 'notification', 'replication', 'encryption',
  'object-lock', 'legal-hold', 'retention', 'restore', 'select', 'attributes', 'torrent', 'versions', 'versioning',
  'accelerate', 'requestPayment', 'analytics', 'inventory', 'metrics', 'intelligent-tiering', 'ownershipControls',
  'publicAccessBlock', 'policyStatus', 'location', 'uploads', 'delete',
]);
function hasSubresource(r: S3Request): boolean {
  for (const k of r.query.keys()) if (SUBRESOURCES.has(k)) return true;
  return false;
}

const bucketLevel = (r: S3Request, method: string) => r.bucket !== '' && r.key === '' && r.method === method;
const objectLevel = (r: S3Request, method: string) => r.key !== '' && r.method === method;
const has = (r: S3Request, k: string) => r.query.has(k);
const plain = (r: S3Request) => !hasSubresource(r);
const copying = (r: S3Request) => r.req.headers['x-amz-copy-source'] !== undefined;

export const ROUTES: readonly Route[] = [
  { op: 'ListBuckets', when: (r) => r.bucket === '' && r.method === 'GET', run: buckets.listBuckets },
  // bucket level
  { op: 'CreateBucket', when: (r) => bucketLevel(r, 'PUT') && plain(r), run: buckets.createBucket },
  { op: 'HeadBucket', when: (r) => bucketLevel(r, 'HEAD'), run: buckets.headBucket },
  { op: 'DeleteBucket', when: (r) => bucketLevel(r, 'DELETE') && plain(r), run: buckets.deleteBucket },
  { op: 'GetBucketLocation', when: (r) => bucketLevel(r, 'GET') && has(r, 'location'), run: buckets.getBucketLocation },
  { op: 'ListMultipartUploads', when: (r) => bucketLevel(r, 'GET') && has(r, 'uploads'), run: mp.listMultipartUploads },
  { op: 'PutBucketVersioning', when: (r) => bucketLevel(r, 'PUT') && has(r, 'versioning'), run: buckets.putBucketVersioning },
  { op: 'GetBucketVersioning', when: (r) => bucketLevel(r, 'GET') && has(r, 'versioning'), run: buckets.getBucketVersioning },
  { op: 'ListObjectVersions', when: (r) => bucketLevel(r, 'GET') && has(r, 'versions'), run: buckets.listObjectVersions },
  { op: 'ListObjectsV2', when: (r) => bucketLevel(r, 'GET') && plain(r) && r.query.get('list-type') === '2', run: (g, r) => buckets.listObjects(g, r, true) },
  { op: 'ListObjects', when: (r) => bucketLevel(r, 'GET') && plain(r), run: (g, r) => buckets.listObjects(g, r, false) },
  { op: 'DeleteObjects', when: (r) => bucketLevel(r, 'POST') && has(r, 'delete'), run: buckets.deleteObjects },
  // object level
  { op: 'UploadPartCopy', when: (r) => objectLevel(r, 'PUT') && has(r, 'partNumber') && has(r, 'uploadId') && copying(r), run: mp.uploadPartCopy },
  { op: 'UploadPart', when: (r) => objectLevel(r, 'PUT') && has(r, 'partNumber') && has(r, 'uploadId'), run: mp.uploadPart },
  { op: 'CopyObject', when: (r) => objectLevel(r, 'PUT') && plain(r) && copying(r), run: objects.copyObject },
  { op: 'PutObject', when: (r) => objectLevel(r, 'PUT') && plain(r), run: putObject },
  { op: 'GetObjectAttributes', when: (r) => objectLevel(r, 'GET') && has(r, 'attributes'), run: getObjectAttributes },
  { op: 'ListParts', when: (r) => objectLevel(r, 'GET') && has(r, 'uploadId'), run: mp.listParts },
  { op: 'GetObject', when: (r) => objectLevel(r, 'GET') && plain(r), run: (g, r) => objects.getObject(g, r, false) },
  { op: 'HeadObject', when: (r) => objectLevel(r, 'HEAD') && plain(r), run: (g, r) => objects.getObject(g, r, true) },
  { op: 'CreateMultipartUpload', when: (r) => objectLevel(r, 'POST') && has(r, 'uploads'), run: mp.createMultipartUpload },
  { op: 'CompleteMultipartUpload', when: (r) => objectLevel(r, 'POST') && has(r, 'uploadId'), run: mp.completeMultipartUpload },
  { op: 'AbortMultipartUpload', when: (r) => objectLevel(r, 'DELETE') && has(r, 'uploadId'), run: mp.abortMultipartUpload },
  { op: 'DeleteObject', when: (r) => objectLevel(r, 'DELETE') && plain(r), run: objects.deleteObject },
];

export function routeOf(r: S3Request): Route | undefined {
  return ROUTES.find((x) => x.when(r));
}

/** What S3 answers a request no row serves: an API it does not offer here, or a method the resource has not. */
export function refusal(r: S3Request): S3Error {
  const known = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].includes(r.method);
  if (!r.bucket || !known) return new S3Error('MethodNotAllowed');
  return new S3Error('NotImplemented', `This ${r.key ? 'object' : 'bucket'} operation is not implemented by lakecrypt.`);
}

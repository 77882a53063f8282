/** The one routing table: the handler's row also names the operation, for every request shape S3 clients send. */
import { describe, it, expect } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { refusal, routeOf } from '../../src/server/routes.ts';
import type { S3Request } from '../../src/server/request.ts';

function req(method: string, path: string, headers: Record<string, string> = {}): S3Request {
  const [p, q = ''] = path.split('?');
  const [, bucket = '', ...rest] = p!.split('/');
  return { method, bucket, key: rest.join('/'), query: new URLSearchParams(q), req: { headers } as unknown as IncomingMessage } as S3Request;
}

describe('routes', () => {
  it.each([
    ['GET', '/', 'ListBuckets'],
    ['PUT', '/b', 'CreateBucket'],
    ['HEAD', '/b', 'HeadBucket'],
    ['DELETE', '/b', 'DeleteBucket'],
    ['GET', '/b?location', 'GetBucketLocation'],
    ['GET', '/b?uploads', 'ListMultipartUploads'],
    // counted as ListObjects before the table was one
    ['GET', '/b?versioning', 'GetBucketVersioning'],
    ['GET', '/b?list-type=2&prefix=a', 'ListObjectsV2'],
    ['GET', '/b?prefix=a', 'ListObjects'],
    ['POST', '/b?delete', 'DeleteObjects'],
    ['PUT', '/b/k?partNumber=1&uploadId=u', 'UploadPart'],
    ['PUT', '/b/k', 'PutObject'],
    ['GET', '/b/k?uploadId=u', 'ListParts'],
    ['GET', '/b/k?attributes', 'GetObjectAttributes'],
    ['GET', '/b/k', 'GetObject'],
    ['HEAD', '/b/k', 'HeadObject'],
    ['POST', '/b/k?uploads', 'CreateMultipartUpload'],
    ['POST', '/b/k?uploadId=u', 'CompleteMultipartUpload'],
    ['DELETE', '/b/k?uploadId=u', 'AbortMultipartUpload'],
    ['DELETE', '/b/k', 'DeleteObject'],
  ])('%s %s -> %s', (method, path, op) => {
    expect(routeOf(req(method, path))?.op).toBe(op);
  });

  it('copies are told apart by x-amz-copy-source', () => {
    expect(routeOf(req('PUT', '/b/k', { 'x-amz-copy-source': '/a/b' }))?.op).toBe('CopyObject');
    expect(routeOf(req('PUT', '/b/k?partNumber=2&uploadId=u', { 'x-amz-copy-source': '/a/b' }))?.op).toBe('UploadPartCopy');
  });

  it.each([
    // counted as CreateBucket before: no row serves it, and the answer is NotImplemented
    ['PUT', '/b?tagging', 'NotImplemented'],
    ['GET', '/b?acl', 'NotImplemented'],
    ['PUT', '/b/k?tagging', 'NotImplemented'],
    ['GET', '/b/k?acl', 'NotImplemented'],
    ['DELETE', '/b/k?tagging', 'NotImplemented'],
    ['POST', '/b/k', 'NotImplemented'],
    ['PUT', '/', 'MethodNotAllowed'],
    ['PATCH', '/b/k', 'MethodNotAllowed'],
  ])('%s %s is served by no row: %s', (method, path, code) => {
    const r = req(method, path);
    expect(routeOf(r)).toBeUndefined();
    expect(refusal(r).code).toBe(code);
  });
});

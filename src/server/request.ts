export { checkBucketName } from '../s3/names.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { S3Error } from '../errors.ts';
import type { User } from '../auth/users.ts';

/** Everything a handler needs about one S3 request, parsed once. */
export interface S3Request {
  id: string;
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Raw path as received (percent-encoded), without the query. */
  rawPath: string;
  rawQuery: string;
  query: URLSearchParams;
  bucket: string;
  key: string;
  user: User;
  /** Operation name for logs and metrics, set by dispatch. */
  op: string;
  header(name: string): string | undefined;
  bytesIn: number;
  bytesOut: number;
}

/**
 * Split path-style or virtual-hosted-style addressing into bucket and key. `virtual`: the bucket came in the Host
 * header (SigV2 signs `/bucket` before the path then).
 */
export function addressOf(rawPath: string, host: string | undefined, domains: string[]): { bucket: string; key: string; virtual: boolean } {
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw new S3Error('InvalidURI');
  }
  const hostname = (host ?? '').replace(/:\d+$/, '').toLowerCase();
  for (const d of domains) {
    if (hostname.endsWith(`.${d}`)) {
      const bucket = hostname.slice(0, -(d.length + 1));
      return { bucket, key: path.replace(/^\//, ''), virtual: true };
    }
  }
  const rest = path.replace(/^\//, '');
  const slash = rest.indexOf('/');
  if (slash < 0) return { bucket: rest, key: '', virtual: false };
  return { bucket: rest.slice(0, slash), key: rest.slice(slash + 1), virtual: false };
}


export function checkKey(key: string): void {
  if (Buffer.byteLength(key, 'utf8') > 1024) throw new S3Error('KeyTooLongError');
  // A lone surrogate would not survive UTF-8 encoding: such a key was not valid UTF-8 on the wire.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(key)) {
    throw new S3Error('InvalidArgument', 'Object key is not valid UTF-8.');
  }
}

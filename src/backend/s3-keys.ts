import { S3Error } from '../errors.ts';

/**
 * Object keys the S3 backend does not send to a store, because a store that maps keys onto file paths stores them
 * as ANOTHER key: a "." or ".." path segment, or an empty one other than the last ('a//b', a leading '/').
 * Measured (test/backend/contract.ts, "never stored under another key"): versitygw v1.8.0 stores 'x/../y' as 'y',
 * 'x/./y' as 'x/y', 'a//d' as 'a/d' and '/k' as 'k'; MinIO refuses all of them except a leading '/', which it drops
 * ('/k' is 'k'). Sent through, such a write replaces the other key's data object while its header stays under
 * the key the client named: the other object is lost. S3 itself keeps these keys apart, but the backend cannot tell
 * a store that does from one that does not, so they are refused on every S3 store (the fs backend keeps them).
 * A trailing '/' (a directory marker, 'dir/') is allowed.
 */
export function aliasedKey(key: string): boolean {
  if (key.startsWith('/') || key.includes('//')) return true;
  if (!key.includes('.')) return false; // the common case
  for (const segment of key.split('/')) if (segment === '.' || segment === '..') return true;
  return false;
}

/** Throws InvalidArgument (400) for a key aliasedKey() refuses; `bucket` and `key` go into the error's fields. */
export function checkStoredKey(bucket: string, key: string): void {
  if (!aliasedKey(key)) return;
  throw new S3Error(
    'InvalidArgument',
    'An object key with a "." or ".." path segment, or an empty one ("//", a leading "/"), is refused on an S3 backend: stores that keep objects as files (versitygw; MinIO for a leading "/") would store it as another key.',
    { BucketName: bucket, Key: key },
  );
}

/**
 * The listing core that ListObjects (V1, V2) and ListObjectVersions share: the request's max-keys and
 * encoding-type, one backend page mapped to what clients see (plaintext sizes, the ETags HEAD and GET show), and
 * S3's rule that a common prefix at or before the marker is not listed again.
 */
import type { ListResult } from '../backend/types.ts';
import { plaintextSize } from '../engine/index.ts';
import { S3Error } from '../errors.ts';
import type { Gateway } from './gateway.ts';
import type { S3Request } from './request.ts';

/** max-keys: absent or empty is S3's default (1000); more than 1000 is served as 1000, as S3 does. */
export function maxKeysOf(r: S3Request): number {
  const v = r.query.get('max-keys');
  if (v === null || v === '') return 1000;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
    throw new S3Error('InvalidArgument', 'Provided max-keys not an integer or within integer range', { ArgumentName: 'max-keys', ArgumentValue: v });
  }
  return Math.min(n, 1000);
}

export function encodingTypeOf(r: S3Request): 'url' | undefined {
  const v = r.query.get('encoding-type');
  if (v === null) return undefined;
  if (v !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type', ArgumentValue: v });
  return 'url';
}

/** Stored size -> plaintext size; objects that did not come through lakecrypt keep their stored size. */
function sizeOf(stored: number): number {
  try {
    return plaintextSize(stored);
  } catch {
    return stored;
  }
}

/**
 * The ETags a listing shows, the same as HEAD and GET show (ObjectStore.clientEtag). Backends that list user
 * metadata (fs, MinIO) answer in the listing itself; otherwise one HEAD per object.
 */
async function listedEtags(g: Gateway, bucket: string, objects: ListResult['objects']): Promise<string[]> {
  const out = new Array<string>(objects.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < objects.length; i = next++) {
      const o = objects[i];
      let meta = o.meta;
      if (meta === undefined) meta = (await g.backend.headObject(bucket, o.key))?.meta ?? {};
      out[i] = await g.store.clientEtag(bucket, o.key, { etag: o.etag, meta });
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, objects.length) }, worker));
  return out;
}

export interface PageRequest {
  prefix: string;
  delimiter: string;
  maxKeys: number;
  /** Exclusive: V1 marker, V2 start-after or continuation token, ListObjectVersions key-marker. */
  startAfter?: string;
}

export interface ListedObject { key: string; size: number; etag: string; lastModified: Date }

export interface Page {
  objects: ListedObject[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The greatest key or common prefix on the page: where the next page starts after (NextMarker, NextKeyMarker, the token). */
  last?: string;
}

/**
 * V2 continuation tokens are the gateway's own: where the next page starts after, as ListObjects' marker. The
 * backend's tokens are not passed on: MinIO's, with a delimiter other than '/', name the common prefix a page
 * ended on, and the next page lists it again, for ever. A token says nothing a listing did not show.
 */
export function continuationToken(last: string): string {
  return Buffer.from(JSON.stringify({ after: last })).toString('base64url');
}

/** The key a continuation token starts after; anything else is S3's answer to a token it did not issue. */
export function startOfToken(token: string): string {
  let after: unknown;
  try {
    ({ after } = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { after?: unknown });
  } catch {
    after = undefined;
  }
  if (typeof after !== 'string' || after === '' || continuationToken(after) !== token) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token', ArgumentValue: token });
  }
  return after;
}

/**
 * The common prefix the marker itself falls under (`a/` for marker `a/b` or `a/` with delimiter `/`), if any. S3
 * does not list it: keys after the marker under it roll up into a prefix that sorts at or before the marker.
 */
function markerPrefix(p: PageRequest): string | undefined {
  if (!p.delimiter || !p.startAfter || !p.startAfter.startsWith(p.prefix)) return undefined;
  const i = p.startAfter.indexOf(p.delimiter, p.prefix.length);
  return i < 0 ? undefined : p.startAfter.slice(0, i + p.delimiter.length);
}

const bytewise = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * One page of a listing as clients see it: plaintext sizes, client ETags, at most maxKeys entries. A marker under
 * a common prefix starts the backend past every key under it (the prefix followed by U+10FFFF, the greatest
 * character): asked to start inside it, the fs backend lists the prefix again, and so does MinIO for delimiters
 * other than '/', so a client paging by markers would get it back for ever. The prefix is also left out of what
 * comes back, should a key under it follow that character.
 */
export async function listPage(g: Gateway, bucket: string, p: PageRequest): Promise<Page> {
  if (p.maxKeys === 0) return { objects: [], commonPrefixes: [], isTruncated: false };
  const skip = markerPrefix(p);
  let startAfter = p.startAfter || undefined;
  const past = skip === undefined ? undefined : `${skip}\u{10FFFF}`;
  // (within S3's 1,024 bytes of a key, which a backend may hold start-after to)
  if (past !== undefined && Buffer.byteLength(past) <= 1024 && bytewise(past, startAfter!) > 0) startAfter = past;
  const page = await g.backend.listObjects(bucket, {
    prefix: p.prefix || undefined,
    delimiter: p.delimiter || undefined,
    startAfter,
    maxKeys: p.maxKeys,
    withMeta: true,
  });
  const commonPrefixes = skip === undefined ? page.commonPrefixes : page.commonPrefixes.filter((c) => c !== skip);
  const etags = await listedEtags(g, bucket, page.objects);
  const objects = page.objects.map((o, i) => ({ key: o.key, size: sizeOf(o.size), etag: etags[i], lastModified: o.lastModified }));
  const lastKey = objects.at(-1)?.key;
  const lastPrefix = commonPrefixes.at(-1);
  const last = lastKey === undefined ? lastPrefix : lastPrefix === undefined || bytewise(lastKey, lastPrefix) > 0 ? lastKey : lastPrefix;
  return { objects, commonPrefixes, isTruncated: page.isTruncated, last };
}

export interface VersionsPageRequest {
  prefix: string;
  delimiter: string;
  maxKeys: number;
  keyMarker: string;
  versionIdMarker: string;
}

export interface ListedVersion extends ListedObject {
  versionId: string;
  isLatest: boolean;
  deleteMarker: boolean;
}

/**
 * One page of ListObjectVersions on a bucket whose versioning is (or was) enabled on a backend that keeps versions:
 * the backend's listing (its version ids, its markers), each version with its plaintext size and the ETag a GET of
 * that version shows. Version listings carry no user metadata, so each version is HEADed by its id (16 at a time):
 * a cost of versioned buckets only (unversioned ones keep the one-request listing above).
 */
export async function listVersionsPage(
  g: Gateway,
  bucket: string,
  p: VersionsPageRequest,
): Promise<{ entries: ListedVersion[]; commonPrefixes: string[]; isTruncated: boolean; nextKeyMarker?: string; nextVersionIdMarker?: string }> {
  if (p.maxKeys === 0) return { entries: [], commonPrefixes: [], isTruncated: false };
  const page = await g.backend.listObjectVersions!(bucket, {
    prefix: p.prefix || undefined,
    delimiter: p.delimiter || undefined,
    keyMarker: p.keyMarker || undefined,
    versionIdMarker: p.versionIdMarker || undefined,
    maxKeys: p.maxKeys,
  });
  const entries = new Array<ListedVersion>(page.entries.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < page.entries.length; i = next++) {
      const e = page.entries[i];
      const base = { key: e.key, versionId: e.versionId, isLatest: e.isLatest, lastModified: e.lastModified, deleteMarker: e.deleteMarker };
      if (e.deleteMarker) {
        entries[i] = { ...base, size: 0, etag: '' };
        continue;
      }
      let meta: Record<string, string> = {};
      try {
        meta = (await g.backend.headObject(bucket, e.key, e.versionId))?.meta ?? {};
      } catch {
        // deleted since it was listed: listed with the backend's ETag, as an object HEAD cannot open
      }
      entries[i] = { ...base, size: sizeOf(e.size), etag: await g.store.clientEtag(bucket, e.key, { etag: e.etag, meta }) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, page.entries.length) }, worker));
  return {
    entries,
    commonPrefixes: page.commonPrefixes,
    isTruncated: page.isTruncated,
    nextKeyMarker: page.nextKeyMarker,
    nextVersionIdMarker: page.nextVersionIdMarker,
  };
}

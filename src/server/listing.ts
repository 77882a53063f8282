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
  /** Exclusive: V1 marker, V2 start-after, ListObjectVersions key-marker. */
  startAfter?: string;
  /** A backend continuation token (V2): where a previous page ended; startAfter is ignored then. */
  token?: string;
}

export interface ListedObject { key: string; size: number; etag: string; lastModified: Date }

export interface Page {
  objects: ListedObject[];
  commonPrefixes: string[];
  isTruncated: boolean;
  nextContinuationToken?: string;
  /** The greatest key or common prefix on the page (S3's NextMarker / NextKeyMarker when truncated). */
  last?: string;
}

/**
 * The common prefix the marker itself falls under (`a/` for marker `a/b` with delimiter `/`), if any. S3 does not
 * list it again: keys after the marker under it were rolled into a prefix that sorts before the marker. A
 * client paging V1 or ListObjectVersions with a prefix as its marker would otherwise get that prefix back for
 * ever (the fs backend lists it; MinIO does not).
 */
function markerPrefix(p: PageRequest): string | undefined {
  if (!p.delimiter || !p.startAfter || p.token !== undefined || !p.startAfter.startsWith(p.prefix)) return undefined;
  const i = p.startAfter.indexOf(p.delimiter, p.prefix.length);
  return i < 0 ? undefined : p.startAfter.slice(0, i + p.delimiter.length);
}

const greater = (a: string | undefined, b: string | undefined): string | undefined =>
  a === undefined ? b : b === undefined ? a : Buffer.compare(Buffer.from(a), Buffer.from(b)) >= 0 ? a : b;

/** One page of a listing as clients see it: plaintext sizes, client ETags, at most maxKeys entries. */
export async function listPage(g: Gateway, bucket: string, p: PageRequest): Promise<Page> {
  if (p.maxKeys === 0) return { objects: [], commonPrefixes: [], isTruncated: false };
  const ask = (maxKeys: number, token: string | undefined) =>
    g.backend.listObjects(bucket, {
      prefix: p.prefix || undefined,
      delimiter: p.delimiter || undefined,
      startAfter: token === undefined ? p.startAfter || undefined : undefined,
      continuationToken: token,
      maxKeys,
      withMeta: true,
    });
  const page = await ask(p.maxKeys, p.token);
  const skip = markerPrefix(p);
  if (skip !== undefined && page.commonPrefixes.includes(skip)) {
    page.commonPrefixes = page.commonPrefixes.filter((c) => c !== skip);
    // The slot it took goes to the next entry, if any (backend tokens already step over the prefix).
    if (page.isTruncated && page.nextContinuationToken !== undefined) {
      const more = await ask(1, page.nextContinuationToken);
      page.objects.push(...more.objects);
      page.commonPrefixes.push(...more.commonPrefixes);
      page.isTruncated = more.isTruncated;
      page.nextContinuationToken = more.nextContinuationToken;
    }
  }
  const etags = await listedEtags(g, bucket, page.objects);
  const objects = page.objects.map((o, i) => ({ key: o.key, size: sizeOf(o.size), etag: etags[i], lastModified: o.lastModified }));
  const last = greater(objects.at(-1)?.key, page.commonPrefixes.at(-1));
  return { objects, commonPrefixes: page.commonPrefixes, isTruncated: page.isTruncated, nextContinuationToken: page.nextContinuationToken, last };
}

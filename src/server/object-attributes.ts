/**
 * GetObjectAttributes (`GET /bucket/key?attributes`, `x-amz-object-attributes: ETag,Checksum,ObjectParts,...`): what
 * HEAD and a ListParts of the finished upload would say, in one XML answer. All of it comes from the object's header,
 * not from the backend: the backend's parts are ciphertext, the header keeps each part's plaintext size as it was
 * uploaded, and the checksums (the object's and, for a multipart upload with an algorithm, each part's) as stored.
 *
 * Like MinIO, the parts are listed with their sizes for every object (a single PUT is one part); S3 lists Part
 * entries only for objects stored with an additional checksum (docs/clients.md, Conformance).
 */
import { S3Error } from '../errors.ts';
import type { HeaderChecksums } from '../engine/index.ts';
import { unquoteEtag } from '../s3/etags.ts';
import { S3_NS, xmlEscape } from '../s3/xml.ts';
import type { Gateway } from './gateway.ts';
import type { S3Request } from './request.ts';
import { checkBucketName, checkKey } from './request.ts';
import { sendXml } from './respond.ts';

const ATTRIBUTES = new Set(['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize']);
/** S3's most parts in one answer (and its default). */
const MAX_PARTS = 1000;

const el = (name: string, value: string | number | boolean): string => `<${name}>${xmlEscape(String(value))}</${name}>`;

/** The attributes asked for; an empty or unknown name is InvalidArgument naming it, as S3 and MinIO answer. */
function requestedAttributes(r: S3Request): Set<string> {
  const names = (r.header('x-amz-object-attributes') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.length === 0 ? '' : names.find((n) => !ATTRIBUTES.has(n));
  if (bad !== undefined) {
    throw new S3Error('InvalidArgument', 'Invalid attribute name specified.', { ArgumentName: 'x-amz-object-attributes', ArgumentValue: bad });
  }
  return new Set(names);
}

/** x-amz-max-parts / x-amz-part-number-marker (the SDK's headers; the query forms are taken too). */
function paging(r: S3Request): { maxParts: number; marker: number } {
  const int = (header: string, query: string, fallback: number): number => {
    const v = (r.header(header) ?? r.query.get(query) ?? '').trim();
    if (v === '') return fallback;
    if (!/^\d{1,10}$/.test(v) || Number(v) > 2 ** 31 - 1) {
      throw new S3Error('InvalidArgument', `${header} must be an integer between 0 and 2147483647.`, { ArgumentName: header, ArgumentValue: v.slice(0, 64) });
    }
    return Number(v);
  };
  return { maxParts: Math.min(int('x-amz-max-parts', 'max-parts', MAX_PARTS), MAX_PARTS), marker: int('x-amz-part-number-marker', 'part-number-marker', 0) };
}

/** The object's checksum; a composite one without the `-<parts>` that HEAD shows (as S3 and MinIO answer here). */
function checksumXml(c: HeaderChecksums): string {
  if (!c.algorithm || !c.value) return '';
  const value = c.type === 'COMPOSITE' ? c.value.replace(/-\d+$/, '') : c.value;
  return `<Checksum>${el(`Checksum${c.algorithm}`, value)}${c.type ? el('ChecksumType', c.type) : ''}</Checksum>`;
}

export async function getObjectAttributes(g: Gateway, r: S3Request): Promise<void> {
  checkBucketName(r.bucket);
  checkKey(r.key);
  const want = requestedAttributes(r);
  const { maxParts, marker } = paging(r);
  const obj = await g.store.stat(r.bucket, r.key);
  const c = obj.header.checksums;
  let body = '';
  if (want.has('ETag')) body += el('ETag', unquoteEtag(obj.etag));
  if (want.has('Checksum')) body += checksumXml(c);
  if (want.has('ObjectParts')) {
    const all = obj.header.parts.map((p, i) => ({
      partNumber: p.partNumber ?? i + 1,
      size: p.plaintextSize,
      // each part's own checksum, kept when the upload had an algorithm (COMPOSITE and FULL_OBJECT alike)
      checksum: c.algorithm && c.parts?.[i] ? el(`Checksum${c.algorithm}`, c.parts[i]) : '',
    }));
    const after = all.filter((p) => p.partNumber > marker);
    const page = after.slice(0, maxParts);
    body +=
      '<ObjectParts>' +
      el('IsTruncated', after.length > page.length) +
      el('MaxParts', maxParts) +
      el('NextPartNumberMarker', page.length ? page[page.length - 1].partNumber : marker) +
      el('PartNumberMarker', marker) +
      el('PartsCount', all.length) +
      page.map((p) => `<Part>${p.checksum}${el('PartNumber', p.partNumber)}${el('Size', p.size)}</Part>`).join('') +
      '</ObjectParts>';
  }
  if (want.has('StorageClass')) body += el('StorageClass', 'STANDARD');
  if (want.has('ObjectSize')) body += el('ObjectSize', obj.size);
  const doc = `<?xml version="1.0" encoding="UTF-8"?>\n<GetObjectAttributesResponse xmlns="${S3_NS}">${body}</GetObjectAttributesResponse>`;
  sendXml(r.res, 200, doc, { 'Last-Modified': obj.lastModified.toUTCString() });
}

/**
 * S3 XML: response builders and hardened request-body parsers.
 * Parsers refuse DTDs/entities (MalformedXML), bound the body size, and never throw anything but S3Error.
 */
import { Readable } from 'node:stream';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { S3Error } from '../errors.ts';
import type { ChecksumAlgorithm } from './checksum.ts';
import { quoteEtag } from './etags.ts';
import { uriEncode } from './sigv4.ts';

export const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const DECL = '<?xml version="1.0" encoding="UTF-8"?>\n';
export const MAX_XML_BODY = 1024 * 1024;

// ---------------------------------------------------------------- escaping / encoding

/** Escape text for XML element content; characters illegal in XML 1.0 become numeric references. */
export function xmlEscape(s: string): string {
  // eslint-disable-next-line no-control-regex -- characters illegal in XML 1.0 are what it escapes
  return s.replace(/[&<>"'\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, (c) => {
    switch (c) {
      case '&': return '&amp;';
      case '<': return '&lt;';
      case '>': return '&gt;';
      case '"': return '&quot;';
      case "'": return '&apos;';
      default: return `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`;
    }
  });
}

/**
 * encoding-type=url as S3 applies it to keys, prefixes, delimiters and markers in listings: AWS's URI encoding
 * with '/' kept (a space is %20, '+' is %2B; s3-tests' encoding cases expect exactly that). MinIO writes a space
 * as '+', which a client decoding with a plain percent-decoder keeps as a '+'.
 */
export const s3UrlEncode = (s: string): string => uriEncode(s, true);

/** ISO 8601 with milliseconds, UTC. */
export const isoDate = (d: Date): string => d.toISOString();

const el = (name: string, value: string | number | boolean | undefined | null): string =>
  value === undefined || value === null ? '' : `<${name}>${xmlEscape(String(value))}</${name}>`;
const doc = (root: string, body: string): string => `${DECL}<${root} xmlns="${S3_NS}">${body}</${root}>`;

// ---------------------------------------------------------------- builders

export interface Owner { id: string; displayName?: string }
const ownerXml = (o: Owner | undefined, tag = 'Owner'): string =>
  o ? `<${tag}>${el('ID', o.id)}${el('DisplayName', o.displayName ?? o.id)}</${tag}>` : '';

export interface BucketEntry { name: string; creationDate: Date; region?: string }
export function listAllMyBucketsResult(buckets: readonly BucketEntry[], owner?: Owner): string {
  const items = buckets.map((b) => `<Bucket>${el('Name', b.name)}${el('CreationDate', isoDate(b.creationDate))}${el('BucketRegion', b.region)}</Bucket>`).join('');
  return doc('ListAllMyBucketsResult', `${ownerXml(owner)}<Buckets>${items}</Buckets>`);
}

export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT';

export interface ObjectEntry {
  key: string;
  lastModified: Date;
  etag: string;
  size: number;
  storageClass?: string;
  owner?: Owner;
  checksumAlgorithm?: ChecksumAlgorithm;
  checksumType?: ChecksumType;
}

interface ListCommon {
  bucket: string;
  prefix?: string;
  delimiter?: string;
  maxKeys: number;
  isTruncated: boolean;
  contents: readonly ObjectEntry[];
  commonPrefixes: readonly string[];
  encodingType?: 'url';
}
export interface ListBucketV1Input extends ListCommon { marker?: string; nextMarker?: string }
export interface ListBucketV2Input extends ListCommon {
  keyCount: number;
  continuationToken?: string;
  nextContinuationToken?: string;
  startAfter?: string;
  fetchOwner?: boolean;
}

function listBody(i: ListCommon, withOwner: boolean): { contents: string; prefixes: string; enc: (s: string) => string } {
  const enc = i.encodingType === 'url' ? s3UrlEncode : (s: string) => s;
  const contents = i.contents.map((o) =>
    `<Contents>${el('Key', enc(o.key))}${el('LastModified', isoDate(o.lastModified))}${el('ETag', quoteEtag(o.etag))}` +
    `${el('ChecksumAlgorithm', o.checksumAlgorithm)}${el('ChecksumType', o.checksumAlgorithm ? o.checksumType : undefined)}` +
    `${el('Size', o.size)}${withOwner ? ownerXml(o.owner) : ''}${el('StorageClass', o.storageClass ?? 'STANDARD')}</Contents>`).join('');
  const prefixes = i.commonPrefixes.map((p) => `<CommonPrefixes>${el('Prefix', enc(p))}</CommonPrefixes>`).join('');
  return { contents, prefixes, enc };
}

export function listBucketResultV1(i: ListBucketV1Input): string {
  const { contents, prefixes, enc } = listBody(i, true);
  return doc('ListBucketResult',
    `${el('Name', i.bucket)}${el('Prefix', enc(i.prefix ?? ''))}${el('Marker', enc(i.marker ?? ''))}` +
    `${el('MaxKeys', i.maxKeys)}${i.delimiter !== undefined ? el('Delimiter', enc(i.delimiter)) : ''}` +
    `${el('IsTruncated', i.isTruncated)}${i.nextMarker !== undefined ? el('NextMarker', enc(i.nextMarker)) : ''}` +
    `${el('EncodingType', i.encodingType)}${contents}${prefixes}`);
}

export function listBucketResultV2(i: ListBucketV2Input): string {
  const { contents, prefixes, enc } = listBody(i, i.fetchOwner === true);
  return doc('ListBucketResult',
    `${el('Name', i.bucket)}${el('Prefix', enc(i.prefix ?? ''))}${el('KeyCount', i.keyCount)}${el('MaxKeys', i.maxKeys)}` +
    `${i.delimiter !== undefined ? el('Delimiter', enc(i.delimiter)) : ''}${el('IsTruncated', i.isTruncated)}` +
    `${el('ContinuationToken', i.continuationToken)}${el('NextContinuationToken', i.nextContinuationToken)}` +
    `${i.startAfter !== undefined ? el('StartAfter', enc(i.startAfter)) : ''}${el('EncodingType', i.encodingType)}` +
    `${contents}${prefixes}`);
}

/** A version, or (`deleteMarker`) a delete marker: no ETag, size or storage class then. */
export interface VersionEntry extends ObjectEntry { versionId: string; isLatest: boolean; deleteMarker?: boolean }
export interface ListVersionsInput {
  bucket: string;
  prefix: string;
  keyMarker: string;
  versionIdMarker: string;
  nextKeyMarker?: string;
  nextVersionIdMarker?: string;
  maxKeys: number;
  delimiter?: string;
  isTruncated: boolean;
  encodingType?: 'url';
  versions: readonly VersionEntry[];
  commonPrefixes: readonly string[];
}

/** ListVersionsResult, in the element order of S3's own answers. */
export function listVersionsResult(i: ListVersionsInput): string {
  const enc = i.encodingType === 'url' ? s3UrlEncode : (s: string) => s;
  const versions = i.versions.map((v) => v.deleteMarker ?
    `<DeleteMarker>${el('Key', enc(v.key))}${el('VersionId', v.versionId)}${el('IsLatest', v.isLatest)}${el('LastModified', isoDate(v.lastModified))}${ownerXml(v.owner)}</DeleteMarker>` :
    `<Version>${el('Key', enc(v.key))}${el('VersionId', v.versionId)}${el('IsLatest', v.isLatest)}${el('LastModified', isoDate(v.lastModified))}` +
    `${el('ETag', quoteEtag(v.etag))}${el('Size', v.size)}${el('StorageClass', v.storageClass ?? 'STANDARD')}${ownerXml(v.owner)}</Version>`).join('');
  const prefixes = i.commonPrefixes.map((p) => `<CommonPrefixes>${el('Prefix', enc(p))}</CommonPrefixes>`).join('');
  return doc('ListVersionsResult',
    `${el('Name', i.bucket)}${el('Prefix', enc(i.prefix))}${el('KeyMarker', enc(i.keyMarker))}${el('VersionIdMarker', i.versionIdMarker)}` +
    `${i.nextKeyMarker !== undefined ? el('NextKeyMarker', enc(i.nextKeyMarker)) : ''}${el('NextVersionIdMarker', i.nextVersionIdMarker)}` +
    `${el('MaxKeys', i.maxKeys)}${i.delimiter !== undefined ? el('Delimiter', enc(i.delimiter)) : ''}${el('IsTruncated', i.isTruncated)}` +
    `${el('EncodingType', i.encodingType)}${versions}${prefixes}`);
}

export const initiateMultipartUploadResult = (bucket: string, key: string, uploadId: string): string =>
  doc('InitiateMultipartUploadResult', `${el('Bucket', bucket)}${el('Key', key)}${el('UploadId', uploadId)}`);

/** Checksum fields keyed by algorithm, base64 values (composite ones carry `-N`). */
export type ChecksumFields = Partial<Record<ChecksumAlgorithm, string>>;
const checksumXml = (c: ChecksumFields | undefined, type?: ChecksumType): string => {
  if (!c) return '';
  let s = '';
  for (const [alg, v] of Object.entries(c)) if (v !== undefined) s += el(`Checksum${alg}`, v);
  return s && type ? s + el('ChecksumType', type) : s;
};

export function completeMultipartUploadResult(i: {
  location: string; bucket: string; key: string; etag: string; checksums?: ChecksumFields; checksumType?: ChecksumType;
}): string {
  return doc('CompleteMultipartUploadResult',
    `${el('Location', i.location)}${el('Bucket', i.bucket)}${el('Key', i.key)}${el('ETag', quoteEtag(i.etag))}${checksumXml(i.checksums, i.checksumType)}`);
}

export const copyObjectResult = (etag: string, lastModified: Date, checksums?: ChecksumFields, checksumType?: ChecksumType): string =>
  doc('CopyObjectResult', `${el('ETag', quoteEtag(etag))}${el('LastModified', isoDate(lastModified))}${checksumXml(checksums, checksumType)}`);

export const copyPartResult = (etag: string, lastModified: Date, checksums?: ChecksumFields): string =>
  doc('CopyPartResult', `${el('ETag', quoteEtag(etag))}${el('LastModified', isoDate(lastModified))}${checksumXml(checksums)}`);

export interface PartEntry { partNumber: number; lastModified: Date; etag: string; size: number; checksums?: ChecksumFields }
export function listPartsResult(i: {
  bucket: string; key: string; uploadId: string; partNumberMarker: number; nextPartNumberMarker?: number;
  maxParts: number; isTruncated: boolean; parts: readonly PartEntry[]; owner?: Owner; initiator?: Owner;
  storageClass?: string; checksumAlgorithm?: ChecksumAlgorithm; checksumType?: ChecksumType;
}): string {
  const parts = i.parts.map((p) => `<Part>${el('PartNumber', p.partNumber)}${el('LastModified', isoDate(p.lastModified))}${el('ETag', quoteEtag(p.etag))}${el('Size', p.size)}${checksumXml(p.checksums)}</Part>`).join('');
  return doc('ListPartsResult',
    `${el('Bucket', i.bucket)}${el('Key', i.key)}${el('UploadId', i.uploadId)}${ownerXml(i.initiator ?? i.owner, 'Initiator')}${ownerXml(i.owner)}` +
    `${el('StorageClass', i.storageClass ?? 'STANDARD')}${el('PartNumberMarker', i.partNumberMarker)}` +
    `${el('NextPartNumberMarker', i.nextPartNumberMarker ?? (i.parts.length ? i.parts[i.parts.length - 1].partNumber : 0))}` +
    `${el('MaxParts', i.maxParts)}${el('IsTruncated', i.isTruncated)}${el('ChecksumAlgorithm', i.checksumAlgorithm)}${el('ChecksumType', i.checksumType)}${parts}`);
}

export interface UploadEntry { key: string; uploadId: string; initiated: Date; owner?: Owner; storageClass?: string; checksumAlgorithm?: ChecksumAlgorithm }
export function listMultipartUploadsResult(i: {
  bucket: string; keyMarker?: string; uploadIdMarker?: string; nextKeyMarker?: string; nextUploadIdMarker?: string;
  prefix?: string; delimiter?: string; maxUploads: number; isTruncated: boolean; uploads: readonly UploadEntry[];
  commonPrefixes: readonly string[]; encodingType?: 'url';
}): string {
  const enc = i.encodingType === 'url' ? s3UrlEncode : (s: string) => s;
  const ups = i.uploads.map((u) => `<Upload>${el('Key', enc(u.key))}${el('UploadId', u.uploadId)}${ownerXml(u.owner, 'Initiator')}${ownerXml(u.owner)}` +
    `${el('StorageClass', u.storageClass ?? 'STANDARD')}${el('Initiated', isoDate(u.initiated))}${el('ChecksumAlgorithm', u.checksumAlgorithm)}</Upload>`).join('');
  const prefixes = i.commonPrefixes.map((p) => `<CommonPrefixes>${el('Prefix', enc(p))}</CommonPrefixes>`).join('');
  return doc('ListMultipartUploadsResult',
    `${el('Bucket', i.bucket)}${el('KeyMarker', enc(i.keyMarker ?? ''))}${el('UploadIdMarker', i.uploadIdMarker ?? '')}` +
    `${el('NextKeyMarker', i.nextKeyMarker !== undefined ? enc(i.nextKeyMarker) : undefined)}${el('NextUploadIdMarker', i.nextUploadIdMarker)}` +
    `${el('Prefix', enc(i.prefix ?? ''))}${i.delimiter !== undefined ? el('Delimiter', enc(i.delimiter)) : ''}` +
    `${el('MaxUploads', i.maxUploads)}${el('IsTruncated', i.isTruncated)}${el('EncodingType', i.encodingType)}${ups}${prefixes}`);
}

/** `deleteMarkerVersionId`: the delete marker a delete made or removed (DeleteMarker true goes with it). */
export interface DeletedEntry { key: string; versionId?: string; deleteMarkerVersionId?: string }
export interface DeleteErrorEntry { key: string; code: string; message: string; versionId?: string }
export function deleteResult(deleted: readonly DeletedEntry[], errors: readonly DeleteErrorEntry[], quiet = false): string {
  const d = quiet ? '' : deleted.map((x) => `<Deleted>${el('Key', x.key)}${el('VersionId', x.versionId)}` +
    `${x.deleteMarkerVersionId !== undefined ? el('DeleteMarker', true) + el('DeleteMarkerVersionId', x.deleteMarkerVersionId) : ''}</Deleted>`).join('');
  const e = errors.map((x) => `<Error>${el('Key', x.key)}${el('VersionId', x.versionId)}${el('Code', x.code)}${el('Message', x.message)}</Error>`).join('');
  return doc('DeleteResult', d + e);
}

/** us-east-1 is the empty LocationConstraint, as S3 answers. */
export const locationConstraint = (region: string): string =>
  `${DECL}<LocationConstraint xmlns="${S3_NS}">${region === 'us-east-1' ? '' : xmlEscape(region)}</LocationConstraint>`;

/** `<Error>` body. `err.detail` entries become extra elements. */
export function errorXml(err: { code: string; message: string; detail?: Record<string, string> }, resource = '', requestId = '', hostId?: string): string {
  let extra = '';
  for (const [k, v] of Object.entries(err.detail ?? {})) if (/^[A-Za-z][A-Za-z0-9-]*$/.test(k)) extra += el(k, v);
  return `${DECL}<Error>${el('Code', err.code)}${el('Message', err.message)}${extra}${el('Resource', resource)}${el('RequestId', requestId)}${el('HostId', hostId)}</Error>`;
}

// ---------------------------------------------------------------- parsers

/** Read a request body up to `limit` bytes; more -> MaxMessageLengthExceeded (stops reading). */
export async function readBodyLimited(body: Readable | AsyncIterable<Uint8Array>, limit = MAX_XML_BODY): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Uint8Array | string>) {
    const b = typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    n += b.length;
    if (n > limit) {
      if (body instanceof Readable) body.destroy();
      throw new S3Error('MaxMessageLengthExceeded');
    }
    parts.push(b);
  }
  return Buffer.concat(parts);
}

const malformed = (msg?: string) => new S3Error('MalformedXML', msg);

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name) => name === 'Part' || name === 'Object',
});

const ENTITY_RE = /&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|(amp|lt|gt|quot|apos));/g;
/** Decode the five predefined entities and character references; anything else -> MalformedXML. */
function decodeText(s: string): string {
  const out = s.replace(ENTITY_RE, (_m, dec: string | undefined, hex: string | undefined, named: string | undefined) => {
    if (named) return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[named]!;
    const cp = dec !== undefined ? parseInt(dec, 10) : parseInt(hex!, 16);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw malformed();
    return String.fromCodePoint(cp);
  });
  if (/&/.test(s.replace(ENTITY_RE, ''))) throw malformed('Unknown entity reference.');
  return out;
}

type Node = Record<string, unknown>;

function parseXml(body: Buffer | string, root: string, limit: number): Node | undefined {
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (size > limit) throw new S3Error('MaxMessageLengthExceeded');
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.trim() === '') return undefined;
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST|<!NOTATION/i.test(text)) throw malformed('DTDs and entity declarations are not allowed.');
  let parsed: unknown;
  try {
    if (XMLValidator.validate(text) !== true) throw malformed();
    parsed = parser.parse(text);
  } catch (e) {
    if (e instanceof S3Error) throw e;
    throw malformed();
  }
  if (!parsed || typeof parsed !== 'object') throw malformed();
  const keys = Object.keys(parsed as Node).filter((k) => k !== '#text');
  if (keys.length !== 1 || keys[0] !== root) throw malformed(`Expected root element ${root}.`);
  const node = (parsed as Node)[root];
  if (node === '' || node === undefined) return {};
  if (typeof node !== 'object' || Array.isArray(node)) {
    if (typeof node === 'string' && node.trim() === '') return {};
    throw malformed();
  }
  return node as Node;
}

/** Leaf text of a child element, entity-decoded; undefined when absent; MalformedXML if not a leaf or repeated. */
function leaf(n: Node, name: string): string | undefined {
  const v = n[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return decodeText(v);
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) return '';
  throw malformed(`Element ${name} is invalid.`);
}

const asNodes = (v: unknown, name: string): Node[] => {
  if (v === undefined) return [];
  const arr = Array.isArray(v) ? v : [v];
  return arr.map((x) => {
    if (x === '' ) return {};
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw malformed(`Element ${name} is invalid.`);
    return x as Node;
  });
};

export interface CompletedPart {
  partNumber: number;
  /** ETag without quotes. */
  etag: string;
  checksums: ChecksumFields;
}

const CHECKSUM_ELEMENTS: ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'];

/** CompleteMultipartUpload body. MalformedXML, InvalidPartOrder (not strictly ascending), InvalidArgument (part number). */
export function parseCompleteMultipartUpload(body: Buffer | string, limit = MAX_XML_BODY): CompletedPart[] {
  try {
    const root = parseXml(body, 'CompleteMultipartUpload', limit);
    if (!root) throw malformed('The XML you provided was empty.');
    const parts = asNodes(root.Part, 'Part');
    if (parts.length === 0) throw malformed('You must specify at least one part.');
    if (parts.length > 10000) throw malformed('Too many parts.');
    const out: CompletedPart[] = [];
    for (const p of parts) {
      const pn = leaf(p, 'PartNumber')?.trim();
      const etag = leaf(p, 'ETag')?.trim();
      if (pn === undefined || etag === undefined || etag === '') throw malformed('Each Part needs a PartNumber and an ETag.');
      if (!/^\d{1,6}$/.test(pn)) throw malformed('PartNumber must be an integer.');
      const partNumber = Number(pn);
      if (partNumber < 1 || partNumber > 10000) throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.', { ArgumentName: 'partNumber', ArgumentValue: pn });
      const checksums: ChecksumFields = {};
      for (const alg of CHECKSUM_ELEMENTS) {
        const v = leaf(p, `Checksum${alg}`);
        if (v !== undefined) checksums[alg] = v.trim();
      }
      const unq = etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag.slice(1, -1) : etag;
      out.push({ partNumber, etag: unq, checksums });
    }
    for (let i = 1; i < out.length; i++) {
      if (out[i].partNumber <= out[i - 1].partNumber) throw new S3Error('InvalidPartOrder');
    }
    return out;
  } catch (e) {
    throw toS3(e);
  }
}

export interface DeleteRequest { quiet: boolean; objects: Array<{ key: string; versionId?: string }> }

/** Delete (DeleteObjects) body: 1..1000 objects; MalformedXML otherwise. */
export function parseDelete(body: Buffer | string, limit = MAX_XML_BODY): DeleteRequest {
  try {
    const root = parseXml(body, 'Delete', limit);
    if (!root) throw malformed();
    const q = leaf(root, 'Quiet')?.trim().toLowerCase();
    if (q !== undefined && q !== 'true' && q !== 'false') throw malformed('Quiet must be true or false.');
    const objs = asNodes(root.Object, 'Object');
    if (objs.length === 0 || objs.length > 1000) throw malformed();
    const objects = objs.map((o) => {
      const key = leaf(o, 'Key');
      if (key === undefined || key === '') throw malformed('Each Object needs a Key.');
      const versionId = leaf(o, 'VersionId');
      return versionId !== undefined && versionId !== '' ? { key, versionId } : { key };
    });
    return { quiet: q === 'true', objects };
  } catch (e) {
    throw toS3(e);
  }
}

/** PutBucketVersioning's body: Status Enabled or Suspended (MfaDelete is not offered: NotImplemented). */
export function parseVersioningConfiguration(body: Buffer | string, limit = MAX_XML_BODY): { status: 'Enabled' | 'Suspended' } {
  let root: Node | undefined;
  try {
    root = parseXml(body, 'VersioningConfiguration', limit);
  } catch (e) {
    throw toS3(e);
  }
  if (!root) throw new S3Error('MalformedXML');
  if (leaf(root, 'MfaDelete') !== undefined) throw new S3Error('NotImplemented', 'MFA delete is not offered by lakecrypt.');
  const status = leaf(root, 'Status')?.trim();
  if (status !== 'Enabled' && status !== 'Suspended') throw new S3Error('MalformedXML', 'Status must be Enabled or Suspended.');
  return { status };
}

/** GetBucketVersioning's answer: no Status when versioning was never enabled. */
export const versioningConfiguration = (status?: 'Enabled' | 'Suspended'): string =>
  doc('VersioningConfiguration', status ? el('Status', status) : '');

/** CreateBucketConfiguration body (may be empty). */
export function parseCreateBucketConfiguration(body: Buffer | string, limit = MAX_XML_BODY): { locationConstraint?: string } {
  try {
    const root = parseXml(body, 'CreateBucketConfiguration', limit);
    if (!root) return {};
    const lc = leaf(root, 'LocationConstraint')?.trim();
    return lc ? { locationConstraint: lc } : {};
  } catch (e) {
    throw toS3(e);
  }
}

function toS3(e: unknown): S3Error {
  return e instanceof S3Error ? e : new S3Error('MalformedXML', undefined, {}, { cause: e });
}

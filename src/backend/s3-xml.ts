/**
 * The S3 store's XML, as the S3 backend reads and writes it without the AWS SDK (importing @aws-sdk/client-s3 alone
 * cost the gateway ~21 MiB RSS, issue #22): scanners for the answers to the rare calls (ListBuckets, the multipart
 * create/complete/list calls) and the two request bodies they send. These answers are machine-written, flat and
 * regular, so they are scanned with indexOf like ListObjectsV2's (s3.ts parseListXml) and the version listings
 * (s3-versions.ts), not run through a general XML parser. A scanner throws a plain Error on an answer that is not
 * the document it expects; the backend maps that to ServiceUnavailable, as the SDK's parse failures were.
 */
import { S3_NS, xmlEscape } from '../s3/xml.ts';

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
/** XML text content: predefined entities and numeric character references (MinIO writes `&#34;`) decoded. */
export function xmlText(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : ENTITIES[e],
  );
}

/** Text of the first <tag>...</tag> (or <tag/>) in xml[from, to), undefined when absent. */
export function child(xml: string, tag: string, from = 0, to = xml.length): string | undefined {
  const open = xml.indexOf(`<${tag}`, from);
  if (open < 0 || open >= to) return undefined;
  const gt = xml.indexOf('>', open);
  if (gt < 0 || gt >= to) return undefined;
  const after = xml[open + tag.length + 1];
  if (after !== '>' && after !== '/' && after !== ' ') return child(xml, tag, gt + 1, to); // <KeyCount> when asked <Key>
  if (xml[gt - 1] === '/') return '';
  const close = xml.indexOf(`</${tag}>`, gt);
  if (close < 0 || close > to) return undefined;
  return xml.slice(gt + 1, close);
}

/**
 * The inner XML of every `<tag>…</tag>` in order, and the document with them cut out (where its top-level fields are
 * read: a listing's `<Key>` inside an entry must not be taken for one of the document's own fields).
 */
function cut(xml: string, tag: string): { items: string[]; rest: string } {
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  const items: string[] = [];
  let rest = '';
  let pos = 0;
  for (let at = xml.indexOf(open); at >= 0; at = xml.indexOf(open, pos)) {
    const end = xml.indexOf(close, at + open.length);
    if (end < 0) throw new Error(`malformed answer: unterminated <${tag}>`);
    rest += xml.slice(pos, at);
    items.push(xml.slice(at + open.length, end));
    pos = end + close.length;
  }
  return { items, rest: rest + xml.slice(pos) };
}

function expectRoot(xml: string, root: string): void {
  if (!xml.includes(`<${root}`)) throw new Error(`not a ${root}`);
}

/** A timestamp field as a Date; absent: the epoch (what the backend gave for a missing one with the SDK). */
const dateOf = (s: string | undefined): Date => (s ? new Date(s) : new Date(0));

/** ListBuckets' answer: names and creation dates, in the store's order. */
export function parseListBuckets(xml: string): { name: string; creationDate: Date }[] {
  expectRoot(xml, 'ListAllMyBucketsResult');
  return cut(xml, 'Bucket').items.map((el) => ({ name: xmlText(child(el, 'Name') ?? ''), creationDate: dateOf(child(el, 'CreationDate')) }));
}

/** CreateMultipartUpload's answer: the upload id. */
export function parseInitiateMultipart(xml: string): string {
  expectRoot(xml, 'InitiateMultipartUploadResult');
  const id = child(xml, 'UploadId');
  if (!id) throw new Error('InitiateMultipartUploadResult without an UploadId');
  return xmlText(id);
}

/** One page of ListParts: part numbers with their ETags (as written, quotes and all), and where the next page starts. */
export function parseListParts(xml: string): { parts: { partNumber: number; etag: string }[]; isTruncated: boolean; nextPartNumberMarker?: string } {
  expectRoot(xml, 'ListPartsResult');
  const { items, rest } = cut(xml, 'Part');
  const parts: { partNumber: number; etag: string }[] = [];
  for (const el of items) {
    const n = child(el, 'PartNumber');
    if (n !== undefined) parts.push({ partNumber: Number(n), etag: xmlText(child(el, 'ETag') ?? '') });
  }
  const next = child(rest, 'NextPartNumberMarker');
  return { parts, isTruncated: child(rest, 'IsTruncated') === 'true', nextPartNumberMarker: next === undefined ? undefined : xmlText(next) };
}

/**
 * One page of ListMultipartUploads. Keys and NextKeyMarker are returned as the store wrote them (entities decoded),
 * with the EncodingType it names: asked for with encoding-type=url, S3 and MinIO answer `url` and encode them, while
 * versitygw (v1.8.0) names none and encodes nothing; the caller decodes accordingly.
 */
export function parseListUploads(xml: string): {
  uploads: { key: string; uploadId: string; initiated: Date }[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
  encodingType?: string;
} {
  expectRoot(xml, 'ListMultipartUploadsResult');
  const { items, rest } = cut(xml, 'Upload');
  const field = (tag: string) => {
    const v = child(rest, tag);
    return v === undefined ? undefined : xmlText(v);
  };
  return {
    uploads: items.map((el) => ({
      key: xmlText(child(el, 'Key') ?? ''),
      uploadId: xmlText(child(el, 'UploadId') ?? ''),
      initiated: dateOf(child(el, 'Initiated')),
    })),
    isTruncated: field('IsTruncated') === 'true',
    nextKeyMarker: field('NextKeyMarker'),
    nextUploadIdMarker: field('NextUploadIdMarker'),
    encodingType: field('EncodingType'),
  };
}

/**
 * CompleteMultipartUpload's 200 answer: the new object's ETag (as written, quotes and all). A 200 may also carry an
 * `<Error>` (the store failed after sending its headers): bodyError() reads that first.
 */
export function parseCompleteResult(xml: string): string {
  expectRoot(xml, 'CompleteMultipartUploadResult');
  const etag = child(xml, 'ETag');
  if (etag === undefined) throw new Error('CompleteMultipartUploadResult without an ETag');
  return xmlText(etag);
}

/**
 * The fields of an S3 `<Error>` document, entities decoded: Code, Message and whatever else the store names (S3 and
 * versitygw: the PartNumber and ETag of an InvalidPart, a ProposedSize, ...). The SDK set them on its exceptions;
 * the backend keeps them on a mapped error's cause, where the multipart store reads the PartNumber.
 */
export function errorFields(xml: string): Record<string, string> {
  const at = xml.indexOf('<Error>');
  if (at < 0) return {};
  const end = xml.indexOf('</Error>', at);
  const el = xml.slice(at + '<Error>'.length, end < 0 ? xml.length : end);
  const out: Record<string, string> = {};
  for (const m of el.matchAll(/<([A-Za-z][\w.-]*)>([^<]*)<\/\1>/g)) if (!(m[1] in out)) out[m[1]] = xmlText(m[2]);
  return out;
}

/**
 * The failure a 200 answer reports in its body (CopyObject, CompleteMultipartUpload: the store failed after sending
 * its headers), undefined when it reports none. An empty body is one too: the SDK read it as InternalError ("S3
 * aborted request"), and so does this.
 */
export function bodyError(text: string): { code: string; message?: string; fields: Record<string, string> } | undefined {
  if (text.trim() === '') return { code: 'InternalError', message: 'the store answered 200 with an empty body', fields: {} };
  const code = /<Error>[\s\S]*?<Code>([^<]+)<\/Code>/.exec(text)?.[1];
  if (code === undefined) return undefined;
  const fields = errorFields(text);
  return { code, message: fields.Message, fields };
}

/** CompleteMultipartUpload's request body, as the SDK wrote it: the parts in the order given, ETags quoted. */
export function completeMultipartXml(parts: readonly { partNumber: number; etag: string }[]): string {
  let body = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="${S3_NS}">`;
  for (const p of parts) body += `<Part><ETag>${xmlEscape(p.etag)}</ETag><PartNumber>${p.partNumber}</PartNumber></Part>`;
  return `${body}</CompleteMultipartUpload>`;
}

/**
 * CreateBucket's request body: none in us-east-1, else a LocationConstraint naming the region (S3 refuses a
 * CreateBucket outside us-east-1 without one; the SDK added it the same way).
 */
export function createBucketXml(region: string): string | undefined {
  if (region === 'us-east-1') return undefined;
  return `<?xml version="1.0" encoding="UTF-8"?><CreateBucketConfiguration xmlns="${S3_NS}"><LocationConstraint>${xmlEscape(region)}</LocationConstraint></CreateBucketConfiguration>`;
}

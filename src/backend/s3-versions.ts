/**
 * The backend side of bucket versioning on an S3 backend: the ListObjectVersions answer and the
 * VersioningConfiguration documents. Like the ListObjectsV2 scanner in s3.ts these answers are machine-written,
 * flat and regular, so they are scanned rather than run through a general XML parser; kept apart from s3.ts,
 * which is already one of the large files.
 */
import { xmlText } from './s3-xml.ts';
import type { ListVersionsResult, VersionEntry, VersioningStatus } from './types.ts';

/** Text of the first direct `<tag>…</tag>` (or `<tag/>`: '') in `xml`; undefined when absent. */
function field(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${tag}>)`).exec(xml);
  if (!m) return undefined;
  return m[1] ?? '';
}

/** ListObjectsV2/Versions with encoding-type=url: S3 encodes a space as '+', a literal '+' as %2B. */
const urlDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));

/** A ListVersionsResult (asked for with encoding-type=url) as the backend interface returns it. */
export function parseListVersionsXml(xml: string): ListVersionsResult {
  if (!xml.includes('<ListVersionsResult')) throw new Error('not a ListVersionsResult');
  const entries: VersionEntry[] = [];
  const commonPrefixes: string[] = [];
  const urlEncoded = field(xml.replace(/<(Version|DeleteMarker|CommonPrefixes)>[\s\S]*?<\/\1>/g, ''), 'EncodingType') === 'url';
  const dec = (s: string) => (urlEncoded ? urlDecode(xmlText(s)) : xmlText(s));
  const re = /<(Version|DeleteMarker|CommonPrefixes)>([\s\S]*?)<\/\1>/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    const [, tag, el] = m;
    if (tag === 'CommonPrefixes') {
      commonPrefixes.push(dec(field(el, 'Prefix') ?? ''));
      continue;
    }
    const key = field(el, 'Key');
    if (key === undefined) throw new Error(`malformed version listing: <${tag}> without <Key>`);
    const marker = tag === 'DeleteMarker';
    entries.push({
      key: dec(key),
      versionId: xmlText(field(el, 'VersionId') ?? 'null'),
      isLatest: field(el, 'IsLatest') === 'true',
      lastModified: new Date(field(el, 'LastModified') ?? 0),
      deleteMarker: marker,
      size: marker ? 0 : Number(field(el, 'Size') ?? 0),
      etag: marker ? '' : xmlText(field(el, 'ETag') ?? '').replace(/^"|"$/g, ''),
    });
  }
  const rest = xml.replace(re, '');
  const nextKey = field(rest, 'NextKeyMarker');
  const nextVersion = field(rest, 'NextVersionIdMarker');
  const isTruncated = field(rest, 'IsTruncated') === 'true';
  return {
    entries,
    commonPrefixes,
    isTruncated,
    nextKeyMarker: isTruncated && nextKey ? dec(nextKey) : undefined,
    nextVersionIdMarker: isTruncated && nextVersion ? xmlText(nextVersion) : undefined,
  };
}

/** GetBucketVersioning's answer: the Status, undefined when never enabled. */
export function parseVersioningXml(xml: string): VersioningStatus | undefined {
  const status = field(xml, 'Status');
  return status === 'Enabled' || status === 'Suspended' ? status : undefined;
}

export function versioningXml(status: VersioningStatus): string {
  return `<?xml version="1.0" encoding="UTF-8"?><VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>${status}</Status></VersioningConfiguration>`;
}

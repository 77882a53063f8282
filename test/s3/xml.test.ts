import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { XMLParser } from 'fast-xml-parser';
import * as x from '../../src/s3/xml.ts';
import { S3Error } from '../../src/errors.ts';

const code = (f: () => unknown) => {
  try { f(); } catch (e) { if (e instanceof S3Error) return e.code; throw e; }
  return 'OK';
};
const wellFormed = (s: string) => new XMLParser().parse(s);

describe('parsers', () => {
  it('CompleteMultipartUpload', () => {
    const body = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
      <Part><PartNumber>1</PartNumber><ETag>"abc"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>
      <Part><ETag>&quot;def&quot;</ETag><PartNumber>3</PartNumber></Part></CompleteMultipartUpload>`;
    expect(x.parseCompleteMultipartUpload(body)).toEqual([
      { partNumber: 1, etag: 'abc', checksums: { CRC32: 'AAAAAA==' } },
      { partNumber: 3, etag: 'def', checksums: {} },
    ]);
    const two = (a: number, b: number) => `<CompleteMultipartUpload><Part><PartNumber>${a}</PartNumber><ETag>x</ETag></Part><Part><PartNumber>${b}</PartNumber><ETag>y</ETag></Part></CompleteMultipartUpload>`;
    expect(code(() => x.parseCompleteMultipartUpload(two(2, 1)))).toBe('InvalidPartOrder');
    expect(code(() => x.parseCompleteMultipartUpload(two(2, 2)))).toBe('InvalidPartOrder');
    expect(code(() => x.parseCompleteMultipartUpload(two(0, 2)))).toBe('InvalidArgument');
    expect(code(() => x.parseCompleteMultipartUpload('<CompleteMultipartUpload></CompleteMultipartUpload>'))).toBe('MalformedXML');
    expect(code(() => x.parseCompleteMultipartUpload('<Other><Part/></Other>'))).toBe('MalformedXML');
    expect(code(() => x.parseCompleteMultipartUpload(''))).toBe('MalformedXML');
    expect(code(() => x.parseCompleteMultipartUpload('<CompleteMultipartUpload><Part><PartNumber>1x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>'))).toBe('MalformedXML');
  });
  it('Delete', () => {
    const d = x.parseDelete('<Delete><Quiet>true</Quiet><Object><Key> a &amp; b </Key></Object><Object><Key>c</Key><VersionId>v1</VersionId></Object></Delete>');
    expect(d).toEqual({ quiet: true, objects: [{ key: ' a & b ' }, { key: 'c', versionId: 'v1' }] });
    const many = (n: number) => `<Delete>${'<Object><Key>k</Key></Object>'.repeat(n)}</Delete>`;
    expect(x.parseDelete(many(1000)).objects.length).toBe(1000);
    expect(code(() => x.parseDelete(many(1001)))).toBe('MalformedXML');
    expect(code(() => x.parseDelete('<Delete></Delete>'))).toBe('MalformedXML');
    expect(code(() => x.parseDelete('<Delete><Object><Key></Key></Object></Delete>'))).toBe('MalformedXML');
    expect(code(() => x.parseDelete(Buffer.alloc(x.MAX_XML_BODY + 1, 32)))).toBe('MaxMessageLengthExceeded');
  });
  it('CreateBucketConfiguration', () => {
    expect(x.parseCreateBucketConfiguration('')).toEqual({});
    expect(x.parseCreateBucketConfiguration('<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>')).toEqual({ locationConstraint: 'eu-west-1' });
  });
  it('refuses DTDs, entity expansion and external entities', () => {
    const bombs = [
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><Delete><Object><Key>&lol2;</Key></Object></Delete>',
      '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&xxe;</Key></Object></Delete>',
      '<!doctype Delete SYSTEM "http://evil/x.dtd"><Delete><Object><Key>a</Key></Object></Delete>',
      '<Delete><Object><Key>&xxe;</Key></Object></Delete>',
      '<Delete><Object><Key>&#xD800;</Key></Object></Delete>',
    ];
    for (const b of bombs) expect(code(() => x.parseDelete(b))).toBe('MalformedXML');
  });
  it('random strings -> MalformedXML, never a crash', () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }),
      fc.array(fc.constantFrom('<', '>', '/', 'Delete', 'Object', 'Key', 'CompleteMultipartUpload', 'Part', 'PartNumber', 'ETag', '1', '&', ';', '"', '<!', '?', 'x', ' '), { maxLength: 40 }).map((a) => a.join(''))),
    (s) => {
      for (const f of [x.parseDelete, x.parseCompleteMultipartUpload, x.parseCreateBucketConfiguration]) {
        try { f(s); } catch (e) { expect(e).toBeInstanceOf(S3Error); }
      }
    }), { numRuns: 1000 });
  });
  it('readBodyLimited', async () => {
    const { Readable } = await import('node:stream');
    expect((await x.readBodyLimited(Readable.from([Buffer.from('ab'), Buffer.from('c')]), 3)).toString()).toBe('abc');
    await expect(x.readBodyLimited(Readable.from([Buffer.alloc(3), Buffer.alloc(2)]), 4)).rejects.toMatchObject({ code: 'MaxMessageLengthExceeded' });
  });
});

describe('builders', () => {
  const d = new Date('2026-01-02T03:04:05.006Z');
  it('ListBucketResult V2 with encoding-type=url', () => {
    const s = x.listBucketResultV2({ bucket: 'b', prefix: 'a b/', delimiter: '/', maxKeys: 1000, isTruncated: false, keyCount: 1, encodingType: 'url', startAfter: 'ü~',
      contents: [{ key: 'a b/c+d&<e>', lastModified: d, etag: 'abc', size: 5, checksumAlgorithm: 'CRC32', checksumType: 'FULL_OBJECT' }], commonPrefixes: ['a b/x y/'] });
    const p = wellFormed(s).ListBucketResult;
    expect(p.Contents.Key).toBe('a%20b/c%2Bd%26%3Ce%3E');
    expect(p.Contents.ETag).toBe('"abc"');
    expect(p.Contents.LastModified).toBe('2026-01-02T03:04:05.006Z');
    expect(p.Prefix).toBe('a%20b/');
    expect(p.StartAfter).toBe('%C3%BC~');
    expect(p.CommonPrefixes.Prefix).toBe('a%20b/x%20y/');
    expect(p.EncodingType).toBe('url');
  });
  it('ListBucketResult V1 escapes keys', () => {
    const s = x.listBucketResultV1({ bucket: 'b', maxKeys: 10, isTruncated: true, nextMarker: 'n&m', contents: [{ key: 'a&<b>"\'', lastModified: d, etag: '"q"', size: 1 }], commonPrefixes: [] });
    const p = new XMLParser({ processEntities: true }).parse(s).ListBucketResult;
    expect(p.Contents.Key).toBe('a&<b>"\'');
    expect(p.Contents.ETag).toBe('"q"');
    expect(p.NextMarker).toBe('n&m');
  });
  it('others are well-formed', () => {
    const docs = [
      x.listAllMyBucketsResult([{ name: 'b', creationDate: d }], { id: 'o' }),
      x.initiateMultipartUploadResult('b', 'k&', 'u'),
      x.completeMultipartUploadResult({ location: 'http://h/b/k', bucket: 'b', key: 'k', etag: 'e-2', checksums: { CRC32: 'AAAAAA==' }, checksumType: 'FULL_OBJECT' }),
      x.copyObjectResult('e', d), x.copyPartResult('e', d),
      x.listPartsResult({ bucket: 'b', key: 'k', uploadId: 'u', partNumberMarker: 0, maxParts: 1000, isTruncated: false, parts: [{ partNumber: 1, lastModified: d, etag: 'e', size: 5 }] }),
      x.listMultipartUploadsResult({ bucket: 'b', maxUploads: 1000, isTruncated: false, uploads: [{ key: 'k', uploadId: 'u', initiated: d }], commonPrefixes: [] }),
      x.deleteResult([{ key: 'a' }], [{ key: 'b', code: 'AccessDenied', message: 'no' }]),
      x.locationConstraint('us-east-1'), x.locationConstraint('eu-west-1'),
      x.errorXml(new S3Error('NoSuchKey', undefined, { Key: 'a<b' }), '/b/a<b', 'req1'),
      x.listBucketResultV2({ bucket: 'b', maxKeys: 1, isTruncated: false, keyCount: 1, contents: [{ key: 'ctl\u0001', lastModified: d, etag: 'e', size: 0 }], commonPrefixes: [] }),
    ];
    for (const s of docs) expect(() => wellFormed(s)).not.toThrow();
    expect(wellFormed(docs[2]!).CompleteMultipartUploadResult.ETag).toBe('"e-2"');
    const err = wellFormed(docs[10]!).Error;
    expect(err.Code).toBe('NoSuchKey');
    expect(err.RequestId).toBe('req1');
  });
});

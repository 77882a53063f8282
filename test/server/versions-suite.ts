/**
 * ListObjectVersions on buckets without versioning, versionId=null, and listing / bucket-naming conformance,
 * held against MinIO with the same raw requests (lakecrypt issue #23 items 1 and 5). Run on both backends by
 * versions-fs.test.ts and versions-s3.test.ts.
 *
 * Where S3 and MinIO differ, S3's answer is asserted and the difference said at the spot: encoding-type=url
 * writes a space as %20 (MinIO: '+'), and ListObjectVersions checks its version-id-marker (MinIO: 501 or 200).
 */
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type ObjectVersion,
} from '@aws-sdk/client-s3';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uriEncode } from '../../src/s3/sigv4.ts';
import { versionIdKind } from '../../src/s3/version-id.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { findBinary } from '../../tools/process.ts';
import { errorCode, signedRequest, type RawResponse } from '../../tools/sigv4.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { accessLog, cleanEnv, expectClean, run } from '../clients/util.ts';
import { pythonExe, pythonHas } from '../clients/python.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { storeName, type SuiteStore } from './store.ts';

const MiB = 1024 * 1024;
const TIMEOUT = 180_000;
const UUID = '0b2c3d4e-1111-2222-3333-444455556666';

interface Target { url: string; accessKey: string; secretKey: string }

/** `k=v&…` with each value encoded as SigV4 canonicalises it, so the request line is the one signed. */
const qs = (q: Record<string, string>) => Object.entries(q).map(([k, v]) => `${k}=${uriEncode(v)}`).join('&');
const req = (t: Target, method: string, p: string, o: { query?: Record<string, string>; body?: string; headers?: Record<string, string> } = {}) =>
  signedRequest(t.url, t, {
    method,
    path: p.split('/').map((s) => uriEncode(s)).join('/'),
    query: o.query ? qs(o.query) : undefined,
    body: o.body === undefined ? undefined : Buffer.from(o.body),
    headers: o.headers,
  });

const LIST_ARRAYS = new Set(['Version', 'Contents', 'CommonPrefixes', 'Deleted', 'Error', 'DeleteMarker']);
const parser = new XMLParser({ parseTagValue: false, trimValues: false, isArray: (name, jpath) => LIST_ARRAYS.has(name) && String(jpath).includes('.') });
type Node = Record<string, unknown>;
/** A leaf's text ('' when absent or not text). */
const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const xmlOf = (r: RawResponse): Node => parser.parse(r.body.toString('utf8')) as Node;

/** What two servers must agree on for one listing request. */
interface Listing {
  status: number;
  code: string;
  keys: string[];
  versionIds: string[];
  prefixes: string[];
  truncated: boolean;
  doc: Node;
}
function listingOf(r: RawResponse): Listing {
  if (r.status !== 200) return { status: r.status, code: errorCode(r.body), keys: [], versionIds: [], prefixes: [], truncated: false, doc: {} };
  const parsed = xmlOf(r);
  const doc = (parsed.ListVersionsResult ?? parsed.ListBucketResult) as Node;
  const entries = ((doc.Version ?? doc.Contents ?? []) as Node[]);
  return {
    status: 200,
    code: '',
    keys: entries.map((e) => String(e.Key)),
    versionIds: entries.map((e) => text(e.VersionId)),
    prefixes: ((doc.CommonPrefixes ?? []) as Node[]).map((c) => String(c.Prefix)),
    truncated: doc.IsTruncated === 'true',
    doc,
  };
}
const comparable = (l: Listing) => ({ status: l.status, code: l.code, keys: l.keys, prefixes: l.prefixes, truncated: l.truncated });

type Kind = 'v1' | 'v2' | 'versions';
/** Every page of a listing, following each server's own markers; at most `maxPages` requests (a loop is a failure). */
async function allPages(t: Target, bucket: string, kind: Kind, q: Record<string, string>, maxPages = 60): Promise<{ keys: string[]; prefixes: string[]; pages: number }> {
  const keys: string[] = [];
  const prefixes: string[] = [];
  let next: Record<string, string> = {};
  for (let pages = 1; pages <= maxPages; pages++) {
    const base: Record<string, string> = kind === 'v2' ? { 'list-type': '2' } : kind === 'versions' ? { versions: '' } : {};
    const l = listingOf(await req(t, 'GET', `/${bucket}`, { query: { ...base, ...q, ...next } }));
    expect(l.status, JSON.stringify(l)).toBe(200);
    keys.push(...l.keys);
    prefixes.push(...l.prefixes);
    if (!l.truncated) return { keys, prefixes, pages };
    const d = l.doc;
    if (kind === 'v2') next = { 'continuation-token': text(d.NextContinuationToken) };
    else if (kind === 'v1') next = { marker: text(d.NextMarker) || l.keys.at(-1)! };
    else {
      next = { 'key-marker': text(d.NextKeyMarker) };
      if (text(d.NextVersionIdMarker)) next['version-id-marker'] = text(d.NextVersionIdMarker);
    }
  }
  throw new Error(`${kind} listing of ${bucket} with ${JSON.stringify(q)} did not end within ${maxPages} pages`);
}

async function s3err(p: Promise<unknown>): Promise<{ name: string; status: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as S3ServiceException;
    return { name: err.name, status: err.$metadata?.httpStatusCode ?? 0 };
  }
  throw new Error('expected an S3 error');
}

/** The same keys in a gateway bucket and a MinIO bucket: the listing comparisons run over these. */
const TWIN_KEYS = ['a-b', 'a-c', 'a--d', 'b', 'b-x-y', 'c/d/e', 'c/f', 'c-g', 'sp ace/k', 'plus+k', 'til~de*st(a)r!', 'été/x', 'q%25', 'zz'];

export function versionsSuite(kind: 'fs' | 's3', store?: SuiteStore) {
  const on = storeName(kind, store);
  describe(`ListObjectVersions, versionId=null, listing and bucket naming (${kind} backend${store ? `: ${store.label}` : ''})`, () => {
    let gw: TestGateway;
    let s3: S3Client;
    let lc: Target;
    let minio: Target;
    const log = accessLog();
    const tmp = makeTmpDir('lc-versions-');
    const limited = { accessKey: `AKLIM${randomBytes(5).toString('hex').toUpperCase()}`, secretKey: randomBytes(20).toString('hex') };
    const ownBucket = uniqueBucket(`lim-${kind}`);
    const twin = uniqueBucket(`twin-${kind}`);
    const twinMinio = uniqueBucket(`twinm-${kind}`);

    beforeAll(async () => {
      gw = await startTestGateway(kind, { minio: store?.coords(), onRequestDone: log.hook, users: [{ ...limited, buckets: [ownBucket], admin: false }] });
      s3 = gw.client();
      lc = { url: gw.url, accessKey: gw.accessKey, secretKey: gw.secretKey };
      const m = minioCoords();
      minio = { url: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey };
      for (const [t, b] of [[lc, twin], [minio, twinMinio]] as const) {
        expect((await req(t, 'PUT', `/${b}`)).status).toBe(200);
        for (const k of TWIN_KEYS) expect((await req(t, 'PUT', `/${b}/${k}`, { body: `data of ${k}` })).status).toBe(200);
      }
    }, TIMEOUT);
    afterAll(async () => {
      await gw?.close();
      tmp.cleanup();
    });

    /** The same request (path under the twin bucket) to the gateway and to MinIO. */
    const both = async (method: string, sub: string, o: Parameters<typeof req>[3] = {}) => ({
      lc: await req(lc, method, `/${twin}${sub}`, o),
      minio: await req(minio, method, `/${twinMinio}${sub}`, o),
    });

    it('lists each object as its one version: null, latest, plaintext size, the ETag ListObjectsV2 and HEAD show', async () => {
      const bucket = uniqueBucket(`ver-${kind}`);
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      const small = randomBytes(1000);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'one', Body: small }));
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'dir/empty', Body: Buffer.alloc(0) }));
      const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'dir/multi' }));
      const parts = [randomBytes(5 * MiB), randomBytes(12345)];
      const etags = [];
      for (const [i, p] of parts.entries()) {
        etags.push((await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'dir/multi', UploadId: up.UploadId, PartNumber: i + 1, Body: p }))).ETag);
      }
      await s3.send(new CompleteMultipartUploadCommand({
        Bucket: bucket, Key: 'dir/multi', UploadId: up.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }));

      const v = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      const l2 = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      expect(v.Versions!.map((x) => x.Key)).toEqual(['dir/empty', 'dir/multi', 'one']);
      expect(v.DeleteMarkers ?? []).toEqual([]);
      expect(v.IsTruncated).toBe(false);
      for (const x of v.Versions!) {
        const o = l2.Contents!.find((c) => c.Key === x.Key)!;
        expect({ VersionId: x.VersionId, IsLatest: x.IsLatest, StorageClass: x.StorageClass }).toEqual({ VersionId: 'null', IsLatest: true, StorageClass: 'STANDARD' });
        expect(x.Size).toBe(o.Size);
        expect(x.ETag).toBe(o.ETag);
        expect(x.LastModified!.getTime()).toBe(o.LastModified!.getTime());
        expect(x.Owner?.ID).toBe(gw.accessKey);
      }
      expect(v.Versions!.map((x) => x.Size)).toEqual([0, 5 * MiB + 12345, 1000]);
      expect(v.Versions![1].ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
      expect(v.Versions![2].ETag).toBe(`"${createHash('md5').update(small).digest('hex')}"`);

      // the raw answer: S3's document and element order
      const raw = await req(lc, 'GET', `/${bucket}`, { query: { versions: '', 'max-keys': '1' } });
      const text = raw.body.toString();
      expect(raw.status).toBe(200);
      expect(text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<ListVersionsResult xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/">/);
      expect(text).toMatch(new RegExp(`<Name>${bucket}</Name><Prefix></Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>` +
        '<NextKeyMarker>dir/empty</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated>' +
        '<Version><Key>dir/empty</Key><VersionId>null</VersionId><IsLatest>true</IsLatest><LastModified>[^<]+</LastModified>' +
        `<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass><Owner><ID>${gw.accessKey}</ID>`));
      // GetBucketVersioning still says versioning was never enabled
      const ver = await req(lc, 'GET', `/${bucket}`, { query: { versioning: '' } });
      expect(ver.status).toBe(200);
      expect(ver.body.toString()).toContain('<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>');
    }, TIMEOUT);

    it("pages versions by key-marker / version-id-marker, with prefix and delimiters, to MinIO's whole listing", async () => {
      const shapes: Record<string, string>[] = [{}, { delimiter: '/' }, { delimiter: '-' }, { delimiter: '--' }, { prefix: 'c' }, { prefix: 'c', delimiter: '/' }, { prefix: 'a-', delimiter: '-' }, { prefix: 'nothing' }];
      for (const q of shapes) {
        for (const maxKeys of ['1', '2', '1000']) {
          const mine = await allPages(lc, twin, 'versions', { ...q, 'max-keys': maxKeys });
          // MinIO's one-page answer: its own paging of versions with a delimiter and small pages does not end
          const theirs = listingOf(await req(minio, 'GET', `/${twinMinio}`, { query: { versions: '', ...q } }));
          expect(theirs.truncated).toBe(false);
          expect({ q, maxKeys, keys: mine.keys, prefixes: mine.prefixes }).toEqual({ q, maxKeys, keys: theirs.keys, prefixes: theirs.prefixes });
        }
      }
      // a page that ends on a common prefix names it as NextKeyMarker, without a version id, and the next page
      // (key-marker = that prefix) does not list it again
      const p1 = listingOf(await req(lc, 'GET', `/${twin}`, { query: { versions: '', delimiter: '/', 'key-marker': 'c-g', 'max-keys': '1' } }));
      expect(p1.prefixes).toEqual(['c/']);
      expect(p1.doc.NextKeyMarker).toBe('c/');
      expect(p1.doc.NextVersionIdMarker).toBeUndefined();
      const p2 = listingOf(await req(lc, 'GET', `/${twin}`, { query: { versions: '', delimiter: '/', 'key-marker': 'c/', 'max-keys': '1' } }));
      expect(p2.keys).toEqual(['plus+k']);
      expect(p2.versionIds).toEqual(['null']);
      // key-marker with version-id-marker null resumes after that key; a key-marker that is no key is fine
      for (const [marker, vid, first] of [['b', 'null', 'b-x-y'], ['b', undefined, 'b-x-y'], ['bz', undefined, 'c-g'], ['b', UUID, 'b-x-y']] as const) {
        const l = listingOf(await req(lc, 'GET', `/${twin}`, { query: { versions: '', 'key-marker': marker, ...(vid ? { 'version-id-marker': vid } : {}), 'max-keys': '1' } }));
        expect({ marker, vid, keys: l.keys }).toEqual({ marker, vid, keys: [first] });
        expect(l.doc.KeyMarker).toBe(marker);
        expect(l.doc.VersionIdMarker).toBe(vid ?? '');
      }
    }, TIMEOUT);

    it("ListObjectVersions refuses markers and arguments as S3 does, in S3's order", async () => {
      const cases: [Record<string, string>, string, string][] = [
        // MinIO answers 501 NotImplemented here
        [{ 'version-id-marker': 'null' }, 'InvalidArgument', 'A version-id marker cannot be specified without a key marker.'],
        [{ 'version-id-marker': '' }, 'InvalidArgument', 'A version-id marker cannot be specified without a key marker.'],
        // MinIO lists from the key here
        [{ 'key-marker': 'a', 'version-id-marker': '' }, 'InvalidArgument', 'A version-id marker cannot be empty.'],
        [{ 'key-marker': 'a', 'version-id-marker': 'not-a-version' }, 'InvalidArgument', 'Invalid version id specified'],
        [{ 'max-keys': '-1', 'version-id-marker': 'x' }, 'InvalidArgument', 'Provided max-keys not an integer or within integer range'],
        [{ 'max-keys': 'abc' }, 'InvalidArgument', 'Provided max-keys not an integer or within integer range'],
        [{ 'key-marker': 'a', 'version-id-marker': 'bad', 'encoding-type': 'nope' }, 'InvalidArgument', 'Invalid version id specified'],
        [{ 'encoding-type': 'nope' }, 'InvalidArgument', 'Invalid Encoding Method specified in Request'],
      ];
      for (const [q, code, message] of cases) {
        const r = await req(lc, 'GET', `/${twin}`, { query: { versions: '', ...q } });
        expect({ q, status: r.status, code: errorCode(r.body), message: /<Message>([^<]*)/.exec(r.body.toString())?.[1] }).toEqual({ q, status: 400, code, message });
      }
      // checked before the bucket is looked up, as S3 does; then the bucket
      expect(errorCode((await req(lc, 'GET', '/no-such-bucket-versions-x', { query: { versions: '', 'max-keys': 'x' } })).body)).toBe('InvalidArgument');
      const missing = await both('GET', '-no-such', { query: { versions: '' } });
      expect([missing.lc.status, errorCode(missing.lc.body)]).toEqual([404, 'NoSuchBucket']);
      expect([missing.minio.status, errorCode(missing.minio.body)]).toEqual([404, 'NoSuchBucket']);
      // max-keys 0: an empty page, not truncated (MinIO alike); empty max-keys is the default
      for (const q of [{ 'max-keys': '0' }, { 'max-keys': '' }, { 'max-keys': '5000' }]) {
        const r = await both('GET', '', { query: { versions: '', ...q } });
        expect(comparable(listingOf(r.lc))).toEqual(comparable(listingOf(r.minio)));
      }
      expect(listingOf((await both('GET', '', { query: { versions: '', 'max-keys': '0' } })).lc).doc.MaxKeys).toBe('0');
    }, TIMEOUT);

    it('encoding-type=url encodes as S3 (a space is %20, MinIO writes +) in every listing, and clients decode it back', async () => {
      const bucket = uniqueBucket(`enc-${kind}`);
      const keys = ['foo+1/bar', 'foo/bar/xyzzy', 'quux ab/thud', 'asdf+b'];
      expect((await req(lc, 'PUT', `/${bucket}`)).status).toBe(200);
      for (const k of keys) expect((await req(lc, 'PUT', `/${bucket}/${k}`, { body: 'x' })).status).toBe(200);
      // s3-tests' test_bucket_list(v2)_encoding_basic, and the same for versions
      for (const q of [{}, { 'list-type': '2' }, { versions: '' }] as Record<string, string>[]) {
        const l = listingOf(await req(lc, 'GET', `/${bucket}`, { query: { ...q, delimiter: '/', 'encoding-type': 'url' } }));
        expect({ q, keys: l.keys, prefixes: l.prefixes, delimiter: l.doc.Delimiter, enc: l.doc.EncodingType }).toEqual({
          q, keys: ['asdf%2Bb'], prefixes: ['foo%2B1/', 'foo/', 'quux%20ab/'], delimiter: '/', enc: 'url',
        });
      }
      // markers, prefix, delimiter and start-after echo encoded too (unicode as UTF-8 bytes, '~' kept)
      const echo = listingOf(await req(lc, 'GET', `/${bucket}`, { query: { 'list-type': '2', 'encoding-type': 'url', prefix: 'quux a', delimiter: ' ', 'start-after': 'é~*' } }));
      expect([echo.doc.Prefix, echo.doc.Delimiter, echo.doc.StartAfter]).toEqual(['quux%20a', '%20', '%C3%A9~%2A']);
      const v1 = listingOf(await req(lc, 'GET', `/${bucket}`, { query: { 'encoding-type': 'url', marker: 'foo+1/bar', delimiter: '/', 'max-keys': '1' } }));
      expect([v1.doc.Marker, v1.prefixes, v1.doc.NextMarker]).toEqual(['foo%2B1/bar', ['foo/'], 'foo/']);
      const ver = listingOf(await req(lc, 'GET', `/${bucket}`, { query: { versions: '', 'encoding-type': 'url', 'key-marker': 'asdf+b', 'max-keys': '1' } }));
      expect([ver.doc.KeyMarker, ver.keys, ver.doc.NextKeyMarker]).toEqual(['asdf%2Bb', ['foo%2B1/bar'], 'foo%2B1/bar']);

      // every twin key decodes back to itself from the gateway's answer (strict percent-decoding) and from MinIO's
      // (form decoding, its '+' for a space); the two differ only in how they spell the same bytes
      const r = await both('GET', '', { query: { versions: '', 'encoding-type': 'url' } });
      const mine = listingOf(r.lc).keys;
      const theirs = listingOf(r.minio).keys;
      expect(mine.map((k) => decodeURIComponent(k))).toEqual(TWIN_KEYS.slice().sort(byBytes));
      expect(theirs.map((k) => decodeURIComponent(k.replace(/\+/g, ' ')))).toEqual(TWIN_KEYS.slice().sort(byBytes));
      expect(mine).toContain('sp%20ace/k');
      expect(theirs).toContain('sp+ace/k');
      for (const k of mine) expect(k).toMatch(/^[A-Za-z0-9\-._~/%]*$/);

      // the SDK's own paginated listing (no encoding) sees the keys as they are
      const sdk = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
      expect(sdk.Versions!.map((x) => x.Key)).toEqual(keys.slice().sort(byBytes));
    }, TIMEOUT);

    it('listing edge cases answer as MinIO does: other delimiters, markers inside a common prefix, max-keys, tokens, odd prefixes', async () => {
      const shapes: Record<string, string>[] = [
        { delimiter: '-' }, { delimiter: '--' }, { delimiter: 'b-' }, { delimiter: '-', prefix: 'a' }, { delimiter: '-', prefix: 'a-' },
        { marker: 'c/d', delimiter: '/' }, { marker: 'c', delimiter: '/' }, { marker: 'c/', delimiter: '/' }, { marker: 'zz' },
        { prefix: 'zzz' }, { prefix: '/' }, { prefix: 'été' }, { prefix: 'q%' }, { prefix: 'sp ', delimiter: ' ' }, { delimiter: '', prefix: 'c' },
        { 'max-keys': '0' }, { 'max-keys': '' }, { 'max-keys': '-1' }, { 'max-keys': 'abc' }, { 'max-keys': '1.5' }, { 'max-keys': '99999999999999999999' },
        { 'encoding-type': 'nope' },
      ];
      for (const q of shapes) {
        for (const v2 of [false, true]) {
          const query = v2 ? { 'list-type': '2', ...Object.fromEntries(Object.entries(q).map(([k, v]) => [k === 'marker' ? 'start-after' : k, v])) } : q;
          const r = await both('GET', '', { query });
          expect({ query, ...comparable(listingOf(r.lc)) }).toEqual({ query, ...comparable(listingOf(r.minio)) });
        }
      }
      for (const token of ['garbage', '']) {
        const r = await both('GET', '', { query: { 'list-type': '2', 'continuation-token': token } });
        expect([r.lc.status, errorCode(r.lc.body)]).toEqual([400, 'InvalidArgument']);
        expect([r.minio.status, errorCode(r.minio.body)]).toEqual([400, 'InvalidArgument']);
        expect(r.lc.body.toString()).toContain('<Message>The continuation token provided is incorrect</Message>');
      }
      // a token the gateway did not issue is refused, as S3 does (MinIO takes any base64 as a key to start after)
      const foreign = await req(lc, 'GET', `/${twin}`, { query: { 'list-type': '2', 'continuation-token': Buffer.from('b').toString('base64') } });
      expect([foreign.status, errorCode(foreign.body)]).toEqual([400, 'InvalidArgument']);
      // paging with a delimiter and one entry a page ends, on each listing, with MinIO's full result
      // (MinIO's own paging with a delimiter other than '/' does not end: the gateway's must, on both backends)
      const paged: [Kind, Record<string, string>][] = [
        ['v1', { delimiter: '/' }], ['v2', { delimiter: '/' }], ['v1', { delimiter: '-' }], ['v2', { delimiter: '-' }], ['v2', { delimiter: '--' }],
        ['v2', { delimiter: '-', 'start-after': 'b' }], ['v1', { delimiter: '/', marker: 'c/d' }], ['v2', { prefix: 'c' }],
      ];
      for (const [k, q] of paged) {
        const mine = await allPages(lc, twin, k, { ...q, 'max-keys': '1' });
        const full = listingOf((await both('GET', '', { query: { ...(k === 'v2' ? { 'list-type': '2' } : {}), ...q } })).minio);
        expect({ k, q, keys: mine.keys, prefixes: mine.prefixes }).toEqual({ k, q, keys: full.keys, prefixes: full.prefixes });
      }
    }, TIMEOUT);

    /**
     * versitygw's version ids are ULIDs (26 characters): an id of MinIO's form (a UUID, 32 hex digits) is malformed
     * there, and it answers 400 InvalidArgument, as S3 does for an id not of its own form, where MinIO, whose ids
     * they are, finds no such version (404 NoSuchVersion; a DELETE deletes nothing). The gateway passes the store's
     * answer on: client version ids are the store's.
     */
    const foreignId = (vid: string | undefined) => on === 'versitygw' && vid !== undefined && versionIdKind(vid) === 'unknown';

    it('versionId: null reads, deletes and copies the object; other ids answer as MinIO (NoSuchVersion, InvalidArgument)', async () => {
      const cases: [string, string, Record<string, string>][] = [];
      for (const vid of ['null', UUID, UUID.toUpperCase(), UUID.replace(/-/g, ''), 'abc', 'NULL', '3/L4kqtJl40Nr8X8gdRQBpUMLUo', '']) {
        for (const key of ['b', 'no-such-key']) {
          cases.push(['GET', `/${key}`, { versionId: vid }], ['HEAD', `/${key}`, { versionId: vid }]);
        }
        cases.push(['DELETE', '/no-such-key', { versionId: vid }]);
      }
      for (const [method, sub, query] of cases) {
        const r = await both(method, sub, { query });
        const want = foreignId(query.versionId) ? { status: 400, code: method === 'HEAD' ? '' : 'InvalidArgument' } : { status: r.minio.status, code: errorCode(r.minio.body) };
        expect({ method, sub, query, status: r.lc.status, code: errorCode(r.lc.body) }).toEqual({ method, sub, query, ...want });
        if (r.lc.status === 200 && method === 'GET') expect(r.lc.body.toString()).toBe(r.minio.body.toString());
      }
      // a bucket that does not exist: the version id is looked at first when malformed, the bucket otherwise
      for (const vid of ['abc', 'null']) {
        const r = await req(lc, 'GET', '/no-such-bucket-vid-x/k', { query: { versionId: vid } });
        expect([r.status, errorCode(r.body)]).toEqual(vid === 'abc' ? [400, 'InvalidArgument'] : [404, 'NoSuchBucket']);
      }
      // DELETE with an unknown well-formed id deletes nothing; a malformed one is refused; null deletes
      for (const t of [[lc, twin], [minio, twinMinio]] as const) {
        expect((await req(t[0], 'PUT', `/${t[1]}/vdel`, { body: 'x' })).status).toBe(200);
        expect((await req(t[0], 'DELETE', `/${t[1]}/vdel`, { query: { versionId: UUID } })).status).toBe(t[0] === lc && foreignId(UUID) ? 400 : 204);
        expect((await req(t[0], 'DELETE', `/${t[1]}/vdel`, { query: { versionId: 'abc' } })).status).toBe(400);
        expect((await req(t[0], 'GET', `/${t[1]}/vdel`)).status).toBe(200);
        expect((await req(t[0], 'DELETE', `/${t[1]}/vdel`, { query: { versionId: 'null' } })).status).toBe(204);
        expect(errorCode((await req(t[0], 'GET', `/${t[1]}/vdel`)).body)).toBe('NoSuchKey');
      }
      // copy sources: ?versionId=null copies; any other id, or null of an absent key, is NoSuchVersion
      for (const src of ['b?versionId=null', 'b?versionId=abc', `b?versionId=${UUID}`, 'no-such-key?versionId=null', 'no-such-key', 'b?versionId=', 'b?versionId=null&x=1']) {
        const r = {
          lc: await req(lc, 'PUT', `/${twin}/copied`, { headers: { 'x-amz-copy-source': `/${twin}/${src}` } }),
          minio: await req(minio, 'PUT', `/${twinMinio}/copied`, { headers: { 'x-amz-copy-source': `/${twinMinio}/${src}` } }),
        };
        const want = src.includes(UUID) && foreignId(UUID) ? { status: 400, code: 'InvalidArgument' } : { status: r.minio.status, code: errorCode(r.minio.body) };
        expect({ src, status: r.lc.status, code: errorCode(r.lc.body) }).toEqual({ src, ...want });
      }
      expect((await req(lc, 'GET', `/${twin}/copied`)).body.toString()).toBe('data of b');
      // UploadPartCopy takes the same copy source
      const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: twin, Key: 'mpcopy' }));
      const part = (q: string) => req(lc, 'PUT', `/${twin}/mpcopy`, { query: { partNumber: '1', uploadId: up.UploadId! }, headers: { 'x-amz-copy-source': `/${twin}/b?versionId=${q}` } });
      expect((await part('null')).status).toBe(200);
      const unknown = await part(UUID);
      expect([unknown.status, errorCode(unknown.body)]).toEqual(foreignId(UUID) ? [400, 'InvalidArgument'] : [404, 'NoSuchVersion']);
      expect((await req(lc, 'DELETE', `/${twin}/mpcopy`, { query: { uploadId: up.UploadId! } })).status).toBe(204);
      for (const t of [[lc, twin], [minio, twinMinio]] as const) await req(t[0], 'DELETE', `/${t[1]}/copied`);
    }, TIMEOUT);

    it('DeleteObjects takes VersionId per entry and answers it back, in the order asked, as MinIO does', async () => {
      const entries: [string, string | undefined][] = [['del-null', 'null'], ['del-absent', 'null'], ['del-bad', 'abc'], ['del-uuid-absent', UUID], ['del-plain', undefined], ['del-uuid', UUID]];
      const body = `<Delete>${entries.map(([k, v]) => `<Object><Key>${k}</Key>${v === undefined ? '' : `<VersionId>${v}</VersionId>`}</Object>`).join('')}</Delete>`;
      const md5 = createHash('md5').update(body).digest('base64');
      const answers = [];
      for (const [t, b] of [[lc, twin], [minio, twinMinio]] as const) {
        for (const k of ['del-null', 'del-plain', 'del-uuid']) expect((await req(t, 'PUT', `/${b}/${k}`, { body: 'x' })).status).toBe(200);
        const r = await req(t, 'POST', `/${b}`, { query: { delete: '' }, body, headers: { 'content-md5': md5 } });
        expect(r.status).toBe(200);
        const d = xmlOf(r).DeleteResult as Node;
        answers.push({
          deleted: ((d.Deleted ?? []) as Node[]).map((x) => [x.Key, x.VersionId ?? null]),
          errors: ((d.Error ?? []) as Node[]).map((x) => [x.Key, x.VersionId, x.Code]),
          left: await Promise.all(['del-null', 'del-plain', 'del-uuid'].map(async (k) => (await req(t, 'HEAD', `/${b}/${k}`)).status)),
        });
      }
      const minioAnswer = {
        deleted: [['del-null', 'null'], ['del-absent', 'null'], ['del-uuid-absent', UUID], ['del-plain', null], ['del-uuid', UUID]],
        errors: [['del-bad', 'abc', 'NoSuchVersion']],
        left: [404, 404, 200],
      };
      expect(answers[1]).toEqual(minioAnswer);
      expect(answers[0]).toEqual(
        foreignId(UUID)
          ? {
              deleted: [['del-null', 'null'], ['del-absent', 'null'], ['del-plain', null]],
              errors: [['del-bad', 'abc', 'NoSuchVersion'], ['del-uuid-absent', UUID, 'InvalidArgument'], ['del-uuid', UUID, 'InvalidArgument']],
              left: [404, 404, 200],
            }
          : minioAnswer,
      );
      for (const [t, b] of [[lc, twin], [minio, twinMinio]] as const) await req(t, 'DELETE', `/${b}/del-uuid`);
    }, TIMEOUT);

    it('CreateBucket refuses the names S3 refuses (InvalidBucketName, as MinIO) and takes the edge cases it allows', async () => {
      const refusedByBoth = ['192.168.5.4', '10.0.0.1', 'a..b', 'a-.b', 'a.-b', '-ab', 'ab-', '.ab', 'ab.', 'ABC', 'aBc', 'ab', 'a', 'a_b', 'a b', 'a'.repeat(64), '999.1.1.1'];
      for (const name of refusedByBoth) {
        const mine = await req(lc, 'PUT', `/${name}`);
        const theirs = await req(minio, 'PUT', `/${name}`);
        expect({ name, status: mine.status, code: errorCode(mine.body) }).toEqual({ name, status: 400, code: 'InvalidBucketName' });
        expect({ name, status: theirs.status, code: errorCode(theirs.body) }).toEqual({ name, status: 400, code: 'InvalidBucketName' });
      }
      // S3's reserved prefixes and suffixes (MinIO takes these)
      for (const name of ['xn--abc', 'sthree-abc', 'abc-s3alias', 'abc--ol-s3']) {
        const r = await req(lc, 'PUT', `/${name}`);
        expect({ name, status: r.status, code: errorCode(r.body) }).toEqual({ name, status: 400, code: 'InvalidBucketName' });
      }
      const tag = randomBytes(3).toString('hex');
      for (const name of [`${tag.slice(0, 3)}`, `x${tag}`.padEnd(63, '7'), `${tag}.b.c`, `1.2.3.x${tag}`, `192.168.${parseInt(tag, 16) % 250}`, `${tag}-x.y-z`]) {
        expect({ name, status: (await req(lc, 'PUT', `/${name}`)).status }).toEqual({ name, status: 200 });
        expect({ name, status: (await req(lc, 'HEAD', `/${name}`)).status }).toEqual({ name, status: 200 });
        expect({ name, status: (await req(lc, 'DELETE', `/${name}`)).status }).toEqual({ name, status: 204 });
      }
    }, TIMEOUT);

    it('HeadBucket: 404 without a body for a missing bucket, 400 for an invalid name, 403 for a bucket the user may not reach', async () => {
      for (const name of ['no-such-bucket-head-x', 'ABC', 'a..b']) {
        const mine = await req(lc, 'HEAD', `/${name}`);
        const theirs = await req(minio, 'HEAD', `/${name}`);
        expect({ name, status: mine.status, body: mine.body.length }).toEqual({ name, status: theirs.status, body: 0 });
      }
      expect((await req(lc, 'HEAD', '/no-such-bucket-head-x')).status).toBe(404);
      const limitedT = { url: gw.url, ...limited };
      expect((await req(lc, 'PUT', `/${ownBucket}`)).status).toBe(200);
      expect((await req(limitedT, 'HEAD', `/${ownBucket}`)).status).toBe(200);
      const denied = await req(limitedT, 'HEAD', `/${twin}`);
      expect([denied.status, denied.body.length]).toEqual([403, 0]);
      expect(errorCode((await req(limitedT, 'GET', `/${twin}`, { query: { versions: '' } })).body)).toBe('AccessDenied');
      expect((await req(lc, 'DELETE', `/${ownBucket}`)).status).toBe(204);
    }, TIMEOUT);

    /** A bucket with objects in several shapes, as the cleaners below meet them. */
    async function filledBucket(prefix: string): Promise<{ bucket: string; keys: string[] }> {
      const bucket = uniqueBucket(`${prefix}-${kind}`);
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      const keys = ['a', 'b c', 'd/e', 'd/f/g', 'plus+key', 'été', 'x~y*z', 'big'];
      for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k === 'big' ? randomBytes(9 * MiB) : `body ${k}` }));
      return { bucket, keys };
    }
    const gone = async (bucket: string) => (await s3err(s3.send(new HeadBucketCommand({ Bucket: bucket })))).status;

    it('empties and removes a bucket as conformance suites and Terraform do: all versions, paged 2 at a time, deleted by Key + VersionId', async () => {
      const { bucket, keys } = await filledBucket('tfclean');
      const seen: ObjectVersion[] = [];
      let KeyMarker: string | undefined;
      let VersionIdMarker: string | undefined;
      let pages = 0;
      for (;;) {
        const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 2, KeyMarker, VersionIdMarker }));
        pages++;
        seen.push(...(page.Versions ?? []));
        expect(page.DeleteMarkers ?? []).toEqual([]);
        if (!page.IsTruncated) break;
        ({ NextKeyMarker: KeyMarker, NextVersionIdMarker: VersionIdMarker } = page);
        expect(VersionIdMarker).toBe('null');
        expect(pages).toBeLessThan(20);
      }
      expect(pages).toBe(Math.ceil(keys.length / 2));
      expect(seen.map((v) => v.Key)).toEqual(keys.slice().sort(byBytes));
      for (let i = 0; i < seen.length; i += 3) {
        const batch = seen.slice(i, i + 3).map((v) => ({ Key: v.Key!, VersionId: v.VersionId! }));
        const res = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch } }));
        expect(res.Errors ?? []).toEqual([]);
        expect(res.Deleted!.map((d) => [d.Key, d.VersionId])).toEqual(batch.map((b) => [b.Key, 'null']));
      }
      expect((await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }))).Versions ?? []).toEqual([]);
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      expect(await gone(bucket)).toBe(404);
    }, TIMEOUT);

    it('mc rb --force empties and removes a bucket through the gateway', async () => {
      const mcBin = findBinary('mc');
      expect(mcBin, 'mc not found: run `bash scripts/test-deps.sh`').toBeTruthy();
      const { bucket } = await filledBucket('mcrb');
      const env = cleanEnv(path.join(tmp.path, 'mc-home'));
      const configDir = path.join(tmp.path, 'mc-config');
      const mc = (...args: string[]) => run(mcBin!, ['--config-dir', configDir, '--no-color', ...args], { env });
      expectClean(await mc('alias', 'set', 'lakecrypt', gw.url, gw.accessKey, gw.secretKey, '--api', 'S3v4', '--path', 'on'));
      const before = log.records.length;
      expectClean(await mc('rb', '--force', `lakecrypt/${bucket}`));
      expect(await gone(bucket)).toBe(404);
      const ops = log.records.slice(before).filter((r) => r.bucket === bucket);
      expect(ops.filter((r) => r.status >= 400 && r.op !== 'HeadBucket').map((r) => [r.op, r.status])).toEqual([]);
      // mc lists versions (encoding-type=url, which it decodes) and deletes them in batches
      for (const op of ['ListObjectVersions', 'DeleteObjects', 'DeleteBucket']) expect(ops.some((r) => r.op === op && r.status < 300), op).toBe(true);
    }, TIMEOUT);

    it("boto3's bucket.object_versions.delete() then bucket.delete()", async () => {
      expect(pythonHas(['boto3']), 'pip install boto3 (scripts/test-deps.sh)').toEqual([]);
      const { bucket, keys } = await filledBucket('boto3v');
      const script = [
        'import json, os, sys, boto3',
        'from botocore.config import Config',
        's3 = boto3.resource("s3", endpoint_url=sys.argv[1], aws_access_key_id=os.environ["LC_ACCESS_KEY"], aws_secret_access_key=os.environ["LC_SECRET_KEY"], region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))',
        'b = s3.Bucket(sys.argv[2])',
        'seen = sorted([v.object_key, v.id] for v in b.object_versions.page_size(3))',
        'res = b.object_versions.delete()',
        'deleted = sorted([d["Key"], d.get("VersionId")] for r in res for d in r.get("Deleted", []))',
        'errors = [e for r in res for e in r.get("Errors", [])]',
        'b.delete()',
        'print(json.dumps({"seen": seen, "deleted": deleted, "errors": errors}))',
      ].join('\n');
      const env = cleanEnv(path.join(tmp.path, 'py-home'), { LC_ACCESS_KEY: gw.accessKey, LC_SECRET_KEY: gw.secretKey });
      const before = log.records.length;
      const r = expectClean(await run(pythonExe(), ['-c', script, gw.url, bucket], { env }));
      const ops = log.records.slice(before).filter((x) => x.bucket === bucket);
      expect(ops.filter((x) => x.op === 'ListObjectVersions' && x.status === 200).length).toBeGreaterThanOrEqual(Math.ceil(keys.length / 3));
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seen: string[][]; deleted: string[][]; errors: unknown[] };
      const expected = keys.slice().sort().map((k) => [k, 'null']);
      expect(out).toEqual({ seen: expected, deleted: expected, errors: [] });
      expect(await gone(bucket)).toBe(404);
    }, TIMEOUT);
  });
}

/** Key order as S3 lists: by UTF-8 bytes. */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

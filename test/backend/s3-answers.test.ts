/**
 * The s3 backend's rare calls (buckets, multipart create/complete/list) against a stub store with canned answers:
 * what the real stores in the contract suite never send (MinIO answers ListMultipartUploads and ListParts in one
 * page; versitygw does not url-encode ListMultipartUploads and cannot page it past 1000; no store fails a Complete
 * after its 200 headers on demand), and the requests as the AWS SDK sent them before the backend read these answers
 * itself (issue #22).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Backend } from '../../src/backend/s3.ts';
import { S3Error } from '../../src/errors.ts';

const XML = '<?xml version="1.0" encoding="UTF-8"?>\n';
const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
}
type Answer = { status?: number; headers?: Record<string, string>; body?: string };

describe('s3 backend: the rare calls against canned answers', () => {
  let server: http.Server;
  let endpoint: string;
  let seen: Seen[] = [];
  let answer: (req: Seen) => Answer = () => ({});
  const backend = (region = 'us-east-1') => new S3Backend({ endpoint, accessKey: 'ak', secretKey: 'sk', region, maxAttempts: 3 });
  let b: S3Backend;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://stub');
        const r: Seen = { method: req.method ?? '', path: decodeURIComponent(url.pathname), query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString() };
        seen.push(r);
        const a = answer(r);
        res.writeHead(a.status ?? 200, { 'content-type': 'application/xml', server: 'MinIO', ...a.headers });
        res.end(a.body ?? '');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    b = backend();
  });
  afterAll(async () => {
    await b?.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const reset = (a: (req: Seen) => Answer) => {
    seen = [];
    answer = a;
  };
  const error = (status: number, code: string): Answer => ({ status, body: `${XML}<Error><Code>${code}</Code><Message>stub</Message></Error>` });
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => 'resolved',
      (e: unknown) => (e instanceof S3Error ? e.code : `not an S3Error: ${String(e)}`),
    );

  it('ListBuckets: names and creation dates, entities decoded; an answer that is not a bucket list is ServiceUnavailable', async () => {
    reset(() => ({
      body: `${XML}<ListAllMyBucketsResult ${NS}><Owner><ID>o</ID><DisplayName>minio</DisplayName></Owner><Buckets><Bucket><Name>a-b</Name><CreationDate>2024-01-02T03:04:05.678Z</CreationDate><BucketRegion>us-east-1</BucketRegion></Bucket><Bucket><CreationDate>2025-11-02T03:04:05Z</CreationDate><Name>zz</Name></Bucket></Buckets></ListAllMyBucketsResult>`,
    }));
    expect(await b.listBuckets()).toEqual([
      { name: 'a-b', creationDate: new Date('2024-01-02T03:04:05.678Z') },
      { name: 'zz', creationDate: new Date('2025-11-02T03:04:05Z') },
    ]);
    expect(seen.map((r) => [r.method, r.path])).toEqual([['GET', '/']]);
    reset(() => ({ body: '<html>a proxy page</html>' }));
    expect(await codeOf(b.listBuckets())).toBe('ServiceUnavailable');
  });

  it('CreateBucket: no body in us-east-1, a LocationConstraint elsewhere (as the SDK sent); store errors keep their codes', async () => {
    reset(() => ({}));
    await b.createBucket('bkt-one');
    const other = backend('eu-west-1');
    await other.createBucket('bkt-two');
    await other.close();
    expect(seen.map((r) => [r.method, r.path, r.headers['content-length'], r.body])).toEqual([
      ['PUT', '/bkt-one', '0', ''],
      ['PUT', '/bkt-two', expect.any(String), `<?xml version="1.0" encoding="UTF-8"?><CreateBucketConfiguration ${NS}><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`],
    ]);
    for (const code of ['BucketAlreadyOwnedByYou', 'BucketAlreadyExists']) {
      reset(() => error(409, code));
      expect(await codeOf(b.createBucket('bkt-one'))).toBe(code);
    }
  });

  it('HeadBucket: 404 and 400 are no bucket, 403 AccessDenied, a persistent 5xx ServiceUnavailable after retries', async () => {
    const cases: [number, boolean | string, number][] = [
      [200, true, 1],
      [404, false, 1],
      [400, false, 1],
      [403, 'AccessDenied', 1],
      [500, 'ServiceUnavailable', 3],
    ];
    for (const [status, want, requests] of cases) {
      reset(() => ({ status }));
      const got = await b.bucketExists('bkt').catch((e: S3Error) => e.code);
      expect([status, got, seen.length]).toEqual([status, want, requests]);
    }
  });

  it('CreateMultipartUpload: metadata as x-amz-meta-* headers, the UploadId entity-decoded; a 200 without one is ServiceUnavailable', async () => {
    reset(() => ({ body: `${XML}<InitiateMultipartUploadResult ${NS}><Bucket>bkt</Bucket><Key>k</Key><UploadId>id&amp;1+/=</UploadId></InitiateMultipartUploadResult>` }));
    expect(await b.createMultipart('bkt', 'a b+c', { 'Lc-Oid': 'x', 'lc-fmt': '1' })).toBe('id&1+/=');
    expect(seen.map((r) => [r.method, r.path, [...r.query], r.headers['x-amz-meta-lc-oid'], r.headers['x-amz-meta-lc-fmt']])).toEqual([
      ['POST', '/bkt/a b+c', [['uploads', '']], 'x', '1'],
    ]);
    reset(() => ({ body: `${XML}<InitiateMultipartUploadResult ${NS}><Bucket>bkt</Bucket></InitiateMultipartUploadResult>` }));
    expect(await codeOf(b.createMultipart('bkt', 'k', {}))).toBe('ServiceUnavailable');
  });

  it('ListParts: pages followed by part-number-marker, ETags unquoted (&#34; and &quot;); NoSuchUpload kept', async () => {
    reset((r) => {
      const marker = r.query.get('part-number-marker');
      const etag = (n: number) => (n % 2 ? `&#34;e${n}&#34;` : `&quot;e${n}&quot;`);
      const parts = (marker === null ? [1, 2] : [3]).map((n) => `<Part><PartNumber>${n}</PartNumber><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>${etag(n)}</ETag><Size>5</Size></Part>`);
      return {
        body: `${XML}<ListPartsResult ${NS}><Bucket>bkt</Bucket><Key>k</Key><UploadId>u</UploadId><PartNumberMarker>${marker ?? 0}</PartNumberMarker><NextPartNumberMarker>${marker === null ? 2 : 3}</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>${marker === null}</IsTruncated>${parts.join('')}</ListPartsResult>`,
      };
    });
    expect(await b.listParts('bkt', 'k', 'u/+=')).toEqual([1, 2, 3].map((n) => ({ partNumber: n, etag: `e${n}` })));
    expect(seen.map((r) => Object.fromEntries(r.query))).toEqual([{ uploadId: 'u/+=' }, { uploadId: 'u/+=', 'part-number-marker': '2' }]);
    reset(() => error(404, 'NoSuchUpload'));
    const e = (await b.listParts('bkt', 'k', 'u').catch((x: unknown) => x)) as S3Error;
    expect([e.code, e.detail]).toEqual(['NoSuchUpload', { BucketName: 'bkt', Key: 'k', UploadId: 'u' }]);
  });

  it('ListMultipartUploads: pages followed by key-marker and upload-id-marker (a boundary inside a key), keys url-decoded when the answer says url, sorted', async () => {
    // MinIO-style encoding: a space as '+', a '+' as %2B
    const upload = (key: string, id: string, at?: string) => `<Upload><Key>${key}</Key><UploadId>${id}</UploadId><Initiator><ID>i</ID></Initiator>${at ? `<Initiated>${at}</Initiated>` : ''}</Upload>`;
    reset((r) => {
      const first = !r.query.has('key-marker');
      const page = first
        ? upload('a%26%C3%A9', 'u1', '2024-05-01T00:00:01.000Z') + upload('b%2Bc+d', 'u2', '2024-05-01T00:00:02.000Z')
        : upload('b%2Bc+d', 'u3', '2024-05-01T00:00:00.000Z') + upload('no-date', 'u4');
      const next = first ? '<NextKeyMarker>b%2Bc+d</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>' : '<NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>';
      return { body: `${XML}<ListMultipartUploadsResult ${NS}><Bucket>bkt</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>${next}<EncodingType>url</EncodingType><MaxUploads>2</MaxUploads><IsTruncated>${first}</IsTruncated>${page}</ListMultipartUploadsResult>` };
    });
    expect(await b.listMultipartUploads('bkt')).toEqual([
      { key: 'a&\u00e9', uploadId: 'u1', initiated: new Date('2024-05-01T00:00:01.000Z') },
      { key: 'b+c d', uploadId: 'u3', initiated: new Date('2024-05-01T00:00:00.000Z') },
      { key: 'b+c d', uploadId: 'u2', initiated: new Date('2024-05-01T00:00:02.000Z') },
      { key: 'no-date', uploadId: 'u4', initiated: new Date(0) },
    ]);
    expect(seen.map((r) => Object.fromEntries(r.query))).toEqual([
      { uploads: '', 'encoding-type': 'url' },
      { uploads: '', 'encoding-type': 'url', 'key-marker': 'b+c d', 'upload-id-marker': 'u2' },
    ]);
  });

  it('ListMultipartUploads from a store that ignores encoding-type=url (versitygw): keys and markers taken as they are', async () => {
    reset((r) => {
      const first = !r.query.has('key-marker');
      const page = first ? '<Upload><Key>50% a+b &amp; c</Key><UploadId>v1</UploadId></Upload>' : '<Upload><Key>z</Key><UploadId>v2</UploadId></Upload>';
      const next = first ? '<NextKeyMarker>50% a+b &amp; c</NextKeyMarker><NextUploadIdMarker>v1</NextUploadIdMarker>' : '';
      return { body: `${XML}<ListMultipartUploadsResult ${NS}><Bucket>bkt</Bucket>${next}<IsTruncated>${first}</IsTruncated>${page}</ListMultipartUploadsResult>` };
    });
    expect((await b.listMultipartUploads('bkt')).map((u) => [u.key, u.uploadId])).toEqual([
      ['50% a+b & c', 'v1'],
      ['z', 'v2'],
    ]);
    expect(seen[1].query.get('key-marker')).toBe('50% a+b & c');
  });

  it('CompleteMultipartUpload: the body and conditions as the SDK sent them; ETag and version id read', async () => {
    reset(() => ({
      headers: { 'x-amz-version-id': 'v-9' },
      body: `${XML}\n  \n<CompleteMultipartUploadResult ${NS}><Location>http://s/bkt/k</Location><Bucket>bkt</Bucket><Key>k</Key><ETag>&#34;abc-2&#34;</ETag></CompleteMultipartUploadResult>`,
    }));
    expect(await b.completeMultipart('bkt', 'k', 'u+1', [{ partNumber: 1, etag: 'a1' }, { partNumber: 2, etag: '"a2"' }], { ifMatch: 'cur' })).toEqual({ etag: 'abc-2', versionId: 'v-9' });
    const [r] = seen;
    expect([r.method, r.path, Object.fromEntries(r.query), r.headers['content-type'], r.headers['if-match'], r.headers['if-none-match']]).toEqual([
      'POST',
      '/bkt/k',
      { uploadId: 'u+1' },
      'application/xml',
      '"cur"',
      undefined,
    ]);
    expect(r.body).toBe(
      `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload ${NS}><Part><ETag>&quot;a1&quot;</ETag><PartNumber>1</PartNumber></Part><Part><ETag>&quot;a2&quot;</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>`,
    );
    reset(() => ({ body: `${XML}<CompleteMultipartUploadResult><ETag>&quot;abc-1&quot;</ETag></CompleteMultipartUploadResult>` }));
    expect(await b.completeMultipart('bkt', 'k', 'u', [{ partNumber: 1, etag: 'a1' }], { ifNoneMatch: '*' })).toEqual({ etag: 'abc-1' });
    expect(seen[0].headers['if-none-match']).toBe('*');
  });

  it('CompleteMultipartUpload failing after its 200: retried on a transient code or an empty body, else the code; error statuses mapped with the upload', async () => {
    const ok: Answer = { body: `${XML}<CompleteMultipartUploadResult><ETag>"ok-1"</ETag></CompleteMultipartUploadResult>` };
    const inBody = (code: string): Answer => ({ body: `${XML}\n  <Error><Code>${code}</Code><Message>stub</Message></Error>` });
    const complete = () => b.completeMultipart('bkt', 'k', 'u', [{ partNumber: 1, etag: 'a1' }]);
    reset(() => (seen.length === 1 ? inBody('InternalError') : seen.length === 2 ? {} : ok));
    expect(await complete()).toEqual({ etag: 'ok-1' });
    expect(seen).toHaveLength(3);
    // identical bodies: the same request asked again
    expect(new Set(seen.map((r) => r.body)).size).toBe(1);
    const cases: [Answer, string, number][] = [
      [inBody('InvalidPart'), 'InvalidPart', 1],
      [inBody('SlowDown'), 'SlowDown', 3],
      [inBody('SomethingNew'), 'ServiceUnavailable', 1],
      [{}, 'InternalError', 3],
      [{ body: `${XML}<NotAResult/>` }, 'ServiceUnavailable', 1],
      [error(412, 'PreconditionFailed'), 'PreconditionFailed', 1],
      [{ status: 412 }, 'PreconditionFailed', 1],
      [error(404, 'NoSuchUpload'), 'NoSuchUpload', 1],
      [error(400, 'EntityTooSmall'), 'EntityTooSmall', 1],
      [error(503, 'SlowDown'), 'SlowDown', 3],
    ];
    for (const [a, code, requests] of cases) {
      reset(() => a);
      const e = await complete().catch((x: S3Error) => x);
      expect([a.body ?? a.status, e instanceof S3Error && e.code, e instanceof S3Error && e.detail, seen.length]).toEqual([
        a.body ?? a.status,
        code,
        { BucketName: 'bkt', Key: 'k', UploadId: 'u' },
        requests,
      ]);
    }
  });

  it("an error's other <Error> fields ride on the mapped error's cause, as on the SDK's exceptions (the multipart store reads an InvalidPart's PartNumber there)", async () => {
    const invalidPart = `<Error><Code>InvalidPart</Code><Message>One or more of the specified parts could not be found.</Message><UploadId>u</UploadId><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Error>`;
    for (const a of [{ status: 400, body: `${XML}${invalidPart}` }, { status: 200, body: `${XML}\n \n${invalidPart}` }]) {
      reset(() => a);
      const e = (await b.completeMultipart('bkt', 'k', 'u', [{ partNumber: 2, etag: 'e2' }]).catch((x: unknown) => x)) as S3Error;
      expect(e.code).toBe('InvalidPart');
      expect(e.cause).toMatchObject({ Code: 'InvalidPart', PartNumber: '2', ETag: '"e2"', UploadId: 'u' });
    }
  });

  it('AbortMultipartUpload and DeleteBucket: the request, errors mapped with what they name', async () => {
    reset(() => ({ status: 204 }));
    await b.abortMultipart('bkt', 'a b', 'u/1');
    await b.deleteBucket('bkt');
    expect(seen.map((r) => [r.method, r.path, Object.fromEntries(r.query)])).toEqual([
      ['DELETE', '/bkt/a b', { uploadId: 'u/1' }],
      ['DELETE', '/bkt', {}],
    ]);
    reset(() => error(404, 'NoSuchUpload'));
    expect(await codeOf(b.abortMultipart('bkt', 'k', 'u'))).toBe('NoSuchUpload');
    reset(() => error(409, 'BucketNotEmpty'));
    expect(await codeOf(b.deleteBucket('bkt'))).toBe('BucketNotEmpty');
  });
});

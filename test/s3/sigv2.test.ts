/**
 * Signature Version 2 (header and query-string auth) and the X-Amz-Expires bounds of SigV4 presigned URLs.
 *
 * The signatures here are computed by the test itself with node:crypto from the S3 SigV2 spec (StringToSign =
 * METHOD, Content-MD5, Content-Type, Date or Expires, the x-amz-* headers, the resource with its sub-resources),
 * never with the gateway's code; end to end against a gateway on the shared MinIO. boto3 and s3cmd are in
 * test/clients/sigv2.test.ts.
 */
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { launchGateway, startTestGateway, type GatewayProcess, type TestGateway } from '../../tools/gateway.ts';
import { errorCode, rawRequest, signedRequest, type RawResponse } from '../../tools/sigv4.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { verifySigV2 } from '../../src/s3/sigv2.ts';
import { S3Error } from '../../src/errors.ts';
import { awsSigner } from './helpers.ts';

const md5b64 = (b: Buffer | string) => createHash('md5').update(b).digest('base64');
const hmacSha1 = (secret: string, sts: string) => createHmac('sha1', secret).update(sts, 'utf8').digest('base64');
const message = (r: RawResponse) => /<Message>([^<]*)<\/Message>/.exec(r.body.toString())?.[1] ?? '';

interface V2 {
  method: string;
  /** Path as sent (percent-encoded). */
  path: string;
  /** Query as sent (without '?'), sub-resources and others. */
  query?: string;
  headers?: Record<string, string>;
  /** The canonicalized resource, when it is not path + sorted sub-resources (virtual-hosted). */
  resource?: string;
}

/** The sub-resources S3 signs, as the spec lists them (the values are signed decoded). */
const SUB = new Set(['acl', 'delete', 'lifecycle', 'location', 'logging', 'notification', 'partNumber', 'policy', 'requestPayment', 'tagging', 'torrent', 'uploadId', 'uploads', 'versionId', 'versioning', 'versions', 'website', 'response-content-type', 'response-content-disposition', 'response-cache-control', 'response-expires', 'response-content-language', 'response-content-encoding']);

function stringToSign(o: V2, dateLine: string): string {
  const h = Object.fromEntries(Object.entries(o.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const amz = Object.keys(h).filter((k) => k.startsWith('x-amz-')).sort().map((k) => `${k}:${h[k]!.trim()}\n`).join('');
  const subs = (o.query ?? '').split('&').filter(Boolean).map((p) => p.split('=')).filter(([k]) => SUB.has(k!))
    .sort((a, b) => (a[0]! < b[0]! ? -1 : 1)).map(([k, v]) => (v === undefined ? k : `${k}=${decodeURIComponent(v)}`));
  const resource = (o.resource ?? o.path) + (subs.length ? `?${subs.join('&')}` : '');
  return `${o.method}\n${h['content-md5'] ?? ''}\n${h['content-type'] ?? ''}\n${dateLine}\n${amz}${resource}`;
}

/** Header auth: Date (or x-amz-date, which empties the Date line) and `Authorization: AWS ak:sig`. */
function headerSigned(creds: { accessKey: string; secretKey: string }, o: V2, when = new Date()): Record<string, string> {
  const headers = { ...o.headers };
  if (!Object.keys(headers).some((k) => k.toLowerCase() === 'x-amz-date')) headers.Date = when.toUTCString();
  const dateLine = headers.Date ?? '';
  headers.Authorization = `AWS ${creds.accessKey}:${hmacSha1(creds.secretKey, stringToSign({ ...o, headers }, dateLine))}`;
  return headers;
}

/** Query auth: the path and query to put on the request line. */
function presignedPath(creds: { accessKey: string; secretKey: string }, o: V2, expires: number): string {
  const sig = hmacSha1(creds.secretKey, stringToSign(o, String(expires)));
  const auth = `AWSAccessKeyId=${encodeURIComponent(creds.accessKey)}&Expires=${expires}&Signature=${encodeURIComponent(sig)}`;
  return `${o.path}?${o.query ? `${o.query}&` : ''}${auth}`;
}

const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s;

describe('SigV2 against a gateway on MinIO', () => {
  let gw: TestGateway;
  /** Its own process with LAKECRYPT_SIGV2=false: the setting through the loader and main.ts. */
  let off: GatewayProcess;
  const bucket = uniqueBucket('sigv2');
  const creds = () => ({ accessKey: gw.accessKey, secretKey: gw.secretKey });
  const send = (path: string, method: string, headers: Record<string, string> = {}, body?: Buffer) => rawRequest(gw.url, { method, path, headers, body });

  beforeAll(async () => {
    gw = await startTestGateway('s3', { users: [{ accessKey: 'sigv2-other', secretKey: 'sigv2-other-secret', buckets: ['not-this-one'], admin: false }] });
    off = await launchGateway({ env: { LAKECRYPT_SIGV2: 'false' }, quiet: true });
    await gw.client().send(new CreateBucketCommand({ Bucket: bucket }));
    await gw.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'dir/hello world ü.txt', Body: 'hello sigv2' }));
  }, 120_000);
  afterAll(async () => {
    await gw?.close();
    await off?.stop();
  });

  it('header auth: a PUT with x-amz-meta-*, Content-MD5 and Content-Type, read back by header-signed GET and by SigV4', async () => {
    const body = Buffer.from('header-signed body\n');
    const path = `/${bucket}/v2/meta%20obj.txt`;
    const put = { method: 'PUT', path, headers: { 'Content-MD5': md5b64(body), 'Content-Type': 'text/plain', 'x-amz-meta-colour': '  blue ', 'X-Amz-Meta-Shape': 'round', 'Content-Length': String(body.length) } };
    const r = await send(path, 'PUT', headerSigned(creds(), put), body);
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.headers.etag).toBe(`"${createHash('md5').update(body).digest('hex')}"`);

    const get = await send(path, 'GET', headerSigned(creds(), { method: 'GET', path }));
    expect(get.status).toBe(200);
    expect(get.body.equals(body)).toBe(true);
    expect(get.headers['x-amz-meta-colour']).toBe('blue');
    expect(get.headers['x-amz-meta-shape']).toBe('round');
    expect(get.headers['content-type']).toBe('text/plain');
    const head = await gw.client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'v2/meta obj.txt' }));
    expect(head.Metadata).toEqual({ colour: 'blue', shape: 'round' });

    // x-amz-date instead of Date: the Date line of the string to sign is empty
    const amzDated = await send(path, 'GET', headerSigned(creds(), { method: 'GET', path, headers: { 'x-amz-date': new Date().toUTCString() } }));
    expect(amzDated.status).toBe(200);
  });

  it('header auth: whatever was signed cannot be changed — metadata, Content-Type, Content-MD5, method, key', async () => {
    const body = Buffer.from('original');
    const path = `/${bucket}/v2/tamper.txt`;
    const signed = headerSigned(creds(), { method: 'PUT', path, headers: { 'Content-MD5': md5b64(body), 'Content-Type': 'text/plain', 'x-amz-meta-a': '1' } });
    const tries: Array<[string, string, Record<string, string>]> = [
      ['PUT', path, { ...signed, 'x-amz-meta-a': '2' }],
      ['PUT', path, { ...signed, 'x-amz-meta-b': '1' }],
      ['PUT', path, { ...signed, 'Content-Type': 'text/html' }],
      ['POST', path, signed],
      ['PUT', `/${bucket}/v2/other.txt`, signed],
    ];
    for (const [method, p, h] of tries) {
      const r = await send(p, method, h, body);
      expect(r.status, `${method} ${p} ${JSON.stringify(h)}`).toBe(403);
      expect(errorCode(r.body)).toBe('SignatureDoesNotMatch');
    }
    // a new body under the signed Content-MD5: the signature holds, the digest does not, nothing is stored
    const other = await send(path, 'PUT', signed, Buffer.from('replaced'));
    expect(other.status).toBe(400);
    expect(errorCode(other.body)).toBe('BadDigest');
    const gone = await send(path, 'GET', headerSigned(creds(), { method: 'GET', path }));
    expect(errorCode(gone.body)).toBe('NoSuchKey');
    expect((await send(path, 'PUT', signed, body)).status).toBe(200);
  });

  it('header auth: Date skew beyond 15 minutes is RequestTimeTooSkewed; no date is AccessDenied; bad header is InvalidArgument', async () => {
    const path = `/${bucket}/dir/hello%20world%20%C3%BC.txt`;
    const old = await send(path, 'GET', headerSigned(creds(), { method: 'GET', path }, new Date(Date.now() - 16 * 60_000)));
    expect(old.status).toBe(403);
    expect(errorCode(old.body)).toBe('RequestTimeTooSkewed');
    const recent = await send(path, 'GET', headerSigned(creds(), { method: 'GET', path }, new Date(Date.now() - 10 * 60_000)));
    expect(recent.status).toBe(200);
    expect(recent.body.toString()).toBe('hello sigv2');
    const noDate = headerSigned(creds(), { method: 'GET', path });
    delete noDate.Date;
    const r = await send(path, 'GET', noDate);
    expect(r.status).toBe(403);
    expect(errorCode(r.body)).toBe('AccessDenied');
    const bad = await send(path, 'GET', { Date: new Date().toUTCString(), Authorization: 'AWS no-colon-here' });
    expect(bad.status).toBe(400);
    expect(errorCode(bad.body)).toBe('InvalidArgument');
    const unknown = await send(path, 'GET', headerSigned({ accessKey: 'nobody-here', secretKey: 'x' }, { method: 'GET', path }));
    expect(unknown.status).toBe(403);
    expect(errorCode(unknown.body)).toBe('InvalidAccessKeyId');
  });

  it('sub-resources are signed (uploadId, partNumber, uploads, delete), other query parameters are not', async () => {
    const key = 'v2/multi.bin';
    const path = `/${bucket}/${key}`;
    const init = await send(`${path}?uploads`, 'POST', headerSigned(creds(), { method: 'POST', path, query: 'uploads' }));
    expect(init.status, init.body.toString()).toBe(200);
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(init.body.toString())![1]!;
    const part = Buffer.alloc(1000, 7);
    const q = `partNumber=1&uploadId=${encodeURIComponent(uploadId)}`;
    const partHeaders = headerSigned(creds(), { method: 'PUT', path, query: q, headers: { 'Content-MD5': md5b64(part) } });
    // the same signature on another part number is refused
    const moved = await send(`${path}?partNumber=2&uploadId=${encodeURIComponent(uploadId)}`, 'PUT', partHeaders, part);
    expect(errorCode(moved.body)).toBe('SignatureDoesNotMatch');
    const up = await send(`${path}?${q}`, 'PUT', partHeaders, part);
    expect(up.status, up.body.toString()).toBe(200);
    const xml = Buffer.from(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${up.headers.etag}</ETag></Part></CompleteMultipartUpload>`);
    const cq = `uploadId=${encodeURIComponent(uploadId)}`;
    const done = await send(`${path}?${cq}`, 'POST', headerSigned(creds(), { method: 'POST', path, query: cq, headers: { 'Content-MD5': md5b64(xml) } }), xml);
    expect(done.status, done.body.toString()).toBe(200);

    // ListObjects: prefix is not a sub-resource (unsigned, as on S3)
    const lpath = `/${bucket}`;
    const lh = headerSigned(creds(), { method: 'GET', path: lpath });
    const list = await send(`${lpath}?prefix=v2%2Fmulti`, 'GET', lh);
    expect(list.status).toBe(200);
    expect(list.body.toString()).toContain('<Key>v2/multi.bin</Key>');

    // DeleteObjects: ?delete is signed, the body is bound by its Content-MD5
    const del = Buffer.from('<Delete><Object><Key>v2/multi.bin</Key></Object></Delete>');
    const dh = headerSigned(creds(), { method: 'POST', path: lpath, query: 'delete', headers: { 'Content-MD5': md5b64(del), 'Content-Type': 'application/xml' } });
    const swapped = await send(`${lpath}?delete`, 'POST', dh, Buffer.from('<Delete><Object><Key>v2/tamper.txt</Key></Object></Delete>'));
    expect(swapped.status).toBe(400);
    expect(errorCode(swapped.body)).toBe('BadDigest');
    const deleted = await send(`${lpath}?delete`, 'POST', dh, del);
    expect(deleted.status, deleted.body.toString()).toBe(200);
    expect(deleted.body.toString()).toContain('<Key>v2/multi.bin</Key>');
    const gone = await send(path, 'GET', headerSigned(creds(), { method: 'GET', path }));
    expect(errorCode(gone.body)).toBe('NoSuchKey');
    // the tampered delete list did not remove the other object
    expect((await send(`/${bucket}/v2/tamper.txt`, 'GET', headerSigned(creds(), { method: 'GET', path: `/${bucket}/v2/tamper.txt` }))).status).toBe(200);
  });

  it('query auth: a presigned GET works; response-* overrides are signed; expired, tampered, other method or key refused', async () => {
    const path = `/${bucket}/dir/hello%20world%20%C3%BC.txt`;
    const ok = await send(presignedPath(creds(), { method: 'GET', path }, inSeconds(60)), 'GET');
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(ok.body.toString()).toBe('hello sigv2');

    const q = 'response-content-type=application%2Fx-test&response-content-disposition=attachment%3B%20filename%3D%22a.txt%22';
    const overridden = await send(presignedPath(creds(), { method: 'GET', path, query: q }, inSeconds(60)), 'GET');
    expect(overridden.status, overridden.body.toString()).toBe(200);
    expect(overridden.headers['content-type']).toBe('application/x-test');
    expect(overridden.headers['content-disposition']).toBe('attachment; filename="a.txt"');
    const swapped = presignedPath(creds(), { method: 'GET', path, query: q }, inSeconds(60)).replace('application%2Fx-test', 'text%2Fhtml');
    expect(errorCode((await send(swapped, 'GET')).body)).toBe('SignatureDoesNotMatch');

    const expired = await send(presignedPath(creds(), { method: 'GET', path }, inSeconds(-5)), 'GET');
    expect(expired.status).toBe(403);
    expect(errorCode(expired.body)).toBe('AccessDenied');
    expect(message(expired)).toBe('Request has expired');

    const url = presignedPath(creds(), { method: 'GET', path }, inSeconds(60));
    const tampered = url.replace(/Signature=([^&]+)/, (_m, s: string) => `Signature=${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`);
    const t = await send(tampered, 'GET');
    expect(t.status).toBe(403);
    expect(errorCode(t.body)).toBe('SignatureDoesNotMatch');
    const later = url.replace(/Expires=(\d+)/, (_m, e: string) => `Expires=${Number(e) + 3600}`);
    expect(errorCode((await send(later, 'GET')).body)).toBe('SignatureDoesNotMatch');

    const asPut = await send(url, 'PUT', { 'content-length': '5' }, Buffer.from('evil!'));
    expect(asPut.status).toBe(403);
    expect(errorCode(asPut.body)).toBe('SignatureDoesNotMatch');
    const otherKey = await send(url.replace('hello%20world', 'hello%20worle'), 'GET');
    expect(otherKey.status).toBe(403);
    expect(errorCode(otherKey.body)).toBe('SignatureDoesNotMatch');
    expect((await send(path, 'GET', headerSigned(creds(), { method: 'GET', path }))).body.toString()).toBe('hello sigv2');

    const missing = await send(url.replace(/&Expires=\d+/, ''), 'GET');
    expect(missing.status).toBe(403);
    expect(errorCode(missing.body)).toBe('AccessDenied');
    const both = await send(url, 'GET', headerSigned(creds(), { method: 'GET', path }));
    expect(both.status).toBe(400);
    expect(errorCode(both.body)).toBe('InvalidArgument');
  });

  it('query auth: a presigned PUT stores the body; it carries its signed Content-Type; the URL is no GET', async () => {
    const path = `/${bucket}/v2/presigned-put.txt`;
    const body = Buffer.from('put through a SigV2 URL');
    const url = presignedPath(creds(), { method: 'PUT', path, headers: { 'Content-Type': 'text/csv' } }, inSeconds(60));
    const noType = await send(url, 'PUT', { 'content-length': String(body.length) }, body);
    expect(errorCode(noType.body)).toBe('SignatureDoesNotMatch');
    const r = await send(url, 'PUT', { 'content-type': 'text/csv', 'content-length': String(body.length) }, body);
    expect(r.status, r.body.toString()).toBe(200);
    const got = await gw.client().send(new GetObjectCommand({ Bucket: bucket, Key: 'v2/presigned-put.txt' }));
    expect(await got.Body!.transformToString()).toBe(body.toString());
    expect(got.ContentType).toBe('text/csv');
    expect(errorCode((await send(url, 'GET')).body)).toBe('SignatureDoesNotMatch');
  });

  it('virtual-hosted style: the canonicalized resource names the bucket', async () => {
    const port = new URL(gw.url).port;
    const path = '/dir/hello%20world%20%C3%BC.txt';
    const o = { method: 'GET', path, resource: `/${bucket}${path}` };
    const r = await send(path, 'GET', { ...headerSigned(creds(), o), Host: `${bucket}.localhost:${port}` });
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.body.toString()).toBe('hello sigv2');
    // signed without the bucket (as if path-style): refused
    const wrong = await send(path, 'GET', { ...headerSigned(creds(), { method: 'GET', path }), Host: `${bucket}.localhost:${port}` });
    expect(errorCode(wrong.body)).toBe('SignatureDoesNotMatch');
  });

  it('authorization after SigV2 is the same as after SigV4: a user without the bucket is AccessDenied either way', async () => {
    const other = { accessKey: 'sigv2-other', secretKey: 'sigv2-other-secret' };
    const path = `/${bucket}/dir/hello%20world%20%C3%BC.txt`;
    const v2 = await send(path, 'GET', headerSigned(other, { method: 'GET', path }));
    const v4 = await signedRequest(gw.url, other, { method: 'GET', path });
    expect([v2.status, errorCode(v2.body)]).toEqual([403, 'AccessDenied']);
    expect([v4.status, errorCode(v4.body)]).toEqual([403, 'AccessDenied']);
    const q = await send(presignedPath(other, { method: 'GET', path }, inSeconds(60)), 'GET');
    expect([q.status, errorCode(q.body)]).toEqual([403, 'AccessDenied']);
  });

  it('LAKECRYPT_SIGV2=false refuses both forms as S3 does; SigV4 still works', async () => {
    const c = { accessKey: off.accessKey, secretKey: off.secretKey };
    expect((await signedRequest(off.url, c, { method: 'PUT', path: '/sigv2-off' })).status).toBe(200);
    const path = '/sigv2-off/k';
    expect((await signedRequest(off.url, c, { method: 'PUT', path, body: Buffer.from('v4') })).status).toBe(200);
    for (const r of [
      await rawRequest(off.url, { method: 'GET', path, headers: headerSigned(c, { method: 'GET', path }) }),
      await rawRequest(off.url, { method: 'GET', path: presignedPath(c, { method: 'GET', path }, inSeconds(60)) }),
    ]) {
      expect(r.status).toBe(400);
      expect(errorCode(r.body)).toBe('InvalidRequest');
      expect(message(r)).toMatch(/authorization mechanism you have provided is not supported/);
    }
  });

  it('SigV4 presigned: X-Amz-Expires=0 is AuthorizationQueryParametersError (S3\'s code; MinIO says AccessDenied), 60 and 604800 are valid', async () => {
    const signer = awsSigner(creds());
    const u = new URL(`${gw.url}/${bucket}/dir/hello%20world%20%C3%BC.txt`);
    const presign = async (expiresIn: number) => {
      const p = await signer.presign({ method: 'GET', protocol: 'http:', hostname: u.hostname, port: Number(u.port), path: u.pathname, headers: { host: u.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }, { expiresIn });
      return `${u.pathname}?${new URLSearchParams(p.query as Record<string, string>).toString()}`;
    };
    const zero = await presign(0);
    expect(zero).toContain('X-Amz-Expires=0');
    const r = await send(zero, 'GET');
    expect(r.status).toBe(400);
    expect(errorCode(r.body)).toBe('AuthorizationQueryParametersError');
    for (const e of [60, 604800]) {
      const ok = await send(await presign(e), 'GET');
      expect(ok.status, ok.body.toString()).toBe(200);
    }
  });
});

describe('verifySigV2 (pure)', () => {
  const creds = { accessKey: 'AKV2EXAMPLE', secretKey: 'v2-secret/with+chars' };
  const lookup = (k: string) => (k === creds.accessKey ? creds.secretKey : undefined);
  const code = (f: () => unknown): string => {
    try {
      f();
      return 'OK';
    } catch (e) {
      if (e instanceof S3Error) return e.code;
      throw e;
    }
  };
  const lower = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

  it('repeated x-amz-* fields are joined with a bare comma, values trimmed, names sorted', () => {
    const o = { method: 'PUT', path: '/b/k', headers: { 'x-amz-meta-z': 'last', 'x-amz-meta-a': 'first' } };
    const h = lower(headerSigned(creds, { ...o, headers: { ...o.headers, 'x-amz-meta-m': 'one,two' } }));
    const distinct = { ...Object.fromEntries(Object.entries(h).map(([k, v]) => [k, [v]])), 'x-amz-meta-m': [' one ', 'two'] };
    expect(code(() => verifySigV2({ method: 'PUT', path: '/b/k', query: '', headers: distinct, resourcePath: '/b/k' }, lookup))).toBe('OK');
    const joined = { ...h, 'x-amz-meta-m': 'one, two' };
    expect(code(() => verifySigV2({ method: 'PUT', path: '/b/k', query: '', headers: joined, resourcePath: '/b/k' }, lookup))).toBe('SignatureDoesNotMatch');
  });

  it('a SigV4 streaming payload under SigV2 is refused (no seed signature); a declared SHA-256 is verified later', () => {
    const sha = createHash('sha256').update('x').digest('hex');
    const mk = (v: string) => lower(headerSigned(creds, { method: 'PUT', path: '/b/k', headers: { 'x-amz-content-sha256': v } }));
    const req = (h: Record<string, string>) => ({ method: 'PUT', path: '/b/k', query: '', headers: h, resourcePath: '/b/k' });
    expect(code(() => verifySigV2(req(mk('STREAMING-AWS4-HMAC-SHA256-PAYLOAD')), lookup))).toBe('InvalidRequest');
    const r = verifySigV2(req(mk(sha)), lookup);
    expect([r.payloadMode, r.payloadHash]).toEqual(['signed', sha]);
    expect(verifySigV2(req(mk('UNSIGNED-PAYLOAD')), lookup).payloadMode).toBe('unsigned');
    expect(verifySigV2(req(lower(headerSigned(creds, { method: 'PUT', path: '/b/k' }))), lookup).payloadMode).toBe('unsigned');
  });

  it('Expires that is not epoch seconds is AccessDenied; a far-future Expires is accepted (SigV2 has no 7-day bound)', () => {
    const path = presignedPath(creds, { method: 'GET', path: '/b/k' }, inSeconds(10 * 365 * 86400));
    const q = path.slice(path.indexOf('?') + 1);
    expect(code(() => verifySigV2({ method: 'GET', path: '/b/k', query: q, headers: {}, resourcePath: '/b/k' }, lookup))).toBe('OK');
    const bad = q.replace(/Expires=\d+/, 'Expires=tomorrow');
    expect(code(() => verifySigV2({ method: 'GET', path: '/b/k', query: bad, headers: {}, resourcePath: '/b/k' }, lookup))).toBe('AccessDenied');
  });
});

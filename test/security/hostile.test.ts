/**
 * Hostile input against a live gateway (fs backend): fast-check fuzz of Authorization headers, aws-chunked bodies
 * under a valid seed signature, Range headers, XML bodies (DOCTYPE/ENTITY, external entities), object keys with
 * invalid UTF-8 percent-encodings; oversized headers and XML bodies; DeleteObjects with 1001 keys; slowloris and
 * half-open connections. Each input gets an S3 error XML (or a closed socket for transport-level abuse), the
 * process stays up (a follow-up request succeeds), and memory stays bounded.
 * Covers docs/THREAT-MODEL.md "Hostile input".
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { encodeAwsChunked } from '../s3/helpers.ts';
import { errorCode, rawRequest, signHeaders, signedRequest, type RawResponse } from '../../tools/sigv4.ts';
import { pollUntil } from '../../tools/wait.ts';

const BUCKET = 'hostile';
const CONTENT = Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(2000));
let tried = 0;

describe('hostile input', () => {
  let gw: TestGateway;
  let host: string;
  const creds = () => ({ accessKey: gw.accessKey, secretKey: gw.secretKey });
  let rss0 = 0;

  beforeAll(async () => {
    gw = await startTestGateway('fs', { headersTimeoutMs: 1000, idleTimeoutMs: 3000, maxHeaderBytes: 16384 } as never);
    host = new URL(gw.url).host;
    await gw.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
    await gw.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: 'known', Body: CONTENT }));
    rss0 = process.memoryUsage().rss;
  });
  afterAll(async () => {
    console.log(`[hostile] ${tried} hostile inputs tried; RSS delta ${((process.memoryUsage().rss - rss0) / 1048576).toFixed(1)} MiB`);
    await gw?.close();
  });

  /** The gateway is still up and serving. */
  async function alive() {
    const r = await signedRequest(gw.url, creds(), { method: 'GET', path: `/${BUCKET}/known` });
    expect(r.status).toBe(200);
    expect(r.body.equals(CONTENT)).toBe(true);
  }
  /** A clean S3 error: status 4xx/5xx (not 500 InternalError), XML with a Code. */
  function s3Error(r: RawResponse, allowed?: string[]) {
    tried++;
    expect(r.error, `request error ${r.error}`).toBeUndefined();
    expect(r.status, r.body.toString()).toBeGreaterThanOrEqual(400);
    const code = errorCode(r.body);
    // 5xx only for "not implemented" (e.g. SigV4A): never InternalError / IntegrityError.
    if (r.status >= 500) expect(code, r.body.toString()).toBe('NotImplemented');
    expect(code, r.body.toString()).not.toBe('');
    if (allowed) expect(allowed, r.body.toString()).toContain(code);
    return code;
  }

  it('random and malformed Authorization headers -> AccessDenied/AuthorizationHeaderMalformed/..., never 5xx', async () => {
    const token = fc.stringMatching(/^[A-Za-z0-9=\/+,;: _-]{0,80}$/);
    const auth = fc.oneof(
      fc.string({ maxLength: 200 }).filter((s) => !/[\r\n\0]/.test(s) && /^[\x20-\x7e]*$/.test(s)),
      fc.tuple(token, token, token).map(([a, b, c]) => `AWS4-HMAC-SHA256 Credential=${a}, SignedHeaders=${b}, Signature=${c}`),
      fc.tuple(token, fc.stringMatching(/^[0-9a-f]{0,70}$/)).map(
        ([cred, sig]) => `AWS4-HMAC-SHA256 Credential=${gw.accessKey}/${cred}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=${sig}`,
      ),
      fc.constantFrom('AWS ' + 'A'.repeat(20) + ':abc', 'Bearer x', 'AWS4-ECDSA-P256-SHA256 Credential=x', '', 'AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA256 ,,,,'),
    );
    await fc.assert(
      fc.asyncProperty(auth, fc.constantFrom('GET', 'PUT', 'HEAD', 'DELETE', 'POST'), async (a, method) => {
        const r = await rawRequest(gw.url, {
          method,
          path: `/${BUCKET}/known`,
          headers: { authorization: a, 'x-amz-date': '20260101T000000Z', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
        });
        if (method === 'HEAD') {
          tried++;
          expect(r.status).toBeGreaterThanOrEqual(400);
          expect([400, 403, 501]).toContain(r.status);
        } else s3Error(r);
      }),
      { numRuns: 150 },
    );
    await alive();
  });

  it('random aws-chunked bodies under a valid seed signature -> clean 4xx; the object is never created', async () => {
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
      // A valid encoding with random mutations.
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([payload, at, x]) => ({ payload, at, x })),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const key = `chunked-${tried}`;
        const payload = Buffer.isBuffer(b) ? Buffer.from('x') : Buffer.from(b.payload);
        const { headers, auth } = signHeaders(creds(), {
          method: 'PUT',
          host,
          path: `/${BUCKET}/${key}`,
          headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(payload.length) },
          payload: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        });
        let wire: Buffer;
        if (Buffer.isBuffer(b)) wire = b;
        else {
          const good = encodeAwsChunked([payload], { mode: 'streaming-signed', auth });
          wire = Buffer.from(good);
          wire[b.at % wire.length] ^= b.x;
        }
        const r = await rawRequest(gw.url, { method: 'PUT', path: `/${BUCKET}/${key}`, headers: { ...headers, 'content-length': String(wire.length) }, body: wire });
        if (r.status === 200) {
          // A mutation that left the encoding valid (e.g. in the hex case of the size): the content must be exact.
          const g = await signedRequest(gw.url, creds(), { method: 'GET', path: `/${BUCKET}/${key}` });
          expect(g.body.equals(payload)).toBe(true);
          tried++;
          return;
        }
        if (r.status === 0) {
          tried++; // the server closed the connection on an unparseable stream: acceptable
        } else s3Error(r);
        const g = await signedRequest(gw.url, creds(), { method: 'HEAD', path: `/${BUCKET}/${key}` });
        expect(g.status, 'a rejected upload must not create the object').toBe(404);
      }),
      { numRuns: 120 },
    );
    await alive();
  });

  it('random Range headers -> 206 with the exact bytes, 200 (ignored), or 416; never 5xx', async () => {
    const n = CONTENT.length;
    const num = fc.oneof(fc.nat({ max: n + 10 }), fc.constantFrom(0, n - 1, n, n + 1, 2 ** 53, -1), fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String));
    const range = fc.oneof(
      fc.tuple(num, num).map(([a, b]) => `bytes=${a}-${b}`),
      num.map((a) => `bytes=${a}-`),
      num.map((a) => `bytes=-${a}`),
      fc.string({ maxLength: 40 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
      fc.tuple(num, num, num).map(([a, b, c]) => `bytes=${a}-${b},${c}-`),
      fc.constantFrom('bytes=', 'bytes=-', 'bytes=--1', 'items=0-1', 'bytes=1-0', 'bytes = 0-1', 'bytes=0x10-0x20'),
    );
    await fc.assert(
      fc.asyncProperty(range, async (rg) => {
        tried++;
        const r = await signedRequest(gw.url, creds(), { method: 'GET', path: `/${BUCKET}/known`, headers: { range: rg } });
        expect([200, 206, 416], `${rg}: ${r.status} ${r.body.toString().slice(0, 200)}`).toContain(r.status);
        expect(r.aborted).toBe(false);
        if (r.status === 200) expect(r.body.equals(CONTENT)).toBe(true);
        if (r.status === 206) {
          const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(r.headers['content-range']))!;
          expect(m, String(r.headers['content-range'])).not.toBeNull();
          expect(r.body.equals(CONTENT.subarray(Number(m[1]), Number(m[2]) + 1))).toBe(true);
        }
        if (r.status === 416) expect(errorCode(r.body)).toBe('InvalidRange');
      }),
      { numRuns: 150 },
    );
    await alive();
  });

  it('random XML for CompleteMultipartUpload and DeleteObjects, DOCTYPE/ENTITY expansion and external entities -> MalformedXML & co', async () => {
    const up = await gw.client().send(new (await import('@aws-sdk/client-s3')).CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'mpu-target' }));
    const hostileXml = [
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><Delete><Object><Key>&lol3;</Key></Object></Delete>',
      '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&xxe;</Key></Object></Delete>',
      '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY % xxe SYSTEM "http://127.0.0.1:1/x.dtd"> %xxe;]><CompleteMultipartUpload/>',
      '<Delete><Object><Key>&unknown;</Key></Object></Delete>',
      '<Delete><Object><Key>a</Key></Object>',
      '<Delete>' + '<Object>'.repeat(5000) + '</Delete>',
      '<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>x</ETag></Part><Part><PartNumber>1</PartNumber><ETag>y</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>99999999999999999999</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<?xml version="1.0" encoding="UTF-7"?><Delete/>',
      '\u0000\u0001<Delete/>',
      '',
    ];
    const xmlArb = fc.oneof(
      fc.constantFrom(...hostileXml),
      fc.string({ maxLength: 300 }),
      fc.array(fc.constantFrom('<Delete>', '</Delete>', '<Object>', '</Object>', '<Key>', '</Key>', 'k', '<Quiet>true</Quiet>', '<CompleteMultipartUpload>', '</CompleteMultipartUpload>', '<Part>', '</Part>', '<PartNumber>1</PartNumber>', '<ETag>"abc"</ETag>', '&amp;', '&#0;', '<![CDATA[x]]>', '<!-- c -->', '<?pi x?>'), { maxLength: 30 }).map((a) => a.join('')),
    );
    await fc.assert(
      fc.asyncProperty(xmlArb, fc.boolean(), async (xml, isDelete) => {
        const body = Buffer.from(xml, 'utf8');
        const md5 = createHash('md5').update(body).digest('base64');
        const r = isDelete
          ? await signedRequest(gw.url, creds(), { method: 'POST', path: `/${BUCKET}`, query: 'delete=', body, headers: { 'content-md5': md5 } })
          : await signedRequest(gw.url, creds(), { method: 'POST', path: `/${BUCKET}/mpu-target`, query: `uploadId=${encodeURIComponent(up.UploadId!)}`, body });
        if (r.status === 200) {
          tried++;
          // Only a well-formed DeleteObjects (e.g. with nonexistent keys) may succeed; never with DTD content.
          expect(isDelete).toBe(true);
          expect(/<!DOCTYPE|<!ENTITY/i.test(xml)).toBe(false);
          return;
        }
        const code = s3Error(r);
        if (/<!DOCTYPE|<!ENTITY/i.test(xml)) expect(code).toBe('MalformedXML');
        expect(r.body.includes(Buffer.from('root:'))).toBe(false);
      }),
      { numRuns: 150 },
    );
    // The known object survived every DeleteObjects attempt (none named it).
    await alive();
  });

  it('DeleteObjects with 1001 keys -> MalformedXML; oversized XML body -> MaxMessageLengthExceeded/MalformedXML', async () => {
    const many = '<Delete>' + Array.from({ length: 1001 }, (_, i) => `<Object><Key>k${i}</Key></Object>`).join('') + '</Delete>';
    const b1 = Buffer.from(many);
    const r1 = await signedRequest(gw.url, creds(), { method: 'POST', path: `/${BUCKET}`, query: 'delete=', body: b1, headers: { 'content-md5': createHash('md5').update(b1).digest('base64') } });
    expect(s3Error(r1)).toBe('MalformedXML');
    const huge = Buffer.from('<Delete>' + '<Object><Key>' + 'k'.repeat(4 * 1024 * 1024) + '</Key></Object></Delete>');
    const r2 = await signedRequest(gw.url, creds(), { method: 'POST', path: `/${BUCKET}`, query: 'delete=', body: huge, headers: { 'content-md5': createHash('md5').update(huge).digest('base64') } });
    if (r2.status === 0) tried++; // closed while we were still sending: acceptable for an oversized body
    else expect(['MaxMessageLengthExceeded', 'MalformedXML']).toContain(s3Error(r2));
    await alive();
  });

  it('random bytes as object keys, including invalid UTF-8 percent-encodings (%C3%28, %FF) -> stored and read back, or a clean 4xx', async () => {
    const seg = fc.oneof(
      fc.constantFrom('%C3%28', '%FF', '%FE%FF', '%C0%AF', '%ED%A0%80', '%00', '%2F', '%25', '%', '%G1', '..', '.', '%2E%2E', '~', '%E2%82', '%F0%9F%98%80'),
      fc.uint8Array({ minLength: 1, maxLength: 12 }).map((b) => Array.from(b, (x) => '%' + x.toString(16).padStart(2, '0').toUpperCase()).join('')),
      fc.stringMatching(/^[A-Za-z0-9._~-]{1,10}$/),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(seg, { minLength: 1, maxLength: 6 }), async (segs) => {
        const rawKey = segs.join('');
        const data = Buffer.from(`key ${rawKey}`);
        const put = await signedRequest(gw.url, creds(), { method: 'PUT', path: `/${BUCKET}/${rawKey}`, body: data });
        if (put.status === 200) {
          tried++;
          const get = await signedRequest(gw.url, creds(), { method: 'GET', path: `/${BUCKET}/${rawKey}` });
          expect(get.status, `GET ${rawKey}: ${get.body.toString()}`).toBe(200);
          expect(get.body.equals(data)).toBe(true);
          const del = await signedRequest(gw.url, creds(), { method: 'DELETE', path: `/${BUCKET}/${rawKey}` });
          expect(del.status).toBe(204);
        } else s3Error(put);
      }),
      { numRuns: 120 },
    );
    await alive();
  });

  it('an oversized request header (> maxHeaderBytes) -> 431, the process stays up', async () => {
    const r = await rawRequest(gw.url, { method: 'GET', path: `/${BUCKET}/known`, headers: { 'x-pad': 'a'.repeat(40_000) } });
    tried++;
    expect([431, 0]).toContain(r.status);
    const many: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) many[`x-h${i}`] = 'v'.repeat(10);
    const r2 = await rawRequest(gw.url, { method: 'GET', path: `/${BUCKET}/known`, headers: many });
    tried++;
    expect([431, 0, 400]).toContain(r2.status);
    await alive();
  });

  it('slowloris: half the headers then silence is closed by headersTimeout; 200 half-open connections do not block a normal request', async () => {
    const addr = new URL(gw.url);
    const stall = () =>
      new Promise<{ closedAfterMs: number; data: string }>((resolve) => {
        const s = net.connect(Number(addr.port), addr.hostname);
        const t0 = Date.now();
        let data = '';
        s.on('connect', () => s.write(`GET /${BUCKET}/known HTTP/1.1\r\nHost: ${addr.host}\r\nX-Slow: `));
        s.on('data', (d) => (data += d.toString()));
        s.on('close', () => resolve({ closedAfterMs: Date.now() - t0, data }));
        s.on('error', () => {});
      });
    const one = await stall();
    tried++;
    expect(one.closedAfterMs).toBeLessThan(10_000); // headersTimeout 1 s (+ the server's sub-second check interval)

    const sockets: net.Socket[] = [];
    for (let i = 0; i < 200; i++) {
      const s = net.connect(Number(addr.port), addr.hostname);
      s.on('error', () => {});
      // read what comes back (a 408 when headersTimeout cuts it), so that the end of the stream is seen
      s.resume();
      s.on('connect', () => s.write(i % 2 ? `PUT /${BUCKET}/x HTTP/1.1\r\nHost: a\r\n` : 'GE'));
      sockets.push(s);
    }
    tried += 200;
    await pollUntil(() => sockets.every((s) => !s.connecting), { timeoutMs: 10_000 });
    const t0 = Date.now();
    await alive();
    expect(Date.now() - t0).toBeLessThan(5_000);
    // And the server reaps them.
    await pollUntil(() => sockets.every((s) => s.destroyed || s.readableEnded), { timeoutMs: 20_000, intervalMs: 200 });
    for (const s of sockets) s.destroy();
    await alive();
  });

  it('memory stays bounded across everything above', async () => {
    globalThis.gc?.();
    const delta = process.memoryUsage().rss - rss0;
    expect(delta).toBeLessThan(400 * 1024 * 1024);
    await alive();
  });
});

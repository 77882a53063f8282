/**
 * The S3 port against the outside security review (issue #16), on a live gateway (fs backend): object responses
 * carry nosniff and a sandbox CSP (configurable); unsigned x-amz-* headers and a credential scope for another
 * region are refused; the reserved meta bucket answers as a bucket that does not exist; a CRLF in a response
 * override is a 400; slow request heads are cut at headersTimeoutMs and connections are capped.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import * as Minio from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { errorCode, rawRequest, signHeaders, signedRequest, type RawResponse } from '../../tools/sigv4.ts';
import { sha256Hex } from '../../src/s3/sigv4.ts';

const BUCKET = 'port-review';
const HTML = Buffer.from('<html><script>alert(document.cookie)</script></html>');

const creds = (gw: TestGateway) => ({ accessKey: gw.accessKey, secretKey: gw.secretKey });
const unescape = (s: string) => s.replace(/&(apos|quot|lt|gt|amp);/g, (_, e: string) => ({ apos: "'", quot: '"', lt: '<', gt: '>', amp: '&' })[e]!);
const tag = (body: Buffer, name: string) => {
  const v = new RegExp(`<${name}>([^<]*)</${name}>`).exec(body.toString('utf8'))?.[1];
  return v === undefined ? undefined : unescape(v);
};

describe('S3 port (issue #16)', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway('fs');
    await gw.client().send(new CreateBucketCommand({ Bucket: BUCKET }));
    await gw.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: 'page.html', Body: HTML, ContentType: 'text/html' }));
  });
  afterAll(async () => {
    await gw?.close();
  });

  const get = (path: string, o: { method?: string; query?: string; headers?: Record<string, string> } = {}) =>
    signedRequest(gw.url, creds(gw), { method: o.method ?? 'GET', path, query: o.query, headers: o.headers });

  /** nosniff always; the CSP given (null = no CSP header). */
  function hardened(r: RawResponse, csp: string | null = 'sandbox') {
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['content-security-policy'] ?? null).toBe(csp);
  }

  it('GET, ranged GET, HEAD, presigned GET and error answers carry nosniff and CSP sandbox', async () => {
    const whole = await get(`/${BUCKET}/page.html`);
    expect(whole.status).toBe(200);
    expect(whole.headers['content-type']).toBe('text/html');
    hardened(whole);
    const ranged = await get(`/${BUCKET}/page.html`, { headers: { range: 'bytes=0-5' } });
    expect(ranged.status).toBe(206);
    hardened(ranged);
    const head = await get(`/${BUCKET}/page.html`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    hardened(head);
    const missing = await get(`/${BUCKET}/absent.html`);
    expect(missing.status).toBe(404);
    hardened(missing);

    const u = new URL(gw.url);
    const mc = new Minio.Client({ endPoint: u.hostname, port: Number(u.port), useSSL: false, accessKey: gw.accessKey, secretKey: gw.secretKey, region: 'us-east-1', pathStyle: true });
    const url = new URL(await mc.presignedGetObject(BUCKET, 'page.html', 600));
    const pre = await rawRequest(gw.url, { method: 'GET', path: url.pathname + url.search });
    expect(pre.status, pre.body.toString()).toBe(200);
    expect(pre.body.equals(HTML)).toBe(true);
    hardened(pre);
    // a response-content-type override cannot switch the sandbox off
    const over = await rawRequest(gw.url, { method: 'GET', path: new URL(await mc.presignedGetObject(BUCKET, 'page.html', 600, { 'response-content-type': 'text/html' })).href.slice(gw.url.length) });
    expect(over.status).toBe(200);
    hardened(over);
  });

  it('the CSP is a setting: another policy, or none ("" / "off"); nosniff stays', async () => {
    for (const [objectCsp, want] of [["default-src 'none'; style-src 'self'", "default-src 'none'; style-src 'self'"], ['', null], ['off', null]] as const) {
      const g = await startTestGateway('fs', { objectCsp } as never);
      try {
        await g.client().send(new CreateBucketCommand({ Bucket: 'csp' }));
        await g.client().send(new PutObjectCommand({ Bucket: 'csp', Key: 'site/index.html', Body: HTML, ContentType: 'text/html' }));
        const r = await signedRequest(g.url, creds(g), { method: 'GET', path: '/csp/site/index.html' });
        expect(r.status).toBe(200);
        hardened(r, want);
      } finally {
        await g.close();
      }
    }
  });

  it('a header-auth request with an unsigned x-amz-* header is AccessDenied (HeadersNotSigned); a captured PUT cannot be replayed with other metadata', async () => {
    const host = new URL(gw.url).host;
    const body = Buffer.from('signed body');
    const { headers } = signHeaders(creds(gw), { method: 'PUT', host, path: `/${BUCKET}/replayed`, headers: { 'content-length': String(body.length), 'x-amz-meta-owner': 'alice' }, payload: sha256Hex(body) });
    const ok = await rawRequest(gw.url, { method: 'PUT', path: `/${BUCKET}/replayed`, headers, body });
    expect(ok.status, ok.body.toString()).toBe(200);
    const replay = await rawRequest(gw.url, { method: 'PUT', path: `/${BUCKET}/replayed`, headers: { ...headers, 'x-amz-meta-owner2': 'mallory', 'x-amz-tagging': 'a=b' }, body });
    expect(replay.status, replay.body.toString()).toBe(403);
    expect(errorCode(replay.body)).toBe('AccessDenied');
    expect(replay.body.toString()).toContain('There were headers present in the request which were not signed');
    expect(tag(replay.body, 'HeadersNotSigned')).toBe('x-amz-meta-owner2, x-amz-tagging');
    const after = await get(`/${BUCKET}/replayed`, { method: 'HEAD' });
    expect(after.headers['x-amz-meta-owner']).toBe('alice');
    expect(after.headers['x-amz-meta-owner2']).toBeUndefined();
  });

  it('a request signed for another region: 400 AuthorizationHeaderMalformed / AuthorizationQueryParametersError naming us-east-1; GetBucketLocation takes any', async () => {
    const host = new URL(gw.url).host;
    const { headers } = signHeaders(creds(gw), { method: 'GET', host, path: `/${BUCKET}/page.html`, payload: sha256Hex(''), region: 'eu-west-1' });
    const r = await rawRequest(gw.url, { method: 'GET', path: `/${BUCKET}/page.html`, headers });
    expect(r.status, r.body.toString()).toBe(400);
    expect(errorCode(r.body)).toBe('AuthorizationHeaderMalformed');
    expect(tag(r.body, 'Message')).toBe("The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'");
    expect(tag(r.body, 'Region')).toBe('us-east-1');

    const u = new URL(gw.url);
    const mc = new Minio.Client({ endPoint: u.hostname, port: Number(u.port), useSSL: false, accessKey: gw.accessKey, secretKey: gw.secretKey, region: 'eu-west-1', pathStyle: true });
    const url = new URL(await mc.presignedGetObject(BUCKET, 'page.html', 600));
    const p = await rawRequest(gw.url, { method: 'GET', path: url.pathname + url.search });
    expect(p.status, p.body.toString()).toBe(400);
    expect(errorCode(p.body)).toBe('AuthorizationQueryParametersError');
    expect(tag(p.body, 'Region')).toBe('us-east-1');

    const { headers: lheaders } = signHeaders(creds(gw), { method: 'GET', host, path: `/${BUCKET}`, query: 'location', payload: sha256Hex(''), region: 'eu-west-1' });
    const loc = await rawRequest(gw.url, { method: 'GET', path: `/${BUCKET}?location`, headers: lheaders });
    expect(loc.status, loc.body.toString()).toBe(200);
  });

  it('the reserved meta bucket answers every S3 request as a bucket that does not exist (no existence oracle)', async () => {
    const meta = gw.running.gateway.metaBucket;
    const stored = (await gw.backend.listObjects(meta, { maxKeys: 1 })).objects[0]!.key;
    const absent = `nonexistent-${randomBytes(4).toString('hex')}`;
    const same = async (label: string, f: (bucket: string, key: string) => Promise<RawResponse>) => {
      const refMissing = await f(absent, 'some/key');
      for (const key of [stored, 'no/such/key']) {
        const r = await f(meta, key);
        expect([r.status, errorCode(r.body)], `${label} ${key}: ${r.body.toString()}`).toEqual([refMissing.status, errorCode(refMissing.body)]);
        expect(r.body.toString()).not.toContain('reserved');
      }
      return refMissing;
    };
    const enc = (k: string) => k.split('/').map(encodeURIComponent).join('/');
    const ref = await same('GET object', (b, k) => get(`/${b}/${enc(k)}`));
    expect([ref.status, errorCode(ref.body)]).toEqual([404, 'NoSuchBucket']);
    await same('HEAD object', (b, k) => get(`/${b}/${enc(k)}`, { method: 'HEAD' }));
    await same('HEAD bucket', (b) => get(`/${b}`, { method: 'HEAD' }));
    await same('ListObjects', (b) => get(`/${b}`));
    await same('ListObjectsV2', (b) => get(`/${b}`, { query: 'list-type=2&prefix=' }));
    await same('GetBucketLocation', (b) => get(`/${b}`, { query: 'location' }));
    await same('ListMultipartUploads', (b) => get(`/${b}`, { query: 'uploads' }));
    await same('PUT object', (b, k) => signedRequest(gw.url, creds(gw), { method: 'PUT', path: `/${b}/${enc(k)}`, body: Buffer.from('x') }));
    await same('DELETE object', (b, k) => signedRequest(gw.url, creds(gw), { method: 'DELETE', path: `/${b}/${enc(k)}` }));
    await same('CopyObject source', (b, k) => signedRequest(gw.url, creds(gw), { method: 'PUT', path: `/${BUCKET}/copied`, headers: { 'x-amz-copy-source': `/${b}/${enc(k)}` } }));
    const init = await signedRequest(gw.url, creds(gw), { method: 'POST', path: `/${BUCKET}/mp`, query: 'uploads' });
    const uploadId = tag(init.body, 'UploadId')!;
    await same('UploadPartCopy source', (b, k) =>
      signedRequest(gw.url, creds(gw), { method: 'PUT', path: `/${BUCKET}/mp`, query: `partNumber=1&uploadId=${uploadId}`, headers: { 'x-amz-copy-source': `/${b}/${enc(k)}` } }),
    );
    // CreateBucket of that name: the name is taken (it is public configuration), as for a bucket another account holds
    const create = await signedRequest(gw.url, creds(gw), { method: 'PUT', path: `/${meta}` });
    expect([create.status, errorCode(create.body)]).toEqual([409, 'BucketAlreadyExists']);
  });

  it('a CR/LF (or other control character) in a response-* override is 400 InvalidArgument; a UTF-8 file name is served', async () => {
    for (const q of ['response-content-type=text/html%0D%0ASet-Cookie:%20a=b', 'response-content-disposition=inline%0Ax', 'response-cache-control=%00']) {
      const r = await get(`/${BUCKET}/page.html`, { query: q });
      expect(r.status, `${q}: ${r.body.toString()}`).toBe(400);
      expect(errorCode(r.body)).toBe('InvalidArgument');
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    const ok = await get(`/${BUCKET}/page.html`, { query: `response-content-disposition=${encodeURIComponent('attachment; filename="résumé.html"')}` });
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(Buffer.from(ok.headers['content-disposition']!, 'latin1').toString('utf8')).toBe('attachment; filename="résumé.html"');
    expect((await get(`/${BUCKET}/page.html`)).status).toBe(200);
  });
});

describe('S3 port connections (issue #16)', () => {
  const openStall = (url: string) =>
    new Promise<{ closedAfterMs: number; data: string }>((resolve) => {
      const addr = new URL(url);
      const s = net.connect(Number(addr.port), addr.hostname);
      let t0 = Date.now();
      let data = '';
      s.on('connect', () => {
        t0 = Date.now();
        s.write(`GET /x/y HTTP/1.1\r\nHost: ${addr.host}\r\nX-Slow: `);
      });
      s.on('data', (d) => (data += d.toString()));
      s.on('close', () => resolve({ closedAfterMs: Date.now() - t0, data }));
      s.on('error', () => {});
    });

  it('a partial request head is cut at headersTimeoutMs (not at Node\'s 30 s check interval)', async () => {
    const gw = await startTestGateway('fs', { headersTimeoutMs: 2000 });
    try {
      const [a, b] = await Promise.all([openStall(gw.url), openStall(gw.url)]);
      for (const c of [a, b]) {
        expect(c.closedAfterMs).toBeGreaterThanOrEqual(1900);
        expect(c.closedAfterMs).toBeLessThan(8000); // 2 s + a sub-second check interval, with room for a loaded machine
      }
    } finally {
      await gw.close();
    }
  });

  it('with maxConnections N, the N+1th connection is closed unanswered while the first N are served', async () => {
    const N = 4;
    const gw = await startTestGateway('fs', { maxConnections: N } as never);
    const addr = new URL(gw.url);
    const sockets: net.Socket[] = [];
    /** One signed HEAD of the bucket on a kept-alive socket: resolves with the status line, or '' when closed. */
    const ask = (s: net.Socket) =>
      new Promise<string>((resolve) => {
        let data = '';
        const { headers } = signHeaders(creds(gw), { method: 'GET', host: addr.host, path: '/', payload: sha256Hex('') });
        const onData = (d: Buffer) => {
          data += d.toString('latin1');
          const end = data.indexOf('\r\n\r\n');
          if (end < 0) return;
          const len = Number(/content-length: (\d+)/i.exec(data)?.[1] ?? 0);
          if (data.length - end - 4 < len) return;
          s.off('data', onData);
          resolve(data.slice(0, data.indexOf('\r\n')));
        };
        s.on('data', onData);
        s.once('close', () => resolve(''));
        s.write(`GET / HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
      });
    const open = () =>
      new Promise<net.Socket>((resolve) => {
        const s = net.connect(Number(addr.port), addr.hostname, () => resolve(s));
        s.on('error', () => {});
        sockets.push(s);
      });
    try {
      const first = await Promise.all(Array.from({ length: N }, open));
      for (const s of first) expect(await ask(s)).toBe('HTTP/1.1 200 OK');
      const extra = await open();
      expect(await ask(extra)).toBe('');
      // the first N are still served on their connections
      for (const s of first) expect(await ask(s)).toBe('HTTP/1.1 200 OK');
      // and a slot freed is a slot for the next client
      first[0]!.destroy();
      await new Promise((r) => setTimeout(r, 200));
      expect(await ask(await open())).toBe('HTTP/1.1 200 OK');
    } finally {
      for (const s of sockets) s.destroy();
      await gw.close();
    }
  });
});

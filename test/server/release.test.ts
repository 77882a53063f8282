/**
 * A read that fails integrity mid-object releases its backend response at once: with a pool of 2 backend
 * sockets, a dozen failed GETs in a row must leave the gateway able to serve the next request.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import type { Backend } from '../../src/backend/types.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';
import { signedRequest } from '../../tools/sigv4.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

describe('failed reads release their backend responses', () => {
  let gw: TestGateway;
  let direct: Backend;
  const bucket = uniqueBucket('release');
  beforeAll(async () => {
    const m = minioCoords();
    const coords = { kind: 's3' as const, endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region };
    gw = await startTestGateway('s3', { backend: createBackend({ ...coords, maxSockets: 2 }) });
    direct = createBackend(coords);
  });
  afterAll(async () => {
    await gw?.close();
    await direct?.close();
  });

  it('12 GETs failing at chunk 3 of 5, then a good GET and a good PUT still complete over 2 backend sockets', async () => {
    const creds = { accessKey: gw.accessKey, secretKey: gw.secretKey };
    expect((await signedRequest(gw.url, creds, { method: 'PUT', path: `/${bucket}` })).status).toBe(200);
    const data = randomBytes(5 * 65536);
    expect((await signedRequest(gw.url, creds, { method: 'PUT', path: `/${bucket}/bad`, body: data })).status).toBe(200);
    expect((await signedRequest(gw.url, creds, { method: 'PUT', path: `/${bucket}/good`, body: data })).status).toBe(200);
    // Flip one ciphertext byte in the third chunk, keeping the object's metadata (oid, sealed ETag).
    const { data: stored, info } = await direct.getBuffer(bucket, 'bad');
    stored[32 + 2 * (65536 + 16) + 100]! ^= 1;
    await direct.putObject(bucket, 'bad', stored, { size: stored.length, meta: info.meta });
    for (let i = 0; i < 12; i++) {
      const r = await signedRequest(gw.url, creds, { method: 'GET', path: `/${bucket}/bad`, timeoutMs: 10_000 });
      expect(r.error ?? '', `GET ${i}`).not.toBe('client timeout');
      expect(r.status === 200 ? r.aborted : r.status >= 500, `GET ${i} must fail`).toBe(true);
      // never more than the two verified chunks
      expect(r.body.length).toBeLessThanOrEqual(2 * 65536);
    }
    const good = await signedRequest(gw.url, creds, { method: 'GET', path: `/${bucket}/good`, timeoutMs: 10_000 });
    expect(good.status).toBe(200);
    expect(good.body.equals(data)).toBe(true);
    const put = await signedRequest(gw.url, creds, { method: 'PUT', path: `/${bucket}/after`, body: Buffer.from('x'), timeoutMs: 10_000 });
    expect(put.status).toBe(200);
  }, 120_000);

  it('12 copies into a dataset whose KEK is revoked (failing after the source was opened) leave the pool usable', async () => {
    const creds = { accessKey: gw.accessKey, secretKey: gw.secretKey };
    const dst = uniqueBucket('release-dst');
    expect((await signedRequest(gw.url, creds, { method: 'PUT', path: `/${dst}` })).status).toBe(200);
    expect((await signedRequest(gw.url, creds, { method: 'PUT', path: `/${dst}/seed`, body: Buffer.from('s') })).status).toBe(200);
    // Past the whole-body limit, so the copy opens the source and then fails at the destination's KEK.
    const big = randomBytes(9 * 1024 * 1024);
    expect((await signedRequest(gw.url, creds, { method: 'PUT', path: `/${bucket}/big`, body: big })).status).toBe(200);
    await gw.running.gateway.keys.revoke(dst);
    for (let i = 0; i < 12; i++) {
      const r = await signedRequest(gw.url, creds, {
        method: 'PUT',
        path: `/${dst}/copy-${i}`,
        headers: { 'x-amz-copy-source': `/${bucket}/big` },
        timeoutMs: 10_000,
      });
      expect(r.error ?? '', `copy ${i}`).not.toBe('client timeout');
      expect(r.status, `copy ${i}`).toBe(403);
    }
    const good = await signedRequest(gw.url, creds, { method: 'GET', path: `/${bucket}/good`, timeoutMs: 10_000 });
    expect(good.status).toBe(200);
    expect(good.body.length).toBe(5 * 65536);
  }, 120_000);
});

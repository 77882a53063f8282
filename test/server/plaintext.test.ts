import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

/** Objects written to the backend before lakecrypt: refused until migrated, unless the dataset allows it. */
describe('unmigrated (plaintext) objects', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway('fs', { datasets: [{ name: 'legacy', allowPlaintextRead: true }] });
    const s3 = gw.client();
    await s3.send(new CreateBucketCommand({ Bucket: 'legacy' }));
    await s3.send(new CreateBucketCommand({ Bucket: 'strict' }));
    const body = Buffer.from('written before lakecrypt');
    for (const b of ['legacy', 'strict']) await gw.backend.putObject(b, 'old.txt', body, { size: body.length, meta: { owner: 'ops' } });
  });
  afterAll(async () => gw?.close());

  it('are refused by default', async () => {
    let status = 0;
    try {
      await gw.client().send(new GetObjectCommand({ Bucket: 'strict', Key: 'old.txt' }));
    } catch (e) {
      status = (e as S3ServiceException).$metadata.httpStatusCode ?? 0;
    }
    expect(status).toBe(403);
  });

  it('are served as stored where allowed, saying so in the response and in the audit trail', async () => {
    const s3 = gw.client();
    let headers: Record<string, string> = {};
    s3.middlewareStack.add(
      (next) => async (args) => {
        const out = await next(args);
        headers = (out.response as { headers: Record<string, string> }).headers;
        return out;
      },
      { step: 'deserialize' },
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: 'legacy', Key: 'old.txt' }));
    expect(headers['x-lakecrypt-plaintext']).toBe('true');
    expect(await got.Body!.transformToString()).toBe('written before lakecrypt');
    expect(got.$metadata.httpStatusCode).toBe(200);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'legacy', Key: 'old.txt' }));
    expect(head.ContentLength).toBe(24);
    expect(head.Metadata).toEqual({ owner: 'ops' });
    const ranged = await s3.send(new GetObjectCommand({ Bucket: 'legacy', Key: 'old.txt', Range: 'bytes=8-13' }));
    expect(await ranged.Body!.transformToString()).toBe('before');
    const raw = await fetch(new URL('/legacy/old.txt', gw.url), { method: 'HEAD' });
    expect(raw.status).toBe(403); // still behind authentication
    await expect
      .poll(async () => (await gw.running.audit.list({ since: 1, limit: 100 })).some((e) => e.event === 'object.plaintext-read' && e.details.key === 'old.txt'))
      .toBe(true);
  });
});

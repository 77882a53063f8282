/**
 * Small PUT bodies are read whole (MD5 ETag, one header write) only within a shared byte budget: past it they
 * stream like large ones, so memory stays bounded however many uploads arrive at once.
 */
import { createHash } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExactly } from '../../src/store/index.ts';
import { Readable } from 'node:stream';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('whole-body PUT budget', () => {
  let gw: TestGateway;
  let s3: S3Client;
  const bucket = 'wholebody';
  beforeAll(async () => {
    gw = await startTestGateway('fs');
    s3 = gw.client();
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('an exhausted budget makes a small body stream (non-MD5 ETag), and the budget comes back after each request', async () => {
    const budget = gw.running.gateway.store.bodyBudget;
    const data = Buffer.alloc(300_000, 7);
    const first = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: data }));
    expect(first.ETag).toBe(`"${md5(data)}"`);
    // Everything taken (as by concurrent uploads): the next small body must not be held.
    expect(budget.take(budget.limit)).toBe(true);
    try {
      const second = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'b', Body: data }));
      expect(second.ETag).toMatch(/^"[0-9a-f]{32}-1"$/);
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'b' }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
    } finally {
      budget.give(budget.limit);
    }
    // Returned after success and after failure (a refused conditional PUT) alike.
    const refused = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: data, IfNoneMatch: '*' })).catch((e) => e);
    expect(refused.$metadata.httpStatusCode).toBe(412);
    expect(budget.take(budget.limit)).toBe(true);
    budget.give(budget.limit);
  });

  it('readExactly refuses a body shorter or longer than declared', async () => {
    await expect(readExactly(Readable.from([Buffer.alloc(10)]), 11)).rejects.toMatchObject({ code: 'IncompleteBody' });
    await expect(readExactly(Readable.from([Buffer.alloc(10), Buffer.alloc(2)]), 11)).rejects.toMatchObject({ code: 'IncompleteBody' });
    expect((await readExactly(Readable.from([Buffer.alloc(5), Buffer.alloc(6)]), 11)).length).toBe(11);
  });
});

/**
 * Small PUT bodies are read whole (MD5 ETag, one header write) only within a shared byte budget: past it they
 * stream like large ones, so memory stays bounded however many uploads arrive at once.
 */
import { createHash } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { errorCode, rawRequest, signHeaders } from '../../tools/sigv4.ts';
import { pollUntil } from '../../tools/wait.ts';
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

  it('a small PUT is read and verified in one piece (no payload streams); a bad hash, digest or checksum is refused with nothing stored and the budget back', async () => {
    const g = gw.running.gateway;
    const budget = g.store.bodyBudget;
    const streamed = vi.spyOn(g, 'payload');
    try {
      const data = Buffer.alloc(4096, 3);
      const ok = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'one-piece', Body: data, ChecksumAlgorithm: 'CRC32' }));
      expect(ok.ETag).toBe(`"${md5(data)}"`);
      expect(ok.ChecksumCRC32).toBeDefined();
      expect(streamed).not.toHaveBeenCalled();
      // over SMALL_PUT_MAX (256 KiB): the payload streams
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'streamed', Body: Buffer.alloc(300_000, 4) }));
      expect(streamed).toHaveBeenCalledTimes(1);
      const u = new URL(gw.url);
      const put = (key: string, headers: Record<string, string>, payload: string, body: Buffer) => {
        const { headers: h } = signHeaders({ accessKey: gw.accessKey, secretKey: gw.secretKey }, { method: 'PUT', host: u.host, path: `/${bucket}/${key}`, headers: { 'content-length': String(body.length), ...headers }, payload });
        return rawRequest(gw.url, { method: 'PUT', path: `/${bucket}/${key}`, headers: h, body });
      };
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      const refusals = [
        await put('bad-sha', {}, sha(Buffer.from('other')), data),
        await put('bad-md5', { 'content-md5': createHash('md5').update('other').digest('base64') }, sha(data), data),
        await put('bad-crc', { 'x-amz-checksum-crc32': 'AAAAAA==' }, 'UNSIGNED-PAYLOAD', data),
      ];
      expect(refusals.map((r) => [r.status, errorCode(r.body)])).toEqual([[400, 'XAmzContentSHA256Mismatch'], [400, 'BadDigest'], [400, 'BadDigest']]);
      for (const key of ['bad-sha', 'bad-md5', 'bad-crc']) {
        await expect(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).rejects.toMatchObject({ name: 'NoSuchKey' });
      }
      const unsigned = await put('unsigned', {}, 'UNSIGNED-PAYLOAD', data);
      expect(unsigned.status).toBe(200);
      expect(streamed).toHaveBeenCalledTimes(1);
      expect(budget.take(budget.limit), 'every byte of the budget given back').toBe(true);
      budget.give(budget.limit);
    } finally {
      streamed.mockRestore();
    }
  });

  it('a client gone halfway through a small body leaves the previous version and the budget intact', async () => {
    const budget = gw.running.gateway.store.bodyBudget;
    const before = Buffer.alloc(4096, 5);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'half', Body: before }));
    const u = new URL(gw.url);
    const { headers } = signHeaders({ accessKey: gw.accessKey, secretKey: gw.secretKey }, { method: 'PUT', host: u.host, path: `/${bucket}/half`, headers: { 'content-length': '4096' }, payload: 'UNSIGNED-PAYLOAD' });
    const sock = net.connect(Number(u.port), u.hostname);
    await new Promise((r) => sock.once('connect', r));
    sock.write(`PUT /${bucket}/half HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    sock.write(Buffer.alloc(2048, 6));
    await new Promise((r) => setTimeout(r, 200));
    sock.destroy();
    await pollUntil(() => budget.take(budget.limit) && (budget.give(budget.limit), true), { timeoutMs: 10_000, what: 'the budget back' });
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'half' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(before)).toBe(true);
  });

  it('readExactly refuses a body shorter or longer than declared', async () => {
    await expect(readExactly(Readable.from([Buffer.alloc(10)]), 11)).rejects.toMatchObject({ code: 'IncompleteBody' });
    await expect(readExactly(Readable.from([Buffer.alloc(10), Buffer.alloc(2)]), 11)).rejects.toMatchObject({ code: 'IncompleteBody' });
    expect((await readExactly(Readable.from([Buffer.alloc(5), Buffer.alloc(6)]), 11)).length).toBe(11);
  });
});

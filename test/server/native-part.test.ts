/**
 * UploadPart through the native data plane (src/store/multipart-store.ts uploadPartNative, native-write.ts sealPart,
 * native/dataplane.c seal mode with the part's number in every chunk's AAD) on a gateway over the shared MinIO: a
 * multipart upload whose parts of 1 MiB and more are sealed natively reads back byte for byte (whole, and a range
 * across parts) on this gateway and on one with dataPlane 'node'; a part with a checksum, and a part under 1 MiB,
 * take the Node path; a client that sends half a part and closes leaves no part at the backend and the upload goes
 * on; a part for an upload id the gateway does not know is NoSuchUpload before its body is taken.
 * `nativeTransfers.part` (lakecrypt_native_transfers_total{op="part"}) proves which path took each body, so these
 * fail if the native path broke or silently fell back.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Agent } from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { nativeDataplane, nativeTransfers, pumpsRunning } from '../../src/engine/dataplane.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { signHeaders } from '../../tools/sigv4.ts';
import { pollUntil } from '../../tools/wait.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { nativeClient, streamOf } from '../helpers/native-client.ts';

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

let gw: TestGateway;
let nodeGw: TestGateway;
const bucket = uniqueBucket('native-part');

const sdk = nativeClient;

async function part(c: S3Client, key: string, uploadId: string, n: number, body: Buffer, extra: Partial<ConstructorParameters<typeof UploadPartCommand>[0]> = {}) {
  const r = await c.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: streamOf(body), ContentLength: body.length, ...extra }));
  return { PartNumber: n, ETag: r.ETag!, ChecksumCRC32: r.ChecksumCRC32 };
}

async function get(c: S3Client, key: string, range?: string): Promise<Buffer> {
  const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

beforeAll(async () => {
  // built by the test setup (test/helpers/global-setup.ts): without it, nothing here could tell the paths apart
  expect(nativeDataplane(), 'native/build/dataplane.node must load (gcc and node headers)').not.toBeNull();
  gw = await startTestGateway('s3', { blockSize: BLOCK });
  nodeGw = await startTestGateway('s3', { blockSize: BLOCK, dataPlane: 'node', metaBucket: gw.running.gateway.metaBucket, dataDir: gw.dataDir });
  await gw.client().send(new CreateBucketCommand({ Bucket: bucket }));
  // the backend client learns the store's name (MinIO: drops a body cut short) from its first answers
  await sdk(gw).send(new GetObjectCommand({ Bucket: bucket, Key: 'warm' })).catch(() => undefined);
  const c = sdk(gw);
  const up = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'warm' }));
  await part(c, 'warm', up.UploadId!, 1, randomBytes(1000));
  c.destroy();
}, 120_000);

afterAll(async () => {
  await nodeGw?.close();
  await gw?.close();
});

describe('native data plane UploadPart', () => {
  it('parts of 1 MiB and more are sealed natively (part 1 with the prefix, the others without) and read back byte for byte', async () => {
    const c = sdk(gw);
    // whole chunks in every part but the last (other layouts are re-sealed after the complete: multipart-store.ts)
    const sizes = [9 * MiB, 5 * MiB, 5 * MiB + 65536, MiB + 7];
    const bodies = sizes.map((n) => randomBytes(n));
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp' }));
    const before = nativeTransfers.part;
    const putBefore = nativeTransfers.put;
    // out of order and in parallel, as lake engines upload
    const parts = await Promise.all(bodies.map((b, i) => part(c, 'mp', UploadId!, i + 1, b)));
    expect(nativeTransfers.part - before).toBe(4);
    expect(nativeTransfers.put - putBefore).toBe(0);
    const listed = await c.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp', UploadId }));
    expect(listed.Parts!.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual(parts.map((p, i) => [p.PartNumber, sizes[i], p.ETag]));
    await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp', UploadId, MultipartUpload: { Parts: parts.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) } }));
    const whole = Buffer.concat(bodies);
    expect(sha(await get(c, 'mp'))).toBe(sha(whole));
    // the Node path reads it too (every chunk's AAD checked there), and a range across parts 1-2-3
    expect(sha(await get(sdk(nodeGw), 'mp'))).toBe(sha(whole));
    const from = 9 * MiB - 5;
    const to = 14 * MiB + 20;
    expect((await get(sdk(nodeGw), 'mp', `bytes=${from}-${to}`)).equals(whole.subarray(from, to + 1))).toBe(true);
    c.destroy();
  }, 180_000);

  it('a part with a CRC32 is verified by the pump (a wrong one refused); another algorithm, a part under 1 MiB and a gateway with dataPlane node take the Node path', async () => {
    const c = sdk(gw);
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'summed' }));
    const body = randomBytes(6 * MiB);
    const zlib = await import('node:zlib');
    const value = Buffer.alloc(4);
    value.writeUInt32BE(zlib.crc32(body));
    const before = nativeTransfers.part;
    const p1 = await part(c, 'summed', UploadId!, 1, body, { ChecksumCRC32: value.toString('base64') });
    expect(p1.ChecksumCRC32).toBe(value.toString('base64'));
    expect(nativeTransfers.part - before).toBe(1);
    value.writeUInt32BE((value.readUInt32BE() + 1) >>> 0);
    await expect(part(c, 'summed', UploadId!, 2, randomBytes(2 * MiB), { ChecksumCRC32: value.toString('base64') })).rejects.toThrow(/CRC32/);
    expect(nativeTransfers.part - before).toBe(2);
    // CRC32C: the pump has no CRC32C, so the Node path verifies it (part 4 is left out of the Complete below)
    const body4 = randomBytes(2 * MiB);
    const crc32c = Buffer.alloc(4);
    crc32c.writeUInt32BE(zlib.crc32(body4)); // not body4's CRC32C
    await expect(part(c, 'summed', UploadId!, 4, body4, { ChecksumCRC32C: crc32c.toString('base64') })).rejects.toThrow();
    const n = sdk(nodeGw);
    const body2 = randomBytes(5 * MiB);
    const p2 = await part(n, 'summed', UploadId!, 2, body2);
    const body3 = randomBytes(700 * 1024);
    const p3 = await part(c, 'summed', UploadId!, 3, body3);
    expect(nativeTransfers.part - before).toBe(2);
    await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'summed', UploadId, MultipartUpload: { Parts: [p1, p2, p3].map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) } }));
    expect(sha(await get(c, 'summed'))).toBe(sha(Buffer.concat([body, body2, body3])));
    c.destroy();
    n.destroy();
  }, 180_000);

  it('a client that sends half a part and closes: no part at the backend, the gateway serves on, the part sent again completes', async () => {
    const c = sdk(gw);
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'cut' }));
    const size = 8 * MiB;
    const before = nativeTransfers.part;
    const u = new URL(gw.url);
    const query = `partNumber=1&uploadId=${encodeURIComponent(UploadId!)}`;
    const { headers } = signHeaders(
      { accessKey: gw.accessKey, secretKey: gw.secretKey },
      { method: 'PUT', host: u.host, path: `/${bucket}/cut`, query, headers: { 'content-length': String(size) }, payload: 'UNSIGNED-PAYLOAD' },
    );
    const sock = net.connect(Number(u.port), u.hostname);
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    const answer: Buffer[] = [];
    sock.on('data', (d: Buffer) => answer.push(d));
    sock.on('error', () => {});
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.write(`PUT /${bucket}/cut?${query} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    await new Promise<void>((resolve) => sock.write(randomBytes(size / 2), () => resolve()));
    await pollUntil(() => nativeTransfers.part - before === 1, { timeoutMs: 60_000, what: 'the native pump took the part' });
    sock.end();
    await closed;
    await pollUntil(() => pumpsRunning() === 0, { timeoutMs: 60_000, what: 'the pump ended' });
    expect(Buffer.concat(answer).toString('latin1')).not.toMatch(/^HTTP\/1\.1 200/);
    const listed = await c.send(new ListPartsCommand({ Bucket: bucket, Key: 'cut', UploadId }));
    expect(listed.Parts ?? []).toEqual([]);
    const body = randomBytes(size);
    const p1 = await part(c, 'cut', UploadId!, 1, body);
    expect(nativeTransfers.part - before).toBe(2);
    await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'cut', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }] } }));
    expect(sha(await get(c, 'cut'))).toBe(sha(body));
    c.destroy();
  }, 180_000);

  it('a connection given back after a native part buffers no more of its next body than node:http does for any request', async () => {
    // node:http stops reading a body once the request's buffer is full by pausing the socket; a socket the pump had
    // and gave back must pause again, else the connection's next body is read into memory while the gateway looks up
    // the upload (here made slow) and reaches the pump as `pre` (several MiB of a part, before the fix)
    const mpu = gw.running.gateway.mpu;
    const init = mpu.init;
    const uploadPartNative = mpu.uploadPartNative;
    const pres: number[] = [];
    mpu.init = async function (this: typeof mpu, ...a: Parameters<typeof init>) {
      await new Promise((r) => setTimeout(r, 150));
      return init.apply(this, a);
    };
    mpu.uploadPartNative = function (this: typeof mpu, ...a: Parameters<typeof uploadPartNative>) {
      pres.push(a[6].pre.length);
      return uploadPartNative.apply(this, a);
    };
    const c = new S3Client({
      endpoint: gw.url,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      maxAttempts: 1,
      requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 1 }) }, // one connection for every part
    });
    try {
      const up = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'given-back' }));
      const bodies = [0, 1, 2, 3].map(() => randomBytes(6 * MiB));
      const parts = [];
      for (const [i, b] of bodies.entries()) parts.push(await part(c, 'given-back', up.UploadId!, i + 1, b));
      expect(pres).toHaveLength(4);
      for (const p of pres) expect(p).toBeLessThanOrEqual(256 * 1024);
      await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'given-back', UploadId: up.UploadId!, MultipartUpload: { Parts: parts } }));
      expect(sha(await get(c, 'given-back'))).toBe(sha(Buffer.concat(bodies)));
    } finally {
      mpu.init = init;
      mpu.uploadPartNative = uploadPartNative;
      c.destroy();
    }
  }, 180_000);

  it('a part for an upload id the gateway does not know is NoSuchUpload, its body never taken', async () => {
    const c = sdk(gw);
    const before = nativeTransfers.part;
    await expect(part(c, 'nope', 'not-an-upload', 1, randomBytes(2 * MiB))).rejects.toMatchObject({ name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } });
    expect(nativeTransfers.part - before).toBe(0);
    // the gateway serves on
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'nope' }));
    const body = randomBytes(2 * MiB);
    const p1 = await part(c, 'nope', UploadId!, 1, body);
    expect(nativeTransfers.part - before).toBe(1);
    await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'nope', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }] } }));
    expect(sha(await get(c, 'nope'))).toBe(sha(body));
    c.destroy();
  }, 180_000);
});

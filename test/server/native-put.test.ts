/**
 * Large single PUTs through the native data plane (src/store/native-write.ts, native/dataplane.c seal mode) on a
 * gateway over the shared MinIO: the AWS SDK's streaming UNSIGNED-PAYLOAD upload then a GET byte for byte; a
 * client that sends half its body and closes (the previous version stays, nothing committed, the gateway serves
 * on); a declared CRC32 and a signed payload's SHA-256 verified by the pump (a mismatch commits nothing), parts too;
 * another checksum algorithm and a gateway with dataPlane 'node' take the Node path. `nativeTransfers.put`
 * (lakecrypt_native_transfers_total{op="put"}) proves which path took each body, so these fail if the native path
 * broke or silently fell back.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { nativeDataplane, nativeTransfers, pumpsRunning } from '../../src/engine/dataplane.ts';
import { META_ETAG, META_FMT, META_OID } from '../../src/store/index.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { errorCode, rawRequest, signHeaders, type RawResponse } from '../../tools/sigv4.ts';
import { pollUntil } from '../../tools/wait.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { nativeClient, streamOf } from '../helpers/native-client.ts';
import { signedStreamingPut } from '../s3/helpers.ts';

const MiB = 1024 * 1024;
const BLOCK = 8 * MiB;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

let gw: TestGateway;
let nodeGw: TestGateway;
const bucket = uniqueBucket('native-put');

const sdk = nativeClient;

async function sdkPut(c: S3Client, key: string, body: Buffer, extra: Partial<ConstructorParameters<typeof PutObjectCommand>[0]> = {}) {
  return c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: streamOf(body), ContentLength: body.length, ...extra }));
}

async function sdkGet(c: S3Client, key: string): Promise<Buffer> {
  const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** A CRC-32 as x-amz-checksum-crc32 carries it. */
function crcOf(b: Buffer): string {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(zlibCrc32(b));
  return v.toString('base64');
}

/** One signed request to gw with `headers`, its payload UNSIGNED-PAYLOAD or the hex SHA-256 given. */
function raw(method: string, key: string, body: Buffer, headers: Record<string, string>, payload = 'UNSIGNED-PAYLOAD', query?: string): Promise<RawResponse> {
  const host = new URL(gw.url).host;
  const path = `/${bucket}/${key}`;
  const signed = signHeaders({ accessKey: gw.accessKey, secretKey: gw.secretKey }, { method, host, path, query, headers: { ...headers, 'content-length': String(body.length) }, payload });
  return rawRequest(gw.url, { method, path: query ? `${path}?${query}` : path, headers: signed.headers, body, timeoutMs: 120_000 });
}

function request(g: TestGateway, method: string, key: string, body?: Buffer): Promise<RawResponse> {
  const host = new URL(g.url).host;
  const extra: Record<string, string> = body ? { 'content-length': String(body.length) } : {};
  const { headers } = signHeaders({ accessKey: g.accessKey, secretKey: g.secretKey }, { method, host, path: `/${bucket}/${key}`, headers: extra, payload: 'UNSIGNED-PAYLOAD' });
  return rawRequest(g.url, { method, path: `/${bucket}/${key}`, headers, body, timeoutMs: 120_000 });
}

beforeAll(async () => {
  // built by the test setup (test/helpers/global-setup.ts): without it, nothing here could tell the paths apart
  expect(nativeDataplane(), 'native/build/dataplane.node must load (gcc and node headers)').not.toBeNull();
  gw = await startTestGateway('s3', { blockSize: BLOCK });
  nodeGw = await startTestGateway('s3', { blockSize: BLOCK, dataPlane: 'node', metaBucket: gw.running.gateway.metaBucket, dataDir: gw.dataDir });
  await gw.client().send(new CreateBucketCommand({ Bucket: bucket }));
  // the backend client learns the store's name (MinIO: drops a body cut short) from its first answers
  expect((await request(gw, 'PUT', 'warm', Buffer.from('warm'))).status).toBe(200);
  expect((await request(nodeGw, 'PUT', 'warm', Buffer.from('warm'))).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await nodeGw?.close();
  await gw?.close();
});

describe('native data plane PUT', () => {
  it('a 24 MiB streaming UNSIGNED-PAYLOAD PUT from the SDK is sealed natively and reads back byte for byte', async () => {
    const c = sdk(gw);
    const body = randomBytes(24 * MiB + 12345);
    const before = nativeTransfers.put;
    const r = await sdkPut(c, 'big', body);
    expect(nativeTransfers.put - before).toBe(1);
    expect(r.ETag).toMatch(/-1"$/);
    const info = (await gw.backend.headObject(bucket, 'big'))!;
    expect(info.meta[META_FMT]).toBe('1');
    expect(info.meta[META_OID]).toMatch(/^[0-9a-f]{32}$/);
    expect(info.meta[META_ETAG]).toBeUndefined();
    const back = await sdkGet(c, 'big');
    expect(back.length).toBe(body.length);
    expect(sha(back)).toBe(sha(body));
    // the Node path reads it too, and the ETag listed is the one the PUT answered
    expect(sha(await sdkGet(sdk(nodeGw), 'big'))).toBe(sha(body));
    const head = await request(gw, 'HEAD', 'big');
    expect(head.headers.etag).toBe(r.ETag);
    // the same keep-alive connection carries the next requests (the parser was given back at a request's start)
    const small = randomBytes(1000);
    await sdkPut(c, 'small-after', small);
    expect((await sdkGet(c, 'small-after')).equals(small)).toBe(true);
    expect(nativeTransfers.put - before).toBe(1);
    c.destroy();
  }, 180_000);

  it('a client that sends half its body and closes: nothing is committed, the previous version stays, the gateway serves on', async () => {
    const c = sdk(gw);
    const first = randomBytes(12 * MiB);
    await sdkPut(c, 'cut', first);
    const infoBefore = (await gw.backend.headObject(bucket, 'cut'))!;
    const before = nativeTransfers.put;
    const size = 20 * MiB;
    const u = new URL(gw.url);
    const { headers } = signHeaders(
      { accessKey: gw.accessKey, secretKey: gw.secretKey },
      { method: 'PUT', host: u.host, path: `/${bucket}/cut`, headers: { 'content-length': String(size) }, payload: 'UNSIGNED-PAYLOAD' },
    );
    const sock = net.connect(Number(u.port), u.hostname);
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    const answer: Buffer[] = [];
    sock.on('data', (d: Buffer) => answer.push(d));
    sock.on('error', () => {});
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.write(`PUT /${bucket}/cut HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    const half = randomBytes(size / 2);
    await new Promise<void>((resolve) => sock.write(half, () => resolve()));
    await pollUntil(() => nativeTransfers.put - before === 1, { timeoutMs: 60_000, what: 'the native pump took the body' });
    sock.end();
    await closed;
    await pollUntil(() => pumpsRunning() === 0, { timeoutMs: 60_000, what: 'the pump ended' });
    // no answer of success, and the previous version is the object still
    expect(Buffer.concat(answer).toString('latin1')).not.toMatch(/^HTTP\/1\.1 200/);
    const infoAfter = (await gw.backend.headObject(bucket, 'cut'))!;
    expect(infoAfter.meta[META_OID]).toBe(infoBefore.meta[META_OID]);
    expect(infoAfter.etag).toBe(infoBefore.etag);
    expect(sha(await sdkGet(c, 'cut'))).toBe(sha(first));
    // the gateway is up and takes the next native PUT
    const next = randomBytes(10 * MiB);
    await sdkPut(c, 'cut', next);
    expect(nativeTransfers.put - before).toBe(2);
    expect(sha(await sdkGet(c, 'cut'))).toBe(sha(next));
    c.destroy();
  }, 180_000);

  it('conditions travel with the native PUT: If-Match of the current ETag commits, a stale one and If-None-Match on an existing key are 412', async () => {
    const c = sdk(gw);
    const first = await sdkPut(c, 'cond', randomBytes(9 * MiB));
    const before = nativeTransfers.put;
    const body = randomBytes(9 * MiB);
    const second = await sdkPut(c, 'cond', body, { IfMatch: first.ETag });
    expect(nativeTransfers.put - before).toBe(1);
    expect(second.ETag).not.toBe(first.ETag);
    await expect(sdkPut(c, 'cond', randomBytes(9 * MiB), { IfMatch: first.ETag })).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    await expect(sdkPut(c, 'cond', randomBytes(9 * MiB), { IfNoneMatch: '*' })).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    expect(sha(await sdkGet(c, 'cond'))).toBe(sha(body));
    // the backend's own condition on a raw PUT (a write landing between the gateway's check and the commit)
    const up = (await gw.backend.rawPut!(bucket, 'cond', { size: 1000, meta: {}, ifMatch: first.ETag!.replace(/"/g, '') }, randomBytes(1000)))!;
    await expect(up.result()).rejects.toMatchObject({ code: 'PreconditionFailed' });
    up.close();
    expect(sha(await sdkGet(c, 'cond'))).toBe(sha(body));
    c.destroy();
  }, 180_000);

  it('a declared CRC32 is verified by the pump: the right one commits natively and is answered and stored, a wrong one is BadDigest and commits nothing', async () => {
    const c = sdk(gw);
    const body = randomBytes(10 * MiB);
    const value = crcOf(body);
    const before = nativeTransfers.put;
    const r = await sdkPut(c, 'summed', body, { ChecksumCRC32: value });
    expect(r.ChecksumCRC32).toBe(value);
    expect(nativeTransfers.put - before).toBe(1);
    expect(sha(await sdkGet(c, 'summed'))).toBe(sha(body));
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'summed', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumCRC32).toBe(value);
    // a wrong one: refused after the whole body, before the last chunk reached the backend
    const other = randomBytes(10 * MiB);
    const wrong = raw('PUT', 'summed', other, { 'x-amz-checksum-crc32': crcOf(body) });
    const w = await wrong;
    expect(w.status, w.body.toString()).toBe(400);
    expect(errorCode(w.body)).toBe('BadDigest');
    expect(nativeTransfers.put - before).toBe(2);
    expect(sha(await sdkGet(c, 'summed'))).toBe(sha(body));
    // another algorithm: the Node path, verified there
    const crc32c = await raw('PUT', 'summed-c', other, { 'x-amz-checksum-crc32c': 'AAAAAA==' });
    expect(crc32c.status).toBe(400);
    expect(errorCode(crc32c.body)).toBe('BadDigest');
    expect(nativeTransfers.put - before).toBe(2);
    c.destroy();
  }, 180_000);

  it('a signed payload (hex SHA-256, as boto3 and the AWS CLI send over http) is hashed by the pump: the right body commits natively, another one is XAmzContentSHA256Mismatch and commits nothing', async () => {
    const body = randomBytes(12 * MiB + 5);
    const before = nativeTransfers.put;
    const ok = await raw('PUT', 'signed', body, { 'x-amz-checksum-crc32': crcOf(body), 'x-amz-sdk-checksum-algorithm': 'CRC32' }, sha(body));
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(ok.headers['x-amz-checksum-crc32']).toBe(crcOf(body));
    expect(nativeTransfers.put - before).toBe(1);
    const c = sdk(gw);
    expect(sha(await sdkGet(c, 'signed'))).toBe(sha(body));
    const other = Buffer.from(body);
    other[7 * MiB] ^= 1;
    const bad = await raw('PUT', 'signed', other, {}, sha(body));
    expect(bad.status, bad.body.toString()).toBe(400);
    expect(errorCode(bad.body)).toBe('XAmzContentSHA256Mismatch');
    expect(nativeTransfers.put - before).toBe(2);
    expect(sha(await sdkGet(c, 'signed'))).toBe(sha(body));
    c.destroy();
  }, 180_000);

  it('an aws-chunked body with a Content-Length and a CRC32 trailer (unsigned: AWS SDK Go v2) is sealed natively: the trailer checked, the CRC32 stored and answered; a wrong trailer commits nothing', async () => {
    /** `body` framed as aws-chunks of 64 KiB and odd sizes, then the final chunk and `trailer`. */
    const frame = (body: Buffer, trailer: string) => {
      const parts: Buffer[] = [];
      for (let off = 0, i = 0; off < body.length; i++) {
        const n = Math.min(body.length - off, i % 2 ? 65536 : 1_048_573);
        parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(off, off + n), Buffer.from('\r\n'));
        off += n;
      }
      return Buffer.concat([...parts, Buffer.from(`0\r\n${trailer}\r\n\r\n`)]);
    };
    const chunkedPut = (body: Buffer, trailer: string) =>
      raw('PUT', 'trailed', frame(body, trailer), {
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': String(body.length),
        'x-amz-trailer': 'x-amz-checksum-crc32',
        'x-amz-sdk-checksum-algorithm': 'CRC32',
      }, 'STREAMING-UNSIGNED-PAYLOAD-TRAILER');
    const body = randomBytes(12 * MiB + 99);
    const before = nativeTransfers.put;
    const ok = await chunkedPut(body, `x-amz-checksum-crc32:${crcOf(body)}`);
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(ok.headers['x-amz-checksum-crc32']).toBe(crcOf(body));
    expect(nativeTransfers.put - before).toBe(1);
    const c = sdk(gw);
    expect(sha(await sdkGet(c, 'trailed'))).toBe(sha(body));
    await gw.running.gateway.store.settled(); // the final header (with the CRC32) is written after the commit
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'trailed', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumCRC32).toBe(crcOf(body));
    // a wrong CRC32 in the trailer: 400 BadDigest, the object unchanged
    const bad = await chunkedPut(randomBytes(10 * MiB), `x-amz-checksum-crc32:${crcOf(body)}`);
    expect(bad.status, bad.body.toString()).toBe(400);
    expect(errorCode(bad.body)).toBe('BadDigest');
    expect(nativeTransfers.put - before).toBe(2);
    expect(sha(await sdkGet(c, 'trailed'))).toBe(sha(body));
    // the JavaScript SDK's default stream upload puts HTTP chunked transfer coding around the aws-chunks (no
    // Content-Length): sealed natively too (native/http-chunked.c; test/server/native-te.test.ts has its cases)
    const js = new S3Client({ endpoint: gw.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey }, maxAttempts: 1 });
    const r = await sdkPut(js, 'trailed-js', body);
    expect(r.ChecksumCRC32).toBe(crcOf(body));
    expect(nativeTransfers.put - before).toBe(3);
    expect(sha(await sdkGet(c, 'trailed-js'))).toBe(sha(body));
    js.destroy();
    c.destroy();
  }, 180_000);

  it('an aws-chunked body with signed chunks (mc, minio-go over http) is sealed natively: every chunk signature checked, a forged chunk commits nothing', async () => {
    /** A PutObject of `body` in signed 64 KiB aws-chunks, as minio-go frames it (no Content-Encoding); `forge` edits the frame. */
    const signedPut = (key: string, body: Buffer, forge?: (framed: Buffer) => Buffer, headers: Record<string, string> = {}) =>
      rawRequest(gw.url, { ...signedStreamingPut(gw, gw.url, `/${bucket}/${key}`, body, { forge, headers }), timeoutMs: 120_000 });
    const body = randomBytes(12 * MiB + 7);
    const before = nativeTransfers.put;
    const ok = await signedPut('signed-chunks', body);
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(nativeTransfers.put - before).toBe(1);
    const c = sdk(gw);
    expect(sha(await sdkGet(c, 'signed-chunks'))).toBe(sha(body));
    // one data byte changed in transit (its chunk's signature no longer matches): 403, nothing committed
    const flipped = await signedPut('signed-chunks', randomBytes(10 * MiB), (f) => {
      const b = Buffer.from(f);
      b[5 * MiB] ^= 1;
      return b;
    });
    expect(flipped.status, flipped.body.toString()).toBe(403);
    expect(errorCode(flipped.body)).toBe('SignatureDoesNotMatch');
    expect(nativeTransfers.put - before).toBe(2);
    expect(sha(await sdkGet(c, 'signed-chunks'))).toBe(sha(body));
    // the final chunk's signature is checked before the last sealed chunk leaves: a forged one commits nothing
    const forgedEnd = await signedPut('signed-chunks', randomBytes(9 * MiB), (f) => {
      const s = f.toString('latin1');
      const at = s.lastIndexOf('0;chunk-signature=') + '0;chunk-signature='.length;
      return Buffer.from(s.slice(0, at) + (s[at] === 'a' ? 'b' : 'a') + s.slice(at + 1), 'latin1');
    });
    expect(forgedEnd.status, forgedEnd.body.toString()).toBe(403);
    expect(errorCode(forgedEnd.body)).toBe('SignatureDoesNotMatch');
    expect(nativeTransfers.put - before).toBe(3);
    expect(sha(await sdkGet(c, 'signed-chunks'))).toBe(sha(body));
    // a Content-MD5 with signed chunks: checked by the pump too, the MD5 the ETag
    const md5 = createHash('md5').update(body).digest();
    const withMd5 = await signedPut('signed-md5', body, undefined, { 'content-md5': md5.toString('base64') });
    expect(withMd5.status, withMd5.body.toString()).toBe(200);
    expect(withMd5.headers.etag).toBe(`"${md5.toString('hex')}"`);
    const badMd5 = await signedPut('signed-md5', randomBytes(9 * MiB), undefined, { 'content-md5': md5.toString('base64') });
    expect(badMd5.status, badMd5.body.toString()).toBe(400);
    expect(errorCode(badMd5.body)).toBe('BadDigest');
    expect(nativeTransfers.put - before).toBe(5);
    expect(sha(await sdkGet(c, 'signed-md5'))).toBe(sha(body));
    c.destroy();
  }, 180_000);

  it('signed chunks with a signed trailer (the AWS SDK for Java v2 over http) are sealed natively: the trailer signature and its CRC32 checked; a forged or missing signature, or a CRC32 of other bytes, commits nothing', async () => {
    /** A PutObject of `body` in signed 64 KiB aws-chunks with a signed CRC32 trailer (`crc` overrides its value); `forge` edits the frame. */
    const trailedPut = (key: string, body: Buffer, opts: { crc?: string; forge?: (framed: Buffer) => Buffer } = {}) =>
      rawRequest(gw.url, { ...signedStreamingPut(gw, gw.url, `/${bucket}/${key}`, body, { trailers: [['x-amz-checksum-crc32', opts.crc ?? crcOf(body)]], forge: opts.forge }), timeoutMs: 120_000 });
    const editSignature = (f: Buffer, edit: (sig: string) => string) => {
      const s = f.toString('latin1');
      const at = s.lastIndexOf('x-amz-trailer-signature:');
      const end = s.indexOf('\r\n', at);
      return Buffer.from(s.slice(0, at) + edit(s.slice(at, end)) + s.slice(end), 'latin1');
    };
    const body = randomBytes(11 * MiB + 5);
    const before = nativeTransfers.put;
    const ok = await trailedPut('signed-trailer', body);
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(nativeTransfers.put - before).toBe(1);
    const c = sdk(gw);
    expect(sha(await sdkGet(c, 'signed-trailer'))).toBe(sha(body));
    await gw.running.gateway.store.settled(); // the final header (with the CRC32) is written after the commit
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'signed-trailer', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumCRC32).toBe(crcOf(body));
    const refused: [string, () => Promise<RawResponse>, number, string][] = [
      ['a forged trailer signature', () => trailedPut('signed-trailer', randomBytes(9 * MiB), { forge: (f) => editSignature(f, (l) => l.slice(0, -1) + (l.endsWith('a') ? 'b' : 'a')) }), 403, 'SignatureDoesNotMatch'],
      ['no trailer signature', () => trailedPut('signed-trailer', randomBytes(9 * MiB), { forge: (f) => editSignature(f, () => 'x-amz-meta-none:1') }), 403, 'SignatureDoesNotMatch'],
      ['a CRC32 of other bytes, signed', () => trailedPut('signed-trailer', randomBytes(9 * MiB), { crc: crcOf(Buffer.from('other')) }), 400, 'BadDigest'],
    ];
    for (const [what, put, status, code] of refused) {
      const r = await put();
      expect(r.status, `${what}: ${r.body.toString()}`).toBe(status);
      expect(errorCode(r.body), what).toBe(code);
    }
    expect(nativeTransfers.put - before).toBe(4);
    expect(sha(await sdkGet(c, 'signed-trailer'))).toBe(sha(body));
    c.destroy();
  }, 180_000);

  it('a Content-MD5 (rclone) is verified by the pump: the right one commits natively with the MD5 as its ETag, a wrong one is BadDigest and commits nothing', async () => {
    const body = randomBytes(9 * MiB + 3);
    const md5 = createHash('md5').update(body).digest();
    const before = nativeTransfers.put;
    const ok = await raw('PUT', 'md5d', body, { 'content-md5': md5.toString('base64') });
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(ok.headers.etag).toBe(`"${md5.toString('hex')}"`);
    expect(nativeTransfers.put - before).toBe(1);
    const c = sdk(gw);
    expect(sha(await sdkGet(c, 'md5d'))).toBe(sha(body));
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'md5d' }));
    expect(head.ETag).toBe(`"${md5.toString('hex')}"`);
    const bad = await raw('PUT', 'md5d', randomBytes(9 * MiB + 3), { 'content-md5': md5.toString('base64') });
    expect(bad.status, bad.body.toString()).toBe(400);
    expect(errorCode(bad.body)).toBe('BadDigest');
    expect(nativeTransfers.put - before).toBe(2);
    expect(sha(await sdkGet(c, 'md5d'))).toBe(sha(body));
    c.destroy();
  }, 180_000);

  it('UploadPart with a signed payload and a CRC32: sealed natively, the checksum recorded for ListParts and Complete', async () => {
    const c = sdk(gw);
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp-summed', ChecksumAlgorithm: 'CRC32' }));
    const bodies = [randomBytes(5 * MiB), randomBytes(2 * MiB + 3)];
    const before = nativeTransfers.part;
    for (const [i, b] of bodies.entries()) {
      const r = await raw('PUT', 'mp-summed', b, { 'x-amz-checksum-crc32': crcOf(b), 'x-amz-sdk-checksum-algorithm': 'CRC32' }, sha(b), `partNumber=${i + 1}&uploadId=${encodeURIComponent(UploadId!)}`);
      expect(r.status, r.body.toString()).toBe(200);
      expect(r.headers['x-amz-checksum-crc32']).toBe(crcOf(b));
    }
    expect(nativeTransfers.part - before).toBe(2);
    const listed = await c.send(new ListPartsCommand({ Bucket: bucket, Key: 'mp-summed', UploadId }));
    expect(listed.Parts?.map((p) => p.ChecksumCRC32)).toEqual(bodies.map(crcOf));
    const parts = listed.Parts!.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32 }));
    await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'mp-summed', UploadId, MultipartUpload: { Parts: parts } }));
    expect(sha(await sdkGet(c, 'mp-summed'))).toBe(sha(Buffer.concat(bodies)));
    c.destroy();
  }, 180_000);

  it('dataPlane node: a large plain PUT takes the Node path', async () => {
    const c = sdk(nodeGw);
    const body = randomBytes(12 * MiB);
    const before = nativeTransfers.put;
    await sdkPut(c, 'by-node', body);
    expect(nativeTransfers.put - before).toBe(0);
    expect(sha(await sdkGet(c, 'by-node'))).toBe(sha(body));
    c.destroy();
  }, 180_000);

  it("the server's connection list stays exact: every connection once, none left behind after its socket closed", async () => {
    // giveBack restarts node's parser (initialize), which re-adds it to the server's connection list: a list ordered
    // by each parser's message start, so a parser re-added without first leaving it stayed in it twice, and once
    // its socket closed the stale entry broke server.closeIdleConnections() at shutdown
    const server = gw.running.server as unknown as Record<symbol, { all(): { socket: unknown }[] }>;
    const key = Object.getOwnPropertySymbols(server).find((k) => k.description === 'http.server.connections')!;
    const list = () => server[key].all();
    const clients = Array.from({ length: 6 }, () => sdk(gw));
    const before = nativeTransfers.put;
    for (let round = 0; round < 4; round++) {
      // native PUTs on three connections while three others carry small requests that begin and end around them
      await Promise.all(
        clients.map(async (c, i) => {
          if (i < 3) return sdkPut(c, `list-${i}`, randomBytes(9 * MiB + i));
          for (let k = 0; k < 6; k++) await sdkPut(c, `list-small-${i}`, randomBytes(1000));
        }),
      );
      const entries = list();
      expect(new Set(entries).size).toBe(entries.length);
      expect(entries.filter((p) => p.socket === null)).toEqual([]);
    }
    expect(nativeTransfers.put - before).toBe(12);
    for (const c of clients) c.destroy();
    await pollUntil(() => list().every((p) => p.socket !== null) && list().length === 0, { timeoutMs: 30_000, what: 'the closed connections left the list' }).catch(() => undefined);
    expect(list().filter((p) => p.socket === null)).toEqual([]);
    expect(() => gw.running.server.closeIdleConnections()).not.toThrow();
  }, 180_000);
});

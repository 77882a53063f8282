/**
 * aws-chunks inside HTTP chunked transfer coding — the AWS SDK for JavaScript's stream uploads (no Content-Length,
 * Transfer-Encoding: chunked, STREAMING-UNSIGNED-PAYLOAD-TRAILER, a CRC32 trailer) — sealed by the native data plane
 * (native/http-chunked.c; src/server/expect-continue.ts stops the socket's reads at the head and holds the 100
 * Continue, so the pump gets the body whole from its first byte). `nativeTransfers.put` proves which path took each body, so these fail if the native
 * path broke or silently fell back; the raw-socket cases check where the pump says the body ends (the next request
 * on the connection is answered), that a malformed framing or trailer commits nothing, that a client that does not
 * wait for 100 Continue is served from the bytes that came with its head, and that the requests it cannot take (a
 * head split over reads) or that are answered before their body still work.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync, createReadStream, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { nativeDataplane, nativeTransfers } from '../../src/engine/dataplane.ts';
import { makeDefaultClient } from '../../bench/lib/s3.ts';
import { startTestGateway, type TestGateway } from '../../tools/gateway.ts';
import { signHeaders } from '../../tools/sigv4.ts';
import { uniqueBucket } from '../helpers/s3.ts';
import { encodeAwsChunked } from '../s3/helpers.ts';

const MiB = 1024 * 1024;
let gw: TestGateway;
let dir: string;
const bucket = uniqueBucket('native-te');

/**
 * The JavaScript SDK with its defaults (bench/lib/s3.ts makeDefaultClient: CRC32 for every PUT, so a stream body goes
 * aws-chunked in chunked transfer coding, and waits for 100 Continue — with an agent of its own; given an http.Agent,
 * `agent`, it does not wait).
 */
const jsSdk = (g: TestGateway, o: { agent?: boolean } = {}): S3Client => makeDefaultClient({ endpoint: g.url, accessKey: g.accessKey, secretKey: g.secretKey }, o);

const crcOf = (b: Buffer) => {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(zlibCrc32(b));
  return v.toString('base64');
};

async function getBytes(key: string): Promise<Buffer> {
  const r = await jsSdk(gw).send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** `body` in chunked transfer coding, cut at `cuts` (offsets into body: chunk boundaries that need not be aws-chunks'). */
function transferChunked(body: Buffer, cuts: number[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const end of [...cuts, body.length]) {
    if (end > at) out.push(Buffer.from(`${(end - at).toString(16)}\r\n`), body.subarray(at, end), Buffer.from('\r\n'));
    at = end;
  }
  out.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(out);
}

interface Exchange {
  /** Everything the gateway sent, in order (a 100 Continue, the answer, the next request's answer …). */
  text(): string;
  /** Resolves once `pattern` is in what the gateway sent (or `pattern` says so of it). */
  until(pattern: RegExp | ((text: string) => boolean), ms?: number): Promise<string>;
  send(b: Buffer | string): void;
  closed: Promise<void>;
  socket: net.Socket;
}

function connect(): Promise<Exchange> {
  const u = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port), u.hostname);
    const got: Buffer[] = [];
    const waiters: (() => void)[] = [];
    socket.on('data', (d) => {
      got.push(d);
      for (const w of waiters.splice(0)) w();
    });
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('error', () => {});
    const text = () => Buffer.concat(got).toString('latin1');
    const until = (pattern: RegExp | ((text: string) => boolean), ms = 60_000) =>
      new Promise<string>((res, rej) => {
        const t = setTimeout(() => rej(new Error(`no ${String(pattern)} in ${JSON.stringify(text().slice(0, 600))}`)), ms);
        const check = () => {
          if (typeof pattern === 'function' ? pattern(text()) : pattern.test(text())) {
            clearTimeout(t);
            res(text());
          } else if (socket.destroyed) {
            clearTimeout(t);
            rej(new Error(`closed without ${String(pattern)}: ${JSON.stringify(text().slice(0, 600))}`));
          } else waiters.push(check);
        };
        void closed.then(() => setImmediate(check));
        check();
      });
    socket.once('connect', () => resolve({ text, until, send: (b) => socket.write(b), closed, socket }));
    socket.once('error', reject);
  });
}

/** The head of a JavaScript-SDK-like stream upload of `plain` (signed; Transfer-Encoding and Expect unsigned, as the SDK sends them). */
function uploadHead(key: string, plainLength: number, opts: { secretKey?: string } = {}): string {
  const host = new URL(gw.url).host;
  const p = `/${bucket}/${key}`;
  const { headers } = signHeaders(
    { accessKey: gw.accessKey, secretKey: opts.secretKey ?? gw.secretKey },
    {
      method: 'PUT',
      host,
      path: p,
      headers: {
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': String(plainLength),
        'x-amz-trailer': 'x-amz-checksum-crc32',
        'x-amz-sdk-checksum-algorithm': 'CRC32',
      },
      payload: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    },
  );
  const all = { ...headers, 'transfer-encoding': 'chunked', expect: '100-continue' };
  return `PUT ${p} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
}

/** An aws-chunked body of `plain` in 64 KiB chunks with a CRC32 trailer (`crc` overrides its value). */
function awsBody(plain: Buffer, crc = crcOf(plain)): Buffer {
  const chunks: Buffer[] = [];
  for (let i = 0; i < plain.length; i += 64 * 1024) chunks.push(plain.subarray(i, i + 64 * 1024));
  return encodeAwsChunked(chunks, { mode: 'streaming-unsigned-trailer', trailers: [['x-amz-checksum-crc32', crc]] });
}

/** The gateway closes the connection (a failed upload's cannot carry another request). */
async function closedWithin(x: Exchange, what: string, ms = 30_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: the connection stayed open`)), ms)));
  await Promise.race([x.closed, late]).finally(() => clearTimeout(timer));
}

/** A plain GET of `key` on an open connection, signed. */
function getRequest(key: string): string {
  const host = new URL(gw.url).host;
  const p = `/${bucket}/${key}`;
  const { headers } = signHeaders({ accessKey: gw.accessKey, secretKey: gw.secretKey }, { method: 'GET', host, path: p, headers: {}, payload: 'UNSIGNED-PAYLOAD' });
  return `GET ${p} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
}

beforeAll(async () => {
  expect(nativeDataplane(), 'native/build/dataplane.node must load (gcc and node headers)').not.toBeNull();
  gw = await startTestGateway('s3', { blockSize: 8 * MiB });
  await gw.client().send(new CreateBucketCommand({ Bucket: bucket }));
  dir = mkdtempSync(path.join(os.tmpdir(), 'native-te-'));
  // the backend client learns the store's kind (what rawPut needs) from its first answers
  await gw.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'warm', Body: 'x' }));
});

afterAll(async () => {
  await gw?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('aws-chunks in chunked transfer coding (the JavaScript SDK stream uploads) through the pump', () => {
  it("the SDK's file-stream and Readable uploads are sealed natively, read back byte for byte, with the CRC32 stored and answered", async () => {
    const c = jsSdk(gw);
    const file = randomBytes(20 * MiB + 12_345);
    writeFileSync(path.join(dir, 'f.bin'), file);
    const before = nativeTransfers.put;
    const put = await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'file', Body: createReadStream(path.join(dir, 'f.bin')) }));
    expect(nativeTransfers.put - before, 'the file stream went through the pump').toBe(1);
    expect(put.ChecksumCRC32).toBe(crcOf(file));
    const readable = randomBytes(9 * MiB + 7);
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'readable', Body: Readable.from([readable.subarray(0, MiB), readable.subarray(MiB)]), ContentLength: readable.length }));
    expect(nativeTransfers.put - before, 'the Readable went through the pump').toBe(2);
    expect((await getBytes('file')).equals(file)).toBe(true);
    expect((await getBytes('readable')).equals(readable)).toBe(true);
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'file', ChecksumMode: 'ENABLED' }));
    expect(head.ChecksumCRC32).toBe(crcOf(file));
    expect(head.ContentLength).toBe(file.length);
  });

  it('a held body the pump does not take (under the native size, or a part under 1 MiB) is read by the Node path, the socket read again', async () => {
    const c = jsSdk(gw);
    const before = nativeTransfers.put + nativeTransfers.part;
    const small = randomBytes(MiB + 3);
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'small-stream', Body: Readable.from([small]), ContentLength: small.length }));
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'small-part', ChecksumAlgorithm: 'CRC32' }));
    const tiny = randomBytes(1000);
    const p1 = await c.send(new UploadPartCommand({ Bucket: bucket, Key: 'small-part', UploadId, PartNumber: 1, Body: Readable.from([tiny]), ContentLength: tiny.length }));
    await c.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: 'small-part', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag, ChecksumCRC32: p1.ChecksumCRC32 }] } }));
    expect(nativeTransfers.put + nativeTransfers.part - before, 'the Node path took both').toBe(0);
    expect((await getBytes('small-stream')).equals(small)).toBe(true);
    expect((await getBytes('small-part')).equals(tiny)).toBe(true);
    // as curl (pyarrow's AWS C++ SDK) does: the head in one read, the body right after it in another, not waiting for
    // 100 Continue; then the next request on the connection
    const x = await connect();
    x.send(uploadHead('curl-like', tiny.length));
    await new Promise((r) => setTimeout(r, 50));
    x.send(transferChunked(awsBody(tiny), [10]));
    await x.until(/HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n/);
    const answered = x.text().length;
    x.send(getRequest('curl-like'));
    await x.until((t) => t.length >= answered + tiny.length && t.indexOf('\r\n\r\n', answered) + 4 + tiny.length <= t.length);
    expect(Buffer.from(x.text().slice(-tiny.length), 'latin1').equals(tiny)).toBe(true);
    expect(nativeTransfers.put + nativeTransfers.part - before).toBe(0);
    x.socket.destroy();
  });

  it("the SDK's stream parts (UploadPart) are sealed natively too, and the completed object reads back byte for byte", async () => {
    const c = jsSdk(gw);
    const [one, two] = [randomBytes(6 * MiB), randomBytes(2 * MiB + 3)];
    writeFileSync(path.join(dir, 'p1.bin'), one);
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mpu', ChecksumAlgorithm: 'CRC32' }));
    const before = nativeTransfers.part;
    const p1 = await c.send(new UploadPartCommand({ Bucket: bucket, Key: 'mpu', UploadId, PartNumber: 1, Body: createReadStream(path.join(dir, 'p1.bin')) }));
    const p2 = await c.send(new UploadPartCommand({ Bucket: bucket, Key: 'mpu', UploadId, PartNumber: 2, Body: Readable.from([two]), ContentLength: two.length }));
    expect(nativeTransfers.part - before, 'both parts went through the pump').toBe(2);
    expect(p1.ChecksumCRC32).toBe(crcOf(one));
    await c.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'mpu',
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag, ChecksumCRC32: p1.ChecksumCRC32 }, { PartNumber: 2, ETag: p2.ETag, ChecksumCRC32: p2.ChecksumCRC32 }] },
      }),
    );
    expect((await getBytes('mpu')).equals(Buffer.concat([one, two]))).toBe(true);
  });

  it('the pump stops where the body ends: transfer chunks cut across aws-chunks, extensions, trailer fields, then the pipelined next request and another on the same connection', async () => {
    const plain = randomBytes(9 * MiB + 1000);
    const aws = awsBody(plain);
    // outer chunks of odd sizes (one byte, across aws-chunk headers, the trailer split), then a trailer field of HTTP's own
    const wire = transferChunked(aws, [1, 7, 65_543, 65_600, 1_000_000, aws.length - 20, aws.length - 3]);
    // and chunk extensions, one after whitespace (RFC 9112: BWS ";")
    const withExt = Buffer.from(wire.toString('latin1').replace(/^1\r\n/, '1;a=b\r\n').replace('\r\n6\r\n', '\r\n6 \t;name="v"\r\n'), 'latin1');
    expect(withExt.length).toBe(wire.length + 15);
    const withTrailer = Buffer.concat([withExt.subarray(0, withExt.length - 2), Buffer.from('x-ignored: yes\r\n\r\n')]);
    const x = await connect();
    const before = nativeTransfers.put;
    x.send(uploadHead('framed', plain.length));
    await x.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
    // the next request right behind the body, before the answer: the pump must leave it in the socket for node:http
    x.send(Buffer.concat([withTrailer, Buffer.from(getRequest('warm'))]));
    await x.until(/HTTP\/1\.1 200 OK[\s\S]*HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 1\r\n[\s\S]*\r\n\r\nx$/i);
    expect(nativeTransfers.put - before).toBe(1);
    const answered = x.text().length;
    x.send(getRequest('framed'));
    await x.until(new RegExp(`content-length: ${plain.length}\r\n`, 'i'));
    const all = await x.until((t) => t.length >= answered + plain.length && t.indexOf('\r\n\r\n', answered) + 4 + plain.length <= t.length);
    const at = all.indexOf('\r\n\r\n', answered) + 4;
    expect(all.length - at, 'nothing after the body').toBe(plain.length);
    expect(Buffer.from(all.slice(at), 'latin1').equals(plain)).toBe(true);
    expect(x.socket.destroyed).toBe(false);
    x.socket.destroy();
  });

  it('a malformed transfer coding or a wrong CRC32 trailer commits nothing: 400 or BadDigest, the previous version stays, the gateway serves on', async () => {
    const old = randomBytes(1000);
    await jsSdk(gw).send(new PutObjectCommand({ Bucket: bucket, Key: 'kept', Body: old }));
    const plain = randomBytes(9 * MiB);
    const cases: [string, Buffer, RegExp][] = [
      // a bare LF after a chunk's data (llhttp refuses it too)
      ['bare LF', Buffer.concat([Buffer.from(`${(70_000).toString(16)}\r\n`), awsBody(plain).subarray(0, 70_000), Buffer.from('\n'), transferChunked(awsBody(plain).subarray(70_000), [])]), /400 Bad Request[\s\S]*IncompleteBody/],
      // a chunk size that is not hex
      ['bad size', Buffer.concat([transferChunked(awsBody(plain), [100_000]).subarray(0, 100_009), Buffer.from('zz\r\n')]), /400 Bad Request[\s\S]*IncompleteBody/],
      // whitespace after a size with no extension behind it
      ['whitespace', Buffer.concat([Buffer.from('10 \r\n'), transferChunked(awsBody(plain), [])]), /400 Bad Request[\s\S]*IncompleteBody/],
      // the CRC32 trailer of other bytes
      ['wrong trailer', transferChunked(awsBody(plain, crcOf(Buffer.from('other'))), [300_000]), /400 Bad Request[\s\S]*BadDigest/],
    ];
    for (const [what, wire, expected] of cases) {
      const before = nativeTransfers.put;
      const x = await connect();
      x.send(uploadHead('kept', plain.length));
      await x.until(/^HTTP\/1\.1 100 Continue/);
      x.send(wire);
      const answer = await x.until(expected);
      expect(nativeTransfers.put - before, what).toBe(1);
      expect(answer, what).not.toMatch(/keep-alive/i);
      await closedWithin(x, what);
      expect((await getBytes('kept')).equals(old), what).toBe(true);
    }
  });

  it('a body cut short in the transfer coding commits nothing, and the connection is dropped', async () => {
    const old = randomBytes(500);
    await jsSdk(gw).send(new PutObjectCommand({ Bucket: bucket, Key: 'cut', Body: old }));
    const plain = randomBytes(10 * MiB);
    const wire = transferChunked(awsBody(plain), [MiB]);
    const x = await connect();
    x.send(uploadHead('cut', plain.length));
    await x.until(/^HTTP\/1\.1 100 Continue/);
    x.send(wire.subarray(0, 5 * MiB));
    await new Promise((r) => setTimeout(r, 200));
    x.socket.end();
    await x.closed;
    expect((await getBytes('cut')).equals(old)).toBe(true);
  });

  it('a client that does not wait for 100 Continue: its body is sealed natively from the bytes that came with its head (the SDK given an http.Agent, a raw client)', async () => {
    // the SDK with an Agent instance of the caller's does not wait for 100 Continue: head and body go at once
    const c = jsSdk(gw, { agent: true });
    const file = randomBytes(12 * MiB + 77);
    writeFileSync(path.join(dir, 'agent.bin'), file);
    const before = nativeTransfers.put;
    const put = await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'agent', Body: createReadStream(path.join(dir, 'agent.bin')) }));
    expect(nativeTransfers.put - before, 'the SDK with its own Agent went through the pump').toBe(1);
    expect(put.ChecksumCRC32).toBe(crcOf(file));
    expect((await getBytes('agent')).equals(file)).toBe(true);
    c.destroy();
    // a raw client: the head and the body's first 100 KiB in one write (one read at the gateway, most likely), cut
    // inside a transfer chunk and inside an aws-chunk, the rest after
    const plain = randomBytes(9 * MiB + 5);
    const wire = transferChunked(awsBody(plain), [70_000, 200_000]);
    const x = await connect();
    x.send(Buffer.concat([Buffer.from(uploadHead('eager', plain.length)), wire.subarray(0, 100 * 1024)]));
    await new Promise((r) => setTimeout(r, 100));
    x.send(wire.subarray(100 * 1024));
    await x.until(/HTTP\/1\.1 200 OK[\s\S]*\r\n\r\n/);
    expect(nativeTransfers.put - before, 'the raw client went through the pump').toBe(2);
    x.socket.destroy();
    expect((await getBytes('eager')).equals(plain)).toBe(true);
    // refused before its body although the body is on its way: the answer still arrives (the body is drained)
    const z = await connect();
    z.send(Buffer.concat([Buffer.from(uploadHead('refused', plain.length, { secretKey: 'not-the-secret' })), wire.subarray(0, MiB)]));
    await z.until(/HTTP\/1\.1 403 [\s\S]*SignatureDoesNotMatch/);
    z.socket.destroy();
  });

  it('a head split before its blank line takes the Node path, and a waiting client answered before its body gets no 100 Continue and a closed connection', async () => {
    const plain = randomBytes(9 * MiB + 5);
    const before = nativeTransfers.put;

    // a head whose blank line is split over two reads, the second also carrying the whole (empty) body: node:http
    // has parsed the body, so the pump must not take the socket (it would wait for bytes that never come)
    const split = await connect();
    const head = uploadHead('split', plain.length);
    split.send(head.slice(0, -1));
    await new Promise((r) => setTimeout(r, 300));
    split.send('\n0\r\n\r\n');
    await split.until(/HTTP\/1\.1 400 /, 20_000);
    expect(nativeTransfers.put - before, 'node:http had read the body: not the pump').toBe(0);
    split.socket.destroy();

    const y = await connect();
    y.send(uploadHead('nobody', plain.length, { secretKey: 'not-the-secret' }));
    const answer = await y.until(/SignatureDoesNotMatch/);
    expect(answer).not.toMatch(/100 Continue/);
    expect(answer).toMatch(/connection: close/i);
    await closedWithin(y, 'refused before its body');
  });
});

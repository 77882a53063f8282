import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createPayloadDecoder, stripAwsChunked } from '../../src/s3/chunked.ts';
import { verifyRequest, type AuthResult } from '../../src/s3/sigv4.ts';
import { S3Error } from '../../src/errors.ts';
import { S3Client, PutObjectCommand } from '@aws-sdk/client-s3';
import { signingKeyFor } from '../../tools/sigv4.ts';
import { AK, SK, collect, crc32b64, encodeAwsChunked, lookup, splitAt } from './helpers.ts';

const AMZ = '20261128T120000Z';
const SCOPE = '20261128/us-east-1/s3/aws4_request';
const SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
const auth = (mode: AuthResult['payloadMode']): AuthResult => ({
  accessKey: AK, payloadMode: mode, signingKey: signingKeyFor(SK, '20261128'), seedSignature: SEED, scope: SCOPE, amzDate: AMZ, presigned: false, region: 'us-east-1',
});

async function decode(a: AuthResult, headers: Record<string, string>, pieces: Buffer[]) {
  const d = createPayloadDecoder(a, headers);
  const out = await collect(pieces, d);
  return { out, trailers: d.trailers };
}
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (e instanceof S3Error) return e.code;
    throw e;
  }
}

describe('AWS documentation vector (signed chunks, 64 KiB + 1 KiB of "a")', () => {
  it('verifies the seed signature and all chunk signatures', async () => {
    const headers = {
      host: 's3.amazonaws.com', 'x-amz-date': '20130524T000000Z', 'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      authorization: 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560', 'content-length': '66824',
    };
    const a = verifyRequest({ method: 'PUT', path: '/examplebucket/chunkObject.txt', query: '', headers }, lookup, { now: new Date('2013-05-24T00:00:30Z') });
    expect(a.payloadMode).toBe('streaming-signed');
    const body = Buffer.concat([
      Buffer.from('10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n'), Buffer.alloc(65536, 'a'), Buffer.from('\r\n'),
      Buffer.from('400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n'), Buffer.alloc(1024, 'a'), Buffer.from('\r\n'),
      Buffer.from('0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n'),
    ]);
    expect(body.length).toBe(66824);
    const { out } = await decode(a, headers, splitAt(body, [1, 100, 70000]));
    expect(out.equals(Buffer.alloc(66560, 'a'))).toBe(true);
    // ours encodes identically
    expect(encodeAwsChunked([Buffer.alloc(65536, 'a'), Buffer.alloc(1024, 'a')], { mode: 'streaming-signed', auth: a }).equals(body)).toBe(true);
  });
});

describe('payload decoder modes', () => {
  const payload = Buffer.from('The quick brown fox jumps over the lazy dog. '.repeat(100));
  const chunks = [payload.subarray(0, 1000), payload.subarray(1000, 3000), payload.subarray(3000)];
  const dl = { 'x-amz-decoded-content-length': String(payload.length) };

  it('signed plain body: pass-through and hash check', async () => {
    const { createHash } = await import('node:crypto');
    const a = { ...auth('signed'), payloadHash: createHash('sha256').update(payload).digest('hex') };
    expect((await decode(a, {}, [payload])).out.equals(payload)).toBe(true);
    expect(await codeOf(decode(a, {}, [Buffer.concat([payload, Buffer.from('x')])]))).toBe('XAmzContentSHA256Mismatch');
    expect(await codeOf(decode(a, { 'content-length': String(payload.length + 1) }, [payload]))).toBe('IncompleteBody');
  });
  it('unsigned plain body', async () => {
    expect((await decode(auth('unsigned'), {}, chunks)).out.equals(payload)).toBe(true);
  });
  it('streaming-signed: tampered data, tampered signature, truncation, length mismatch', async () => {
    const a = auth('streaming-signed');
    const body = encodeAwsChunked(chunks, { mode: 'streaming-signed', auth: a });
    expect((await decode(a, dl, [body])).out.equals(payload)).toBe(true);
    const t = Buffer.from(body);
    t[body.indexOf('fox') + 1] ^= 1;
    expect(await codeOf(decode(a, dl, [t]))).toBe('SignatureDoesNotMatch');
    const s = Buffer.from(body.toString('latin1').replace(/chunk-signature=([0-9a-f])/, (_m, c: string) => `chunk-signature=${c === '0' ? '1' : '0'}`), 'latin1');
    expect(await codeOf(decode(a, dl, [s]))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(decode(a, dl, [body.subarray(0, body.length - 5)]))).toBe('IncompleteBody');
    expect(await codeOf(decode(a, dl, [body.subarray(0, 500)]))).toBe('IncompleteBody');
    expect(await codeOf(decode(a, { 'x-amz-decoded-content-length': String(payload.length + 1) }, [body]))).toBe('IncompleteBody');
    expect(await codeOf(decode(a, { 'x-amz-decoded-content-length': String(payload.length - 1) }, [body]))).toBe('IncompleteBody');
    // reordered chunks: chain breaks
    const wrongSeed = { ...a, seedSignature: 'f'.repeat(64) };
    expect(await codeOf(decode(wrongSeed, dl, [body]))).toBe('SignatureDoesNotMatch');
  });
  it('never emits bytes of a chunk whose signature fails', async () => {
    const a = auth('streaming-signed');
    const body = encodeAwsChunked(chunks, { mode: 'streaming-signed', auth: a });
    const t = Buffer.from(body);
    t[body.lastIndexOf('lazy')] ^= 1; // inside the third chunk
    const d = createPayloadDecoder(a, dl);
    const got: Buffer[] = [];
    d.on('data', (b: Buffer) => got.push(b));
    const err = await new Promise((res) => { d.on('error', res); d.on('end', () => res(null)); Readable.from([t]).pipe(d); });
    expect(err).toBeInstanceOf(S3Error);
    expect(Buffer.concat(got).equals(payload.subarray(0, 3000))).toBe(true);
  });
  it('streaming-signed-trailer: checksum trailer signed; tampered trailer value / signature refused', async () => {
    const a = auth('streaming-signed-trailer');
    const crc = await crc32b64(payload);
    const body = encodeAwsChunked(chunks, { mode: 'streaming-signed-trailer', auth: a, trailers: [['x-amz-checksum-crc32', crc]] });
    const r = await decode(a, dl, [body]);
    expect(r.out.equals(payload)).toBe(true);
    expect(r.trailers.get('x-amz-checksum-crc32')).toBe(crc);
    expect(r.trailers.has('x-amz-trailer-signature')).toBe(false);
    const tv = Buffer.from(body.toString('latin1').replace(`x-amz-checksum-crc32:${crc}`, 'x-amz-checksum-crc32:AAAAAA=='), 'latin1');
    expect(await codeOf(decode(a, dl, [tv]))).toBe('SignatureDoesNotMatch');
    const ts = Buffer.from(body.toString('latin1').replace(/x-amz-trailer-signature:([0-9a-f])/, (_m, c: string) => `x-amz-trailer-signature:${c === '0' ? '1' : '0'}`), 'latin1');
    expect(await codeOf(decode(a, dl, [ts]))).toBe('SignatureDoesNotMatch');
    const nosig = Buffer.from(body.toString('latin1').replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, ''), 'latin1');
    expect(await codeOf(decode(a, dl, [nosig]))).toBe('SignatureDoesNotMatch');
  });
  it('streaming-unsigned-trailer: trailer parsed (value checked later by ChecksumSet)', async () => {
    const a = auth('streaming-unsigned-trailer');
    const crc = await crc32b64(payload);
    const body = encodeAwsChunked(chunks, { mode: 'streaming-unsigned-trailer', trailers: [['x-amz-checksum-crc32', crc]] });
    const r = await decode(a, dl, splitAt(body, [3, 5, 1001, 1002, body.length - 3]));
    expect(r.out.equals(payload)).toBe(true);
    expect(r.trailers.get('x-amz-checksum-crc32')).toBe(crc);
    // missing final blank line tolerated; no trailers at all accepted
    expect((await decode(a, dl, [body.subarray(0, body.length - 2)])).trailers.get('x-amz-checksum-crc32')).toBe(crc);
    const none = encodeAwsChunked(chunks, { mode: 'streaming-unsigned-trailer' });
    expect((await decode(a, dl, [none])).trailers.size).toBe(0);
  });
  it('limits: oversize chunk, long header line', async () => {
    const a = auth('streaming-unsigned-trailer');
    expect(await codeOf(decode(a, {}, [Buffer.from('1000001\r\n')]))).toBe('InvalidRequest');
    expect(await codeOf(decode(a, {}, [Buffer.from('1' + ';x'.repeat(3000))]))).toBe('InvalidRequest');
    expect(await codeOf(decode(a, {}, [Buffer.from('zz\r\n')]))).toBe('IncompleteBody');
  });
  it('stripAwsChunked', () => {
    expect(stripAwsChunked('aws-chunked')).toBeUndefined();
    expect(stripAwsChunked('gzip,aws-chunked')).toBe('gzip');
    expect(stripAwsChunked('aws-chunked, gzip')).toBe('gzip');
  });
});

describe('fuzz', () => {
  const modes = ['streaming-signed', 'streaming-signed-trailer', 'streaming-unsigned-trailer'] as const;
  it('random chunking of valid streams decodes identically', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(...modes), fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }), fc.array(fc.nat(4000), { maxLength: 12 }),
      async (mode, parts, cuts) => {
        const a = auth(mode);
        const chunks = parts.map((p) => Buffer.from(p));
        const payload = Buffer.concat(chunks);
        const trailers: Array<[string, string]> = mode === 'streaming-signed' ? [] : [['x-amz-checksum-crc32', await crc32b64(payload)]];
        const body = encodeAwsChunked(chunks, { mode, auth: a, trailers });
        const r = await decode(a, { 'x-amz-decoded-content-length': String(payload.length) }, splitAt(body, cuts));
        expect(r.out.equals(payload)).toBe(true);
        if (trailers.length) expect(r.trailers.get('x-amz-checksum-crc32')).toBe(trailers[0]![1]);
      }), { numRuns: 150 });
  });
  it('garbage and mutations only ever fail with S3Error, never hang', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(...modes, 'signed' as const, 'unsigned' as const), fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(400), { maxLength: 5 }),
      fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 }))),
      async (mode, garbage, cuts, mutation) => {
        const a = { ...auth(mode), payloadHash: mode === 'signed' ? 'a'.repeat(64) : undefined };
        let body = Buffer.from(garbage);
        if (mutation && mode !== 'signed' && mode !== 'unsigned') {
          // mutate a valid stream
          const valid = encodeAwsChunked([Buffer.from(garbage)], { mode, auth: a, trailers: [['x-amz-checksum-crc32', 'AAAAAA==']] });
          body = Buffer.from(valid);
          body[mutation[0] % body.length] ^= mutation[1];
        }
        const res = await Promise.race([
          decode(a, {}, splitAt(body, cuts)).then(() => 'ok', (e: unknown) => (e instanceof S3Error ? 's3error' : `other: ${String(e)}`)),
          new Promise((r) => setTimeout(() => r('hang'), 2000)),
        ]);
        expect(['ok', 's3error']).toContain(res);
      }), { numRuns: 300 });
  });
});

describe('real @aws-sdk/client-s3 streaming upload (aws-chunked, unsigned trailer)', () => {
  it('decodes the SDK-produced body and its CRC32 trailer', async () => {
    const payload = Buffer.alloc(200_000, 7);
    let captured: { method: string; path: string; headers: Record<string, string>; body: Buffer } | undefined;
    const client = new S3Client({
      region: 'us-east-1', endpoint: 'http://localhost:9000', forcePathStyle: true, credentials: { accessKeyId: AK, secretAccessKey: SK }, maxAttempts: 1,
      requestHandler: {
        handle: async (req: { method: string; path: string; headers: Record<string, string>; body: AsyncIterable<Uint8Array> }) => {
          const parts: Buffer[] = [];
          for await (const c of req.body) parts.push(Buffer.from(c));
          captured = { method: req.method, path: req.path, headers: req.headers, body: Buffer.concat(parts) };
          throw new Error('captured');
        },
      } as never,
    });
    await client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k y', Body: Readable.from([payload.subarray(0, 70_000), payload.subarray(70_000)]), ContentLength: payload.length })).catch(() => undefined);
    expect(captured).toBeDefined();
    const c = captured!;
    const a = verifyRequest({ method: c.method, path: c.path, query: 'x-id=PutObject', headers: c.headers }, lookup);
    expect(a.payloadMode).toBe('streaming-unsigned-trailer');
    const r = await decode(a, c.headers, splitAt(c.body, [10, 5000, 100_000]));
    expect(r.out.equals(payload)).toBe(true);
    expect(r.trailers.get('x-amz-checksum-crc32')).toBe(await crc32b64(payload));
  });
});

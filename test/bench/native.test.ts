/**
 * The native data plane (native/dataplane.c via bench/lib/dataplane.ts), built by scripts/build-native.mjs, between
 * real TCP sockets on loopback: a writer -> [socket whose fd the pump reads] -> pump -> [socket whose fd it writes]
 * -> a reader. Every mode's bytes are checked: the pass modes forward the input unchanged, seal equals node:crypto's
 * AES-256-GCM under docs/FORMAT.md 2.2's nonces and AADs, open inverts it, and a flipped byte makes open fail
 * without writing that chunk's plaintext. Then bench/lib/native-relay.ts in front of the shared MinIO: objects go
 * through it and back byte for byte, on one keep-alive connection (the socket handed to the pump and back).
 * Nothing here is about speed.
 */
import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import http from 'node:http';
import net from 'node:net';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { ciphertextSize, PREFIX_SIZE as PREFIX } from '../../src/format/layout.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNative } from '../../scripts/build-native.mjs';
import { answerGate, fdOf, loadDataplane, newGate, pump, type PumpError, type PumpOptions } from '../../bench/lib/dataplane.ts';
import { makeClient } from '../../bench/lib/s3.ts';
import { startMiddleProcess } from '../../bench/lib/targets.ts';
import { signHeaders } from '../../tools/sigv4.ts';
import fc from 'fast-check';
import { chunkStringToSign, createPayloadDecoder } from '../../src/s3/chunked.ts';
import { signString, type AuthResult } from '../../src/s3/sigv4.ts';
import { pollUntil } from '../../tools/wait.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { minioCoords, uniqueBucket } from '../helpers/s3.ts';

const CHUNK = 65536;
const sockets: net.Socket[] = [];
const servers: net.Server[] = [];

beforeAll(() => {
  buildNative({ quiet: true });
}, 120_000);

afterAll(() => {
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
});

/** A connected loopback pair: [the side that connected, the side accepted with libuv not reading]. */
async function tcpPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ pauseOnConnect: true });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r, j) => client.once('connect', r).once('error', j));
  const s = await accepted;
  sockets.push(client, s);
  return [client, s];
}

/** Stop libuv reading a socket whose fd the pump reads (what the relay does to a live connection). */
function stopReading(s: net.Socket): void {
  s.pause();
  const h = (s as unknown as { _handle: { reading: boolean; readStop(): number } })._handle;
  h.reading = false;
  h.readStop();
}

/**
 * writer -> [inSide] pump [outSide] -> reader. Returns the pump's outcome and everything the reader got (until
 * `expectOut` bytes — by default, after a success, the bytes the pump says it wrote — or the end of the stream).
 */
async function through(o: Omit<PumpOptions, 'inFd' | 'outFd'>, input: Buffer, opts: { end?: boolean; expectOut?: number } = {}) {
  const [writer, inSide] = await tcpPair();
  const [outSide, reader] = await tcpPair();
  stopReading(outSide); // the pump owns outSide's fd; nothing comes back on it anyway
  const got: Buffer[] = [];
  let gotLen = 0;
  let ended = false;
  reader.on('data', (d: Buffer) => (got.push(d), (gotLen += d.length))).on('end', () => (ended = true));
  reader.resume();
  const result = pump({ ...o, inFd: fdOf(inSide), outFd: fdOf(outSide) }).then(
    (r) => ({ ok: true as const, ...r }),
    (e: PumpError) => ({ ok: false as const, error: e }),
  );
  // in pieces of odd sizes, so chunks and tags straddle the socket reads
  for (let off = 0; off < input.length; off += 300_001) writer.write(input.subarray(off, off + 300_001));
  if (opts.end) writer.end();
  const outcome = await result;
  // What the pump says it wrote may still be on its way to the reader on a busy machine: wait for it (a clean-clone
  // CI compared a success's output 50 ms after the outcome and found it short).
  const want = opts.expectOut ?? (outcome.ok ? outcome.bytesOut : undefined);
  if (want !== undefined) await pollUntil(() => gotLen >= want, { timeoutMs: 30_000, what: 'output' });
  if (o.shutdown) await pollUntil(() => ended, { timeoutMs: 30_000, what: 'end of output' });
  else await new Promise((r) => setTimeout(r, 50)); // nothing more may arrive: checked by the exact equality below
  return { outcome, out: Buffer.concat(got), writer, inSide };
}

/** FORMAT.md 2.2 sealed with node:crypto: the reference the pump's seal must equal. */
function referenceSeal(pt: Buffer, deks: Buffer, aadPrefix: Buffer, part: number, blockSize: number): Buffer {
  const out: Buffer[] = [];
  for (let off = 0, g = 0; off < pt.length; off += CHUNK, g++) {
    const chunksPerBlock = blockSize / CHUNK;
    const b = Math.floor(g / chunksPerBlock);
    const c = g % chunksPerBlock;
    const piece = pt.subarray(off, off + CHUNK);
    const nonce = Buffer.alloc(12);
    nonce.writeUInt32BE(c, 8);
    const aad = Buffer.alloc(65);
    aadPrefix.copy(aad, 0);
    aad.writeUInt32BE(part, 52);
    aad.writeUInt32BE(b, 56);
    aad.writeUInt32BE(c, 60);
    aad[64] = off + piece.length === pt.length ? 1 : 0;
    const ci = createCipheriv('aes-256-gcm', deks.subarray(32 * b, 32 * b + 32), nonce);
    ci.setAAD(aad);
    out.push(ci.update(piece), ci.final(), ci.getAuthTag());
  }
  return Buffer.concat(out);
}

const sealedSize = (p: number) => p + 16 * Math.ceil(p / CHUNK);

describe('native data plane', () => {
  const input = randomBytes(5 * 1024 * 1024 + 12_345);

  it('pass and aes-pass forward exactly `length` bytes unchanged, bytes already read (pre) first, and leave what follows in the socket', async () => {
    for (const mode of ['pass', 'aes-pass'] as const) {
      const pre = input.subarray(0, 1000);
      const extra = Buffer.from('GET /next-request HTTP/1.1\r\n\r\n');
      const { outcome, out, inSide } = await through(
        { mode, length: input.length, pre, key: mode === 'aes-pass' ? randomBytes(32) : undefined },
        Buffer.concat([input.subarray(1000), extra]),
        { expectOut: input.length },
      );
      expect(outcome, mode).toMatchObject({ ok: true, bytesIn: input.length, bytesOut: input.length });
      expect(out.equals(input), mode).toBe(true);
      // the bytes after the body are still there for the socket's owner (a keep-alive connection's next request)
      const rest: Buffer[] = [];
      inSide.on('data', (d: Buffer) => rest.push(d));
      inSide.resume();
      await pollUntil(() => Buffer.concat(rest).length >= extra.length, { timeoutMs: 10_000, what: 'bytes after the body' });
      expect(Buffer.concat(rest).equals(extra), mode).toBe(true);
    }
  }, 120_000);

  it('aes-pass until end of file half-closes its output', async () => {
    const { outcome, out } = await through({ mode: 'aes-pass', length: -1, key: randomBytes(32), shutdown: true }, input, { end: true });
    expect(outcome).toMatchObject({ ok: true, bytesIn: input.length, bytesOut: input.length });
    expect(out.equals(input)).toBe(true);
  }, 120_000);

  it("seal equals node:crypto's AES-256-GCM with FORMAT.md's nonces and AADs, and open of it gives the input back", async () => {
    const blockSize = 1024 * 1024; // several blocks, so DEKs change and chunk indices restart
    const blocks = Math.ceil(input.length / blockSize);
    const deks = randomBytes(32 * blocks);
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(32), randomBytes(16)]);
    const part = 3;
    const expected = referenceSeal(input, deks, aadPrefix, part, blockSize);
    expect(expected.length).toBe(sealedSize(input.length));

    const sealed = await through({ mode: 'seal', length: input.length, deks, aadPrefix, partNumber: part, blockSize, pre: input.subarray(0, 70_000) }, input.subarray(70_000), { expectOut: expected.length });
    expect(sealed.outcome).toMatchObject({ ok: true, bytesIn: input.length, bytesOut: expected.length });
    expect(sealed.out.equals(expected)).toBe(true);

    const opened = await through({ mode: 'open', length: input.length, deks, aadPrefix, partNumber: part, blockSize }, expected, { expectOut: input.length });
    expect(opened.outcome).toMatchObject({ ok: true, bytesIn: expected.length, bytesOut: input.length });
    expect(opened.out.equals(input)).toBe(true);

    // the same ciphertext under another part number (another AAD) does not open: nothing is written
    const wrongPart = await through({ mode: 'open', length: input.length, deks, aadPrefix, partNumber: part + 1, blockSize }, expected);
    expect(wrongPart.outcome).toMatchObject({ ok: false, error: { code: 'ChunkAuthFailed', chunk: 0 } });
    expect(wrongPart.out.length).toBe(0);
  }, 120_000);

  it('seal checks the plaintext against the expected SHA-256 and CRC-32 before its last chunk: a mismatch never writes that chunk', async () => {
    const blockSize = 1024 * 1024;
    const deks = randomBytes(32 * Math.ceil(input.length / blockSize));
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(48)]);
    const expected = referenceSeal(input, deks, aadPrefix, 1, blockSize);
    const sha256 = createHash('sha256').update(input).digest();
    const crc32 = zlibCrc32(input);
    const lastSealed = (input.length % CHUNK || CHUNK) + 16;
    expect(loadDataplane().CRC32, 'node exports its zlib crc32').toBe(true);
    const seal = { mode: 'seal', length: input.length, deks, aadPrefix, blockSize } as const;
    const md5 = createHash('md5').update(input).digest();
    const good = await through({ ...seal, sha256, crc32, md5 }, input, { expectOut: expected.length });
    expect(good.outcome).toMatchObject({ ok: true, bytesOut: expected.length });
    expect(good.out.equals(expected)).toBe(true);
    const wrongSha = Buffer.from(sha256);
    wrongSha[31] ^= 1;
    for (const [o, code] of [[{ sha256: wrongSha, crc32 }, 'XAmzContentSHA256Mismatch'], [{ sha256, crc32: (crc32 ^ 1) >>> 0 }, 'BadDigest'], [{ crc32: (crc32 + 1) >>> 0 }, 'BadDigest'], [{ sha256, md5: Buffer.alloc(16) }, 'BadContentMD5']] as const) {
      const bad = await through({ ...seal, ...o }, input);
      expect(bad.outcome, code).toMatchObject({ ok: false, error: { code } });
      // (what was sealed before may or may not have been flushed: the caller closes that connection uncommitted)
      expect(bad.out.length, code).toBeLessThanOrEqual(expected.length - lastSealed);
      expect(bad.out.equals(expected.subarray(0, bad.out.length)), code).toBe(true);
    }
    // a changed plaintext byte anywhere is caught the same way
    const changed = Buffer.from(input);
    changed[12345] ^= 1;
    const tampered = await through({ ...seal, sha256, crc32 }, changed);
    expect(tampered.outcome).toMatchObject({ ok: false, error: { code: 'XAmzContentSHA256Mismatch' } });
    expect(tampered.out.length).toBeLessThanOrEqual(expected.length - lastSealed);
  }, 120_000);

  it('seal of an aws-chunked body: the framing read (extensions, a bare LF, trailing CRLFs), the CRC32 trailer checked before the last chunk, its CRC-32 returned', async () => {
    const blockSize = 1024 * 1024;
    const deks = randomBytes(32 * Math.ceil(input.length / blockSize));
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(48)]);
    const expected = referenceSeal(input, deks, aadPrefix, 1, blockSize);
    const crc = zlibCrc32(input);
    const crcB64 = (n: number) => {
      const v = Buffer.alloc(4);
      v.writeUInt32BE(n >>> 0);
      return v.toString('base64');
    };
    const lastSealed = (input.length % CHUNK || CHUNK) + 16;
    /** `input` framed as aws-chunks of odd sizes, then `tail` (the final chunk, trailer and blank line). */
    const frame = (tail: string, o: { ext?: boolean; bareLf?: boolean } = {}) => {
      const parts: Buffer[] = [];
      for (let off = 0, i = 0; off < input.length; i++) {
        const n = Math.min(input.length - off, [65536, 8192, 1_000_003, 77][i % 4]!);
        parts.push(Buffer.from(`${n.toString(16)}${o.ext && i === 1 ? ';chunk-ext=1' : ''}\r\n`), input.subarray(off, off + n), Buffer.from(o.bareLf && i === 2 ? '\n' : '\r\n'));
        off += n;
      }
      parts.push(Buffer.from(tail));
      return Buffer.concat(parts);
    };
    const seal = { mode: 'seal', length: input.length, deks, aadPrefix, blockSize, awsChunked: true } as const;
    const run = (framed: Buffer) => through({ ...seal, inputLength: framed.length, pre: framed.subarray(0, 5000) }, framed.subarray(5000));
    for (const [what, framed] of [
      ['CRC32 trailer', frame(`0\r\nx-amz-checksum-crc32:${crcB64(crc)}\r\n\r\n`)],
      ['extension, bare LF, trailing CRLF', frame(`0\r\nX-Amz-Checksum-Crc32: ${crcB64(crc)}\r\n\r\n\r\n`, { ext: true, bareLf: true })],
      ['no checksum trailer', frame('0\r\nx-other: 1\r\n\r\n')],
      ['no blank line after the trailer', frame(`0\r\nx-amz-checksum-crc32:${crcB64(crc)}\r\n`)],
    ] as const) {
      const r = await run(framed);
      expect(r.outcome, what).toMatchObject({ ok: true, bytesIn: framed.length, bytesOut: expected.length, crc32: crc });
      expect(r.out.equals(expected), what).toBe(true);
    }
    // refused, the last chunk never written
    for (const [what, framed, code] of [
      ['wrong CRC32', frame(`0\r\nx-amz-checksum-crc32:${crcB64(crc + 1)}\r\n\r\n`), 'BadDigest'],
      ['another checksum trailer', frame('0\r\nx-amz-checksum-sha256:AAAA\r\n\r\n'), 'InvalidTrailer'],
      ['a malformed CRC32 value', frame('0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n'), 'InvalidTrailer'],
      ['no final chunk', frame(''), 'IncompleteBody'],
      ['data after the end', frame('0\r\n\r\nxyz'), 'IncompleteBody'],
    ] as const) {
      const r = await run(framed);
      expect(r.outcome, what).toMatchObject({ ok: false, error: { code } });
      expect(r.out.length, what).toBeLessThanOrEqual(expected.length - lastSealed);
    }
    // framing errors before the end: a size that is not hex, data longer than the decoded length
    const badSize = Buffer.concat([Buffer.from('zz\r\n'), input]);
    expect((await through({ ...seal, inputLength: badSize.length }, badSize)).outcome).toMatchObject({ ok: false, error: { code: 'IncompleteBody' } });
    const long = Buffer.concat([Buffer.from(`${(input.length + 1).toString(16)}\r\n`), input, Buffer.from('x\r\n0\r\n\r\n')]);
    expect((await through({ ...seal, inputLength: long.length }, long)).outcome).toMatchObject({ ok: false, error: { code: 'IncompleteBody' } });
  }, 120_000);

  it('seal of a signed aws-chunked body: every chunk signature checked along the chain, the last chunk held until the final one verified', async () => {
    const blockSize = 1024 * 1024;
    const deks = randomBytes(32 * Math.ceil(input.length / blockSize));
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(48)]);
    const expected = referenceSeal(input, deks, aadPrefix, 1, blockSize);
    const lastSealed = (input.length % CHUNK || CHUNK) + 16;
    const key = randomBytes(32);
    const seed = randomBytes(32).toString('hex');
    const amzDate = '20261203T110740Z';
    const scope = '20261203/us-east-1/s3/aws4_request';
    const emptyHash = createHash('sha256').digest('hex');
    // SigV4's chunk signature (AWS's "signature calculations for streaming"), with node:crypto as the reference
    const sign = (prev: string, data: Buffer) =>
      createHmac('sha256', key).update(`AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${prev}\n${emptyHash}\n${createHash('sha256').update(data).digest('hex')}`).digest('hex');
    /** `input` in signed aws-chunks of odd sizes and the signed final chunk; `spoil` changes one chunk's header or data. */
    const frame = (o: { spoil?: (i: number, header: string, data: Buffer) => [string, Buffer]; tail?: string } = {}) => {
      const parts: Buffer[] = [];
      let prev = seed;
      const sizes: number[] = [];
      for (let off = 0, i = 0; off < input.length; i++) {
        const n = Math.min(input.length - off, [65536, 8192, 1_000_003, 77][i % 4]!);
        sizes.push(n);
        off += n;
      }
      let off = 0;
      for (let i = 0; i <= sizes.length; i++) {
        const data = i < sizes.length ? input.subarray(off, off + sizes[i]!) : Buffer.alloc(0);
        off += data.length;
        const sig = sign(prev, data);
        prev = sig;
        let header = `${data.length.toString(16)};chunk-signature=${sig}`;
        let body: Buffer = data;
        if (o.spoil) [header, body] = o.spoil(i, header, data);
        parts.push(Buffer.from(`${header}\r\n`), body, Buffer.from(i < sizes.length ? '\r\n' : (o.tail ?? '\r\n')));
      }
      return { framed: Buffer.concat(parts), chunks: sizes.length + 1 };
    };
    const seal = { mode: 'seal', length: input.length, deks, aadPrefix, blockSize, awsChunked: true, chunkKey: key, chunkSeed: Buffer.from(seed), chunkDateScope: Buffer.from(`${amzDate}\n${scope}`) } as const;
    const run = (framed: Buffer, extra: Partial<PumpOptions> = {}) => through({ ...seal, ...extra, inputLength: framed.length, pre: framed.subarray(0, 5000) }, framed.subarray(5000));
    const good = frame();
    for (const [what, framed] of [
      ['signed chunks', good.framed],
      ['spaces around the extension, a CRLF after the end', frame({ spoil: (_i, h, d) => [h.replace(';', ' ; '), d], tail: '\r\n\r\n' }).framed],
    ] as const) {
      const r = await run(framed);
      expect(r.outcome, what).toMatchObject({ ok: true, bytesIn: framed.length, bytesOut: expected.length });
      expect(r.out.equals(expected), what).toBe(true);
    }
    // a Content-MD5 and a CRC32 from the headers are checked too
    const md5 = createHash('md5').update(input).digest();
    expect((await run(good.framed, { md5, crc32: zlibCrc32(input) })).outcome).toMatchObject({ ok: true });
    expect((await run(good.framed, { md5: createHash('md5').update('x').digest() })).outcome).toMatchObject({ ok: false, error: { code: 'BadContentMD5' } });
    const flip = (d: Buffer) => {
      const b = Buffer.from(d);
      b[b.length >> 1] ^= 1;
      return b;
    };
    const last = good.chunks - 1;
    for (const [what, framed, code] of [
      ['a flipped data byte in the second chunk', frame({ spoil: (i, h, d) => [h, i === 1 ? flip(d) : d] }).framed, 'SignatureDoesNotMatch'],
      ['a flipped data byte in the last data chunk', frame({ spoil: (i, h, d) => [h, i === last - 1 ? flip(d) : d] }).framed, 'SignatureDoesNotMatch'],
      ['a wrong signature on the final chunk', frame({ spoil: (i, h, d) => [i === last ? h.replace(/.$/, (c) => (c === '0' ? '1' : '0')) : h, d] }).framed, 'SignatureDoesNotMatch'],
      ['an unsigned chunk', frame({ spoil: (i, h, d) => [i === 2 ? h.split(';')[0]! : h, d] }).framed, 'SignatureDoesNotMatch'],
      ['an uppercase chunk header', frame({ spoil: (i, h, d) => [i === 0 ? h.toUpperCase() : h, d] }).framed, 'SignatureDoesNotMatch'],
      ['another extension beside the signature', frame({ spoil: (i, h, d) => [i === 0 ? `${h};x=1` : h, d] }).framed, 'SignatureDoesNotMatch'],
      ['a trailer after the final chunk', frame({ tail: 'x-amz-checksum-crc32:AAAAAA==\r\n\r\n' }).framed, 'IncompleteBody'],
      ['no CRLF after the final chunk', frame({ tail: '' }).framed, 'IncompleteBody'],
    ] as const) {
      const r = await run(framed);
      expect(r.outcome, what).toMatchObject({ ok: false, error: { code } });
      expect(r.out.length, what).toBeLessThanOrEqual(expected.length - lastSealed);
    }
    // the chain starts at the request's signature: another seed fails the first chunk, before the second's data is sealed
    const other = await run(good.framed, { chunkSeed: Buffer.from(randomBytes(32).toString('hex')) });
    expect(other.outcome).toMatchObject({ ok: false, error: { code: 'SignatureDoesNotMatch' } });
    expect(other.out.length).toBeLessThanOrEqual(sealedSize(65536 + 8192));
    // the options come together, with awsChunked
    await expect(pump({ ...seal, inFd: 0, outFd: 1, inputLength: 10, chunkKey: randomBytes(16) })).rejects.toThrow(/chunkKey/);
    await expect(pump({ ...seal, inFd: 0, outFd: 1, awsChunked: false, inputLength: 10 })).rejects.toThrow(/chunkKey/);
  }, 120_000);

  it('signed aws-chunks: the pump and the Node path (src/s3/chunked.ts) accept and refuse the same bodies, with the same codes', async () => {
    const key = randomBytes(32);
    const auth: AuthResult = {
      accessKey: 'AK',
      payloadMode: 'streaming-signed',
      signingKey: key,
      seedSignature: randomBytes(32).toString('hex'),
      scope: '20261203/us-east-1/s3/aws4_request',
      amzDate: '20261203T120000Z',
      presigned: false,
      region: 'us-east-1',
    };
    const body = randomBytes(300_000);
    const deks = randomBytes(32);
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(48)]);
    const expected = referenceSeal(body, deks, aadPrefix, 1, 8 * 1024 * 1024);
    /** What the Node path's decoder makes of `framed`: the plaintext, or its error code. */
    const nodePath = (framed: Buffer) =>
      new Promise<{ ok: true; out: Buffer } | { ok: false; code: string }>((resolve) => {
        const d = createPayloadDecoder(auth, { 'x-amz-decoded-content-length': String(body.length) });
        const got: Buffer[] = [];
        d.on('data', (c: Buffer) => got.push(c));
        d.on('end', () => resolve({ ok: true, out: Buffer.concat(got) }));
        d.on('error', (e: Error & { code?: string }) => resolve({ ok: false, code: e.code ?? e.name }));
        d.end(framed);
      });
    const mutations = ['none', 'flip-data', 'flip-sig', 'no-final-crlf', 'trailer', 'spaces', 'bare-lf', 'trailing-crlfs', 'truncate', 'garbage-after', 'upper-ext', 'drop-sig'] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 64, max: 70_000 }), { minLength: 1, maxLength: 12 }),
        fc.constantFrom(...mutations),
        fc.nat(),
        async (sizes, mutation, at) => {
          // the body cut into chunks of these sizes (cycled), each signed along the chain, then the final chunk
          const chunks: Buffer[] = [];
          for (let off = 0, i = 0; off < body.length; i++) {
            const n = Math.min(body.length - off, sizes[i % sizes.length]!);
            chunks.push(body.subarray(off, off + n));
            off += n;
          }
          // the chunk a mutation hits: the final one a third of the time (its signature guards the commit), else any
          const victim = at % 3 === 0 ? chunks.length : at % (chunks.length + 1);
          let prev = auth.seedSignature;
          const parts: Buffer[] = [];
          for (const [i, c] of [...chunks, Buffer.alloc(0)].entries()) {
            const sig = signString(key, chunkStringToSign(auth.amzDate, auth.scope, prev, createHash('sha256').update(c).digest('hex')));
            prev = sig;
            let head = `${c.length.toString(16)};chunk-signature=${sig}`;
            let data: Buffer = c;
            let after = '\r\n';
            if (i === victim) {
              if (mutation === 'flip-data' && c.length) (data = Buffer.from(c))[at % c.length] ^= 1;
              if (mutation === 'flip-sig') head = head.replace(/.$/, (x) => (x === 'a' ? 'b' : 'a'));
              if (mutation === 'spaces') head = head.replace(';', ' ; ');
              if (mutation === 'upper-ext') head = head.replace('chunk-signature', 'Chunk-Signature');
              if (mutation === 'drop-sig') head = head.split(';')[0]!;
              if (mutation === 'bare-lf' && i < chunks.length) after = '\n';
            }
            if (i === chunks.length) {
              if (mutation === 'no-final-crlf') after = '';
              if (mutation === 'trailer') after = 'x-amz-checksum-crc32:AAAAAA==\r\n\r\n';
              if (mutation === 'trailing-crlfs') after = '\r\n\r\n\r\n';
              if (mutation === 'garbage-after') after = '\r\nxyz';
            }
            parts.push(Buffer.from(`${head}\r\n`), data, Buffer.from(after));
          }
          let framed = Buffer.concat(parts);
          if (mutation === 'truncate') framed = framed.subarray(0, at % framed.length);
          const node = await nodePath(framed);
          const pumped = await through(
            { mode: 'seal', length: body.length, deks, aadPrefix, blockSize: 8 * 1024 * 1024, awsChunked: true, inputLength: framed.length, chunkKey: key, chunkSeed: Buffer.from(auth.seedSignature), chunkDateScope: Buffer.from(`${auth.amzDate}\n${auth.scope}`) },
            framed,
          );
          const what = `${mutation} at ${at} of ${chunks.length} chunks`;
          if (node.ok) {
            expect(node.out.equals(body), what).toBe(true);
            expect(pumped.outcome, what).toMatchObject({ ok: true });
            expect(pumped.out.equals(expected), what).toBe(true);
          } else {
            expect(pumped.outcome, what).toMatchObject({ ok: false, error: { code: node.code } });
            // nothing committed: the last sealed chunk never left
            expect(pumped.out.length, what).toBeLessThan(expected.length);
          }
        },
      ),
      { numRuns: 100 },
    );
  }, 300_000);

  it('a flipped byte makes open fail at its chunk: the chunks before it are written, nothing of it or after it', async () => {
    const blockSize = 8 * 1024 * 1024;
    const deks = randomBytes(32);
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(48)]);
    const sealed = referenceSeal(input, deks, aadPrefix, 1, blockSize);
    for (const [chunk, at] of [[0, 5], [37, 100], [37, CHUNK + 3] /* in the tag */, [80, 10]] as const) {
      const bad = Buffer.from(sealed);
      bad[chunk * (CHUNK + 16) + at] ^= 0x40;
      const { outcome, out } = await through({ mode: 'open', length: input.length, deks, aadPrefix, partNumber: 1, blockSize }, bad, { expectOut: chunk * CHUNK });
      expect(outcome, `chunk ${chunk}`).toMatchObject({ ok: false, error: { code: 'ChunkAuthFailed', chunk } });
      expect(out.length, `chunk ${chunk}`).toBe(chunk * CHUNK);
      expect(out.equals(input.subarray(0, chunk * CHUNK)), `chunk ${chunk}`).toBe(true);
    }
  }, 120_000);

  /** `input` sealed as part 1 in blocks of `blockSize` under fresh DEKs (what the gate tests open). */
  function sealedInput(blockSize: number) {
    const deks = randomBytes(32 * Math.ceil(input.length / blockSize));
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(48)]);
    return { deks, aadPrefix, sealed: referenceSeal(input, deks, aadPrefix, 1, blockSize) };
  }

  /** writer -> [inSide] pump [outSide] -> got: the pump's two sockets, what the reader receives collected. */
  async function openPair() {
    const [writer, inSide] = await tcpPair();
    const [outSide, reader] = await tcpPair();
    stopReading(outSide);
    const got: Buffer[] = [];
    reader.on('data', (d: Buffer) => got.push(d)).resume();
    return { writer, inSide, outSide, got };
  }

  it('a key state change between blocks: open asks onGate before the next block and releases none of it unless told to go on', async () => {
    const blockSize = 1024 * 1024;
    const { deks, aadPrefix, sealed } = sealedInput(blockSize);
    const twoBlocks = sealedSize(2 * blockSize);
    for (const ok of [true, false]) {
      const { writer, inSide, outSide, got } = await openPair();
      const gate = newGate(7);
      const asked: [number, number][] = [];
      const p = pump({ mode: 'open', length: input.length, deks, aadPrefix, blockSize, inFd: fdOf(inSide), outFd: fdOf(outSide), gate, onGate: (block, generation) => {
        asked.push([block, generation]);
        answerGate(gate, ok);
      } }).then((r) => r, (e: PumpError) => e);
      // blocks 0 and 1 under the generation the pump started with: released without asking
      writer.write(sealed.subarray(0, twoBlocks));
      await pollUntil(() => Buffer.concat(got).length === 2 * blockSize, { timeoutMs: 30_000, what: 'two blocks' });
      expect(asked).toEqual([]);
      gate[0] = 8; // a revocation elsewhere moved the key service's generation
      writer.write(sealed.subarray(twoBlocks));
      const outcome = await p;
      await new Promise((r) => setTimeout(r, 50));
      expect(asked, `ok=${ok}`).toEqual([[2, 8]]); // asked once, before block 2, not again after (8 is now the one seen)
      if (ok) {
        expect(outcome).toMatchObject({ bytesIn: sealed.length, bytesOut: input.length });
        expect(Buffer.concat(got).equals(input)).toBe(true);
      } else {
        expect(outcome).toMatchObject({ code: 'KeyRevoked' });
        expect(Buffer.concat(got).equals(input.subarray(0, 2 * blockSize))).toBe(true);
      }
    }
  }, 120_000);

  it('the key state unconfirmed past freshUntil inside a block: open asks onGate before the next chunk and releases nothing more unless told to go on', async () => {
    const blockSize = 1024 * 1024;
    const { deks, aadPrefix, sealed } = sealedInput(blockSize);
    const first = 24; // block 1's chunk 8: the bound passes in the middle of a block
    for (const ok of [true, false]) {
      const { writer, inSide, outSide, got } = await openPair();
      const gate = newGate(7);
      const freshUntil = new BigInt64Array([process.hrtime.bigint() + 600_000_000_000n]);
      const asked: [number, number][] = [];
      const p = pump({ mode: 'open', length: input.length, deks, aadPrefix, blockSize, inFd: fdOf(inSide), outFd: fdOf(outSide), gate, freshUntil, onGate: (block, generation) => {
        asked.push([block, generation]);
        // what a recheck that succeeded leaves behind: the epoch confirmed again
        if (ok) freshUntil[0] = process.hrtime.bigint() + 600_000_000_000n;
        answerGate(gate, ok);
      } }).then((r) => r, (e: PumpError) => e);
      writer.write(sealed.subarray(0, first * (CHUNK + 16)));
      await pollUntil(() => Buffer.concat(got).length === first * CHUNK, { timeoutMs: 30_000, what: `${first} chunks` });
      expect(asked).toEqual([]);
      freshUntil[0] = process.hrtime.bigint() - 1n; // the last confirmation is older than the bound now
      writer.write(sealed.subarray(first * (CHUNK + 16)));
      const outcome = await p;
      await new Promise((r) => setTimeout(r, 50));
      expect(asked, `ok=${ok}`).toEqual([[1, 7]]); // once, before chunk 8 of block 1 (the gate itself never moved)
      if (ok) {
        expect(outcome).toMatchObject({ bytesIn: sealed.length, bytesOut: input.length });
        expect(Buffer.concat(got).equals(input)).toBe(true);
      } else {
        expect(outcome).toMatchObject({ code: 'KeyRevoked' });
        expect(Buffer.concat(got).equals(input.subarray(0, first * CHUNK))).toBe(true);
      }
    }
  }, 120_000);

  it('a ranged open reads only the sealed chunks of [from, to), starts mid-block under that block\'s DEK and position, and writes exactly those bytes', async () => {
    const blockSize = 1024 * 1024; // 16 chunks a block
    const deks = randomBytes(32 * Math.ceil(input.length / blockSize));
    const aadPrefix = Buffer.concat([Buffer.from('LKC1'), randomBytes(48)]);
    const part = 2;
    const sealed = referenceSeal(input, deks, aadPrefix, part, blockSize);
    const sealedAt = (plain: number) => plain + 16 * Math.ceil(plain / CHUNK); // sealed offset of a chunk boundary
    const spanOf = (from: number, to: number) => {
      const first = Math.floor(from / CHUNK) * CHUNK;
      const end = Math.min(input.length, Math.ceil(to / CHUNK) * CHUNK);
      return sealed.subarray(sealedAt(first), sealedAt(end));
    };
    const cases: [number, number][] = [
      [0, input.length], // the whole part
      [10, 20], // inside chunk 0
      [CHUNK - 5, CHUNK + 5], // across a chunk boundary
      [3 * blockSize + 3 * CHUNK + 7, 3 * blockSize + 3 * CHUNK + 8], // one byte, inside block 3
      [blockSize - 100, 2 * blockSize + 100], // block 0's last chunk to block 2's first: three DEKs
      [input.length - 12_345 - 10, input.length], // the last, partial chunk (the final flag) and the one before it
      [5 * CHUNK, 9 * CHUNK], // whole chunks
    ];
    for (const [from, to] of cases) {
      const span = spanOf(from, to);
      const { outcome, out } = await through({ mode: 'open', length: input.length, from, to, deks, aadPrefix, partNumber: part, blockSize, pre: span.subarray(0, 33) }, span.subarray(33), { expectOut: to - from });
      expect(outcome, `${from}-${to}`).toMatchObject({ ok: true, bytesIn: span.length, bytesOut: to - from });
      expect(out.equals(input.subarray(from, to)), `${from}-${to}`).toBe(true);
    }
    // the chunks are bound to their position: chunk 5's sealed bytes offered as the chunk holding offset 6 x 64 KiB fail
    const moved = await through({ mode: 'open', length: input.length, from: 6 * CHUNK, to: 7 * CHUNK, deks, aadPrefix, partNumber: part, blockSize }, spanOf(5 * CHUNK, 6 * CHUNK));
    expect(moved.outcome).toMatchObject({ ok: false, error: { code: 'ChunkAuthFailed', chunk: 6 } });
    expect(moved.out.length).toBe(0);
    // a flipped byte in the range's third chunk: the first two chunks' asked-for bytes go out, nothing after
    const from = 20 * CHUNK + 1000;
    const span = Buffer.from(spanOf(from, from + 5 * CHUNK));
    span[2 * (CHUNK + 16) + 9] ^= 1;
    const bad = await through({ mode: 'open', length: input.length, from, to: from + 5 * CHUNK, deks, aadPrefix, partNumber: part, blockSize }, span, { expectOut: 2 * CHUNK - 1000 });
    expect(bad.outcome).toMatchObject({ ok: false, error: { code: 'ChunkAuthFailed', chunk: 22 } });
    expect(bad.out.equals(input.subarray(from, 22 * CHUNK))).toBe(true);
    // more input than the range's chunks is refused, not released
    const long = await through({ mode: 'open', length: input.length, from: 0, to: 10, deks, aadPrefix, partNumber: part, blockSize, pre: spanOf(0, CHUNK + 1) }, Buffer.alloc(0));
    expect(long.outcome).toMatchObject({ ok: false, error: { code: 'TrailingData' } });
  }, 120_000);

  it('input that ends early is UnexpectedEOF; a control flag stops a pump that waits for input', async () => {
    const early = await through({ mode: 'open', length: input.length, deks: randomBytes(32), aadPrefix: randomBytes(52) }, Buffer.alloc(0), { end: true });
    expect(early.outcome).toMatchObject({ ok: false, error: { code: 'UnexpectedEOF' } });

    const control = new Int32Array(1);
    const [writer, inSide] = await tcpPair();
    const [outSide, reader] = await tcpPair();
    stopReading(outSide);
    reader.resume();
    const p = pump({ mode: 'aes-pass', key: randomBytes(32), length: 1 << 20, inFd: fdOf(inSide), outFd: fdOf(outSide), control }).catch((e: PumpError) => e);
    writer.write(randomBytes(1000));
    Atomics.store(control, 0, 1);
    const e = await p;
    expect(e).toMatchObject({ code: 'Stopped' });
    expect((e as PumpError).bytesIn).toBeLessThanOrEqual(1000);
  }, 60_000);

  it('bad options are refused at the call, before any thread starts', async () => {
    const [, inSide] = await tcpPair();
    const fd = fdOf(inSide);
    await expect(pump({ mode: 'seal', length: 100, inFd: fd, outFd: fd, deks: randomBytes(31), aadPrefix: randomBytes(52) })).rejects.toThrow(/deks/);
    await expect(pump({ mode: 'open', length: 100, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(51) })).rejects.toThrow(/aadPrefix/);
    await expect(pump({ mode: 'seal', length: -1, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(52) })).rejects.toThrow(/length/);
    await expect(pump({ mode: 'aes-pass', length: 1, inFd: fd, outFd: fd })).rejects.toThrow(/key/);
    await expect(pump({ mode: 'bogus' as 'pass', length: 1, inFd: fd, outFd: fd })).rejects.toThrow(/mode/);
    const open = { mode: 'open', length: 100, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(52) } as const;
    for (const [from, to] of [[10, 10], [-1, 5], [0, 101], [50, 40]]) await expect(pump({ ...open, from, to }), `${from}-${to}`).rejects.toThrow(/from, to/);
    await expect(pump({ mode: 'pass', length: 100, inFd: fd, outFd: fd, from: 0, to: 10 })).rejects.toThrow(/from, to/);
    await expect(pump({ ...open, sha256: randomBytes(32) })).rejects.toThrow(/sha256/);
    await expect(pump({ mode: 'seal', length: 100, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(52), sha256: randomBytes(31) })).rejects.toThrow(/sha256/);
    await expect(pump({ mode: 'seal', length: 100, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(52), crc32: 2 ** 32 })).rejects.toThrow(/crc32/);
    await expect(pump({ mode: 'seal', length: 100, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(52), awsChunked: true })).rejects.toThrow(/awsChunked/);
    await expect(pump({ ...open, md5: randomBytes(16) })).rejects.toThrow(/md5/);
    const gated = { ...open, gate: newGate(0), onGate: () => {} };
    await expect(pump({ ...open, freshUntil: new BigInt64Array(1) })).rejects.toThrow(/freshUntil/); // without a gate
    await expect(pump({ ...gated, freshUntil: new Int32Array(2) as unknown as BigInt64Array })).rejects.toThrow(/freshUntil/);
    await expect(pump({ ...gated, mode: 'seal', freshUntil: new BigInt64Array(1) })).rejects.toThrow(/freshUntil/);
    await expect(pump({ mode: 'seal', length: 100, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(52), awsChunked: true, inputLength: 200, crc32: 1 })).rejects.toThrow(/awsChunked/);
    // chunked transfer coding: instead of inputLength, with awsChunked
    const sealChunked = { mode: 'seal' as const, length: 100, inFd: fd, outFd: fd, deks: randomBytes(32), aadPrefix: randomBytes(52), awsChunked: true };
    await expect(pump({ ...sealChunked, inputLength: 200, httpChunked: true })).rejects.toThrow(/awsChunked/);
    await expect(pump({ ...sealChunked, awsChunked: false, httpChunked: true })).rejects.toThrow(/httpChunked/);
    // a signed trailer: with the chunk signing inputs, its CRC32 in the trailer, not declared
    await expect(pump({ ...sealChunked, inputLength: 200, signedTrailer: true })).rejects.toThrow(/signedTrailer/);
    const signing = { chunkKey: randomBytes(32), chunkSeed: Buffer.alloc(64, 'a'), chunkDateScope: Buffer.from('20261203T000000Z\n20261203/us-east-1/s3/aws4_request') };
    await expect(pump({ ...sealChunked, inputLength: 200, ...signing, signedTrailer: true, crc32: 1 })).rejects.toThrow(/signedTrailer/);
  });
});

describe('native-relay.ts in front of MinIO', () => {
  const relays: { child: { kill(): boolean } }[] = [];
  afterAll(() => {
    for (const r of relays) r.child.kill();
  });

  /** A signed request on `agent`; the client's signature is for the relay's host (the http modes re-sign). */
  function send(agent: http.Agent, port: number, method: 'GET' | 'PUT', path: string, body?: Buffer): Promise<{ status: number; body: Buffer; reused: boolean; complete: boolean }> {
    const m = minioCoords();
    const { headers } = signHeaders(m, { method, host: `127.0.0.1:${port}`, path, payload: 'UNSIGNED-PAYLOAD', headers: body ? { 'content-length': String(body.length) } : {} });
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
        const got: Buffer[] = [];
        const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(got), reused: req.reusedSocket, complete: res.complete });
        // a body cut short ends in 'error' or 'close' without 'end': what arrived is still what is checked
        res.on('data', (d: Buffer) => got.push(d)).on('end', done).on('error', done).on('close', done);
      });
      req.on('error', reject);
      if (body) for (let off = 0; off < body.length; off += 1 << 20) req.write(body.subarray(off, off + (1 << 20)));
      req.end();
    });
  }

  for (const mode of ['http-native', 'http-native-aes', 'http-native-seal', 'tcp-native-aes']) {
    it(`${mode}: PUT and GET move the exact bytes, small and large, on one keep-alive connection`, async () => {
      const m = minioCoords();
      const bucket = uniqueBucket('native');
      await makeClient(m).send(new CreateBucketCommand({ Bucket: bucket }));
      const r = await startMiddleProcess('bench/lib/native-relay.ts', mode, m);
      relays.push(r);
      const port = Number(new URL(r.endpoint).port);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      // small (the whole body arrives with the head) and large (most of it read by the pump), interleaved
      const bodies = [randomBytes(3 * 1024 * 1024 + 77), randomBytes(1000), randomBytes(9 * 1024 * 1024 + 5)];
      const results: { status: number; reused: boolean }[] = [];
      for (const [i, b] of bodies.entries()) {
        const put = await send(agent, port, 'PUT', `/${bucket}/k${i}`, b);
        expect(put.status, `${mode} PUT ${i}: ${put.body.toString()}`).toBe(200);
        const get = await send(agent, port, 'GET', `/${bucket}/k${i}`);
        expect(get.status, `${mode} GET ${i}`).toBe(200);
        expect(get.body.length, `${mode} GET ${i}`).toBe(b.length);
        expect(get.body.equals(b), `${mode} GET ${i}`).toBe(true);
        results.push(put, get);
      }
      // a backend error is passed on, and the connection still carries the next request
      const missing = await send(agent, port, 'GET', `/${bucket}/nothing-here`);
      expect(missing.status).toBe(404);
      expect(missing.body.toString()).toContain('NoSuchKey');
      const again = await send(agent, port, 'GET', `/${bucket}/k1`);
      expect(again.body.equals(bodies[1])).toBe(true);
      results.push(missing, again);
      // every request after the first went over the first one's connection
      expect(results.map((x) => x.reused)).toEqual([false, ...results.slice(1).map(() => true)]);
      agent.destroy();

      if (mode === 'http-native-seal') {
        // what the backend holds is lakecrypt's format: prefix, then sealed chunks, no plaintext
        const s3 = makeClient(m);
        const stored = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'k0' }))).Body!.transformToByteArray());
        expect(stored.length).toBe(ciphertextSize(bodies[0].length));
        expect(stored.subarray(0, 9).toString('latin1')).toBe('LKCRYPTD\x01');
        expect(stored.includes(bodies[0].subarray(0, 64))).toBe(false);
        // one flipped byte in the stored ciphertext: the GET never delivers the object (cut short, not wrong)
        stored[PREFIX + 3 * 65552 + 10] ^= 1;
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'k0', Body: stored }));
        const tampered = await send(new http.Agent(), port, 'GET', `/${bucket}/k0`);
        expect(tampered.complete).toBe(false);
        expect(tampered.body.length).toBeLessThanOrEqual(3 * 65536); // nothing from the failed chunk on
        expect(tampered.body.equals(bodies[0].subarray(0, tampered.body.length))).toBe(true);
      }
    }, 120_000);
  }

  it('a backend connection the backend closed while idle is not reused: the next PUT and GET still go through', async () => {
    const m = minioCoords();
    const bucket = uniqueBucket('native-idle');
    await makeClient(m).send(new CreateBucketCommand({ Bucket: bucket }));
    // a node:http proxy closes idle keep-alive connections after 5 s (its keepAliveTimeout), as MinIO does after its own
    const proxy = await startFaultProxy(m.endpoint);
    try {
      const r = await startMiddleProcess('bench/lib/native-relay.ts', 'http-native-aes', { ...m, endpoint: proxy.endpoint });
      relays.push(r);
      const port = Number(new URL(r.endpoint).port);
      const body = randomBytes(2 * 1024 * 1024 + 3);
      for (const round of [1, 2]) {
        const agent = new http.Agent({ keepAlive: false });
        const put = await send(agent, port, 'PUT', `/${bucket}/idle`, body);
        expect(put.status, `round ${round}: ${put.body.toString()}`).toBe(200);
        const get = await send(agent, port, 'GET', `/${bucket}/idle`);
        expect(get.body.equals(body), `round ${round}`).toBe(true);
        if (round === 1) await new Promise((res) => setTimeout(res, 7000)); // past the proxy's 5 s idle time-out
      }
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

import { Readable, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { S3Error } from '../../src/errors.ts';
import {
  DEFAULT_BLOCK_SIZE, blockCount, closeCryptoPool, createEncryptStream, newDeks, openHeader, sealHeader,
} from '../../src/engine/index.ts';
import { C, encryptObject, pieces, readRange } from './helpers.ts';

afterAll(() => closeCryptoPool());
const B = 2 * C; // 128 KiB blocks keep multi-block cases small

describe('round trip by size (blockSize 128 KiB)', () => {
  const sizes = [0, 1, C - 1, C, C + 1, B - 1, B, B + 1, 3 * B + 7];
  it.for(sizes.flatMap((s) => [[s, 0], [s, 2]]))('%i bytes, threads %i', async ([size, threads]) => {
    const o = await encryptObject([size], B, { threads });
    expect(o.ct.length).toBe(32 + size + 16 * Math.ceil(size / C));
    if (size === 0) return;
    const { out, err } = await readRange(o, 0, size - 1, { threads });
    expect(err).toBeUndefined();
    expect(out.equals(o.pt)).toBe(true);
  });
  it('pool and inline produce identical ciphertext', async () => {
    const o = await encryptObject([3 * B + 7], B, { threads: 0 });
    const enc = createEncryptStream({ dataset: 'ds', oid: o.h.oid, partNumber: 1, plaintextSize: o.pt.length, blockSize: B, deks: o.h.parts[0].deks as Buffer[], withPrefix: true, threads: 2 });
    const chunks: Buffer[] = [];
    for await (const c of pieces(o.pt, 4096).pipe(enc)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(o.ct)).toBe(true);
  });
  it.for([1, 7, 16, 17, 4096, C - 1, C, C + 15, C + 16, C + 17, 2 * C + 40, 1 << 20])('input pieces of %i bytes (chunks and tags split across writes), inline encrypt, inline and pool decrypt', async (piece) => {
    const o = await encryptObject([3 * B + 7], B, { threads: 0, piece });
    expect(o.ct.length).toBe(32 + o.pt.length + 16 * Math.ceil(o.pt.length / C));
    for (const threads of [0, 2]) {
      const { out, err } = await readRange(o, 0, o.pt.length - 1, { threads, piece });
      expect(err).toBeUndefined();
      expect(out.equals(o.pt)).toBe(true);
      const mid = await readRange(o, C - 3, 2 * C + 5, { threads, piece });
      expect(mid.out.equals(o.pt.subarray(C - 3, 2 * C + 6))).toBe(true);
    }
  });
  it('default 8 MiB blocks: 8 MiB + 1 byte, two DEKs, pool', async () => {
    const o = await encryptObject([DEFAULT_BLOCK_SIZE + 1], DEFAULT_BLOCK_SIZE, { threads: 2, piece: 1 << 20 });
    expect(o.h.parts[0].deks).toHaveLength(2);
    const whole = await readRange(o, 0, DEFAULT_BLOCK_SIZE, { threads: 2 });
    expect(whole.out.equals(o.pt)).toBe(true);
    const edge = await readRange(o, DEFAULT_BLOCK_SIZE - 1, DEFAULT_BLOCK_SIZE, { threads: 2 });
    expect(edge.out.equals(o.pt.subarray(DEFAULT_BLOCK_SIZE - 1))).toBe(true);
  });
});

describe('ranges', async () => {
  // Multipart: part 1 = 5 chunks (3 blocks), part 2 = 2 chunks + 17 bytes, part 3 = 1 byte; non-contiguous numbers.
  const o = await encryptObject([5 * C, 2 * C + 17, 1], B, { partNumbers: [2, 5, 9] });
  const single = await encryptObject([3 * B + 7], B);
  const P1 = 5 * C;
  const T = o.pt.length;
  const shapes: [string, number, number][] = [
    ['first byte', 0, 0], ['last byte', T - 1, T - 1], ['whole', 0, T - 1], ['suffix 100', T - 100, T - 1],
    ['inside one chunk', 10, 20], ['exact chunk', C, 2 * C - 1], ['across chunk edge', C - 1, C],
    ['across block edge', B - 1, B], ['across part edge', P1 - 1, P1], ['across two part edges', P1 - 1, T - 1],
    ['last part only', T - 1, T - 1], ['many blocks', 1, T - 2],
  ];
  it.for(shapes.flatMap((s) => [[...s, 0], [...s, 2]] as const))('%s [%i, %i] threads %i', async ([, s, e, threads]) => {
    const { out, err } = await readRange(o, s, e, { threads });
    expect(err).toBeUndefined();
    expect(out.equals(o.pt.subarray(s, e + 1))).toBe(true);
  });
  it('all start/end pairs on a grid of boundaries (single part)', async () => {
    const t = single.pt.length;
    const pts = [0, 1, C - 1, C, C + 1, B - 1, B, B + 1, 2 * B, t - 2, t - 1];
    for (const s of pts) for (const e of pts) {
      if (e < s) continue;
      const { out, err } = await readRange(single, s, e, { piece: 5000 });
      expect(err).toBeUndefined();
      expect(out.equals(single.pt.subarray(s, e + 1))).toBe(true);
    }
  });
});

describe('encrypt input length', () => {
  const make = (): ReturnType<typeof createEncryptStream> =>
    createEncryptStream({ dataset: 'd', oid: Buffer.alloc(16, 1), partNumber: 1, plaintextSize: 1000, blockSize: B, deks: newDeks(1), withPrefix: true, threads: 0 });
  it.for([999, 1001, 0])('%i bytes for a declared 1000 is IncompleteBody', async (n) => {
    let err: unknown;
    try {
      for await (const _ of Readable.from([Buffer.alloc(n)]).pipe(make())) { /* drain */ }
    } catch (e) { err = e; }
    expect(err).toBeInstanceOf(S3Error);
    expect((err as S3Error).code).toBe('IncompleteBody');
  });
  it('rejects a DEK table that does not match the size', () => {
    expect(() => createEncryptStream({ dataset: 'd', oid: Buffer.alloc(16), partNumber: 1, plaintextSize: B + 1, blockSize: B, deks: newDeks(1), withPrefix: true })).toThrow(RangeError);
  });
});

describe('back-pressure', () => {
  it.for([0, 2])('a consumer that never reads stops the producer (threads %i)', async (threads) => {
    const size = 256 * 1024 * 1024;
    let produced = 0;
    const src = new Readable({ read() { const n = Math.min(1 << 20, size - produced); produced += n; this.push(n ? Buffer.alloc(n) : null); } });
    const enc = createEncryptStream({ dataset: 'd', oid: Buffer.alloc(16), partNumber: 1, plaintextSize: size, blockSize: DEFAULT_BLOCK_SIZE, deks: newDeks(blockCount(size, DEFAULT_BLOCK_SIZE)), withPrefix: true, threads });
    src.pipe(enc); // nobody reads enc
    await new Promise((r) => setTimeout(r, 400));
    expect(produced).toBeLessThan(24 * 1024 * 1024);
    // then a consumer drains it all
    let got = 0;
    await new Promise<void>((res, rej) => enc.pipe(new Writable({ write(c: Buffer, _e, cb) { got += c.length; cb(); } })).on('finish', res).on('error', rej));
    expect(got).toBe(32 + size + 16 * (size / C));
  });
});

describe('header round trip', () => {
  it('keeps every field, including erased DEKs and metadata', async () => {
    const o = await encryptObject([B + 1, 5], B, { partNumbers: [1, 4] });
    o.h.parts[0].deks[1] = null;
    o.h.meta = { contentType: 'text/plain', contentEncoding: 'gzip', contentDisposition: 'inline', cacheControl: 'max-age=1', contentLanguage: 'fr', expires: 'Wed, 21 Oct 2026 07:28:00 GMT', user: { 'a-b': 'ü €' } };
    o.h.checksums = { algorithm: 'SHA256', value: 'x==', type: 'COMPOSITE', parts: ['a', 'b'], md5: '00ff' };
    o.h.key = 'dir/ключ \u0000 nul';
    const kek = Buffer.alloc(32, 7);
    expect(openHeader(sealHeader(o.h, kek), { bucket: 'b', key: o.h.key }, kek)).toEqual(o.h);
  });
});

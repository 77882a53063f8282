import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MAX_HEADER_SIZE, closeCryptoPool, createDecryptStream, isFormatError, openHeader, peekHeader, planRange, sealHeader,
} from '../../src/engine/index.ts';
import { C, S, encryptObject, readRange } from './helpers.ts';

afterAll(() => closeCryptoPool());
const B = 2 * C;
const reason = (e: unknown): string | undefined => (isFormatError(e) ? e.reason : e === undefined ? undefined : String(e));
const flip = (b: Buffer, at: number): Buffer => { const c = Buffer.from(b); c[at] ^= 0x10; return c; };

describe('data tampering', async () => {
  const o = await encryptObject([3 * C, 2 * C + 9], B); // part 1: chunks 0-2, part 2: chunks 3-5
  const other = await encryptObject([3 * C, 2 * C + 9], B); // same dataset and layout, other oid and DEKs
  const T = o.pt.length;
  const chunkAt = (g: number): number => 32 + g * S;

  it.for([0, 1, 2, 3, 4, 5].flatMap((g) => [[g, 0], [g, 2]]))('bit flip in chunk %i (threads %i): ChunkAuthFailed, nothing of it released', async ([g, threads]) => {
    const bad = { h: o.h, ct: flip(o.ct, chunkAt(g) + 5) };
    const { out, err } = await readRange(bad, 0, T - 1, { threads });
    expect(reason(err)).toBe('ChunkAuthFailed');
    expect(out.length).toBeLessThanOrEqual(g * C);
    expect(out.equals(o.pt.subarray(0, out.length))).toBe(true);
  });
  it('a range that does not touch the damaged chunk still reads; one that does fails', async () => {
    const bad = { h: o.h, ct: flip(o.ct, chunkAt(4) + 1) };
    expect((await readRange(bad, 0, 4 * C - 1)).out.equals(o.pt.subarray(0, 4 * C))).toBe(true);
    expect(reason((await readRange(bad, 4 * C, 4 * C)).err)).toBe('ChunkAuthFailed');
  });
  it('reordered chunks within a block fail', async () => {
    const ct = Buffer.from(o.ct);
    o.ct.copy(ct, chunkAt(0), chunkAt(1), chunkAt(2));
    o.ct.copy(ct, chunkAt(1), chunkAt(0), chunkAt(1));
    expect(reason((await readRange({ h: o.h, ct }, 0, T - 1)).err)).toBe('ChunkAuthFailed');
  });
  it('a block swapped in from another object fails', async () => {
    const ct = Buffer.from(o.ct);
    other.ct.copy(ct, chunkAt(2), chunkAt(2), chunkAt(3)); // block 1 of part 1
    const { out, err } = await readRange({ h: o.h, ct }, 0, T - 1);
    expect(reason(err)).toBe('ChunkAuthFailed');
    expect(out.length).toBeLessThanOrEqual(2 * C);
    expect(out.equals(o.pt.subarray(0, out.length))).toBe(true);
  });
  it('parts swapped between objects of the same dataset fail, even with the other part table', async () => {
    const ct = Buffer.concat([o.ct.subarray(0, chunkAt(3)), other.ct.subarray(chunkAt(3))]);
    expect(reason((await readRange({ h: o.h, ct }, 3 * C, T - 1)).err)).toBe('ChunkAuthFailed');
    const h = { ...o.h, parts: [o.h.parts[0], other.h.parts[1]] };
    expect(reason((await readRange({ h, ct }, 3 * C, T - 1)).err)).toBe('ChunkAuthFailed'); // oid in AAD
  });
  it('truncation at a chunk boundary is caught by the last-chunk flag even if sizes were rewritten', async () => {
    const single = await encryptObject([3 * C], B); // blocks: [chunk 0, chunk 1], [chunk 2]
    const h = { ...single.h, parts: [{ ...single.h.parts[0], plaintextSize: 2 * C, deks: [single.h.parts[0].deks[0]] }] };
    const { out, err } = await readRange({ h, ct: single.ct.subarray(0, 32 + 2 * S) }, 0, 2 * C - 1);
    expect(reason(err)).toBe('ChunkAuthFailed'); // chunk 1 was not sealed as the last chunk of the part
    expect(out.length).toBeLessThanOrEqual(C); // only chunk 0 verified
    expect(out.equals(single.pt.subarray(0, out.length))).toBe(true);
  });
  it('truncated and extended inputs', async () => {
    const r = planRange(o.h, 0, T - 1);
    const run = async (input: Buffer): Promise<unknown> => {
      try { await buffer(Readable.from([input]).pipe(createDecryptStream({ header: o.h, start: 0, endInclusive: T - 1 }))); } catch (e) { return e; }
      return undefined;
    };
    expect(reason(await run(o.ct.subarray(0, r.cipherEnd)))).toBe('UnexpectedEOF');
    expect(reason(await run(o.ct.subarray(0, 20)))).toBe('UnexpectedEOF');
    expect(reason(await run(Buffer.concat([o.ct, Buffer.of(0)])))).toBe('TrailingData');
    expect(reason(await run(o.ct))).toBeUndefined();
  });
  it('a data object of another object (oid) is refused at the prefix', async () => {
    expect(reason((await readRange({ h: o.h, ct: other.ct }, 0, 10)).err)).toBe('OidMismatch');
  });
});

describe('revocation', async () => {
  const o = await encryptObject([3 * B], B);
  it('an erased DEK throws KeyRevoked before any stream exists, only for ranges touching it', async () => {
    const h = { ...o.h, parts: [{ ...o.h.parts[0], deks: [o.h.parts[0].deks[0], null, o.h.parts[0].deks[2]] }] };
    let err: unknown;
    try { createDecryptStream({ header: h, start: 0, endInclusive: 3 * B - 1 }); } catch (e) { err = e; }
    expect(reason(err)).toBe('DekErased');
    expect((err as { code: string; status: number }).code).toBe('KeyRevoked');
    expect((err as { status: number }).status).toBe(403);
    expect((await readRange({ h, ct: o.ct }, 2 * B, 3 * B - 1)).out.equals(o.pt.subarray(2 * B))).toBe(true);
  });
  it('isRevoked(part, block) is honoured up front', async () => {
    const { out, err } = await readRange(o, 0, 3 * B - 1, { isRevoked: (p, b) => p === 1 && b === 2 });
    expect(reason(err)).toBe('DekErased');
    expect(out.length).toBe(0);
  });
  it('a revocation seen mid-stream stops before the revoked block', async () => {
    let revoked = false;
    const r = planRange(o.h, 0, 3 * B - 1);
    const dec = createDecryptStream({ header: o.h, start: 0, endInclusive: 3 * B - 1, isRevoked: (_p, b) => revoked && b === 1 });
    const got: Buffer[] = [];
    // Block 0 goes in first; once all of it came out, the revocation of block 1 is seen, then the rest goes in.
    // (The stream may buffer several chunks, so the switch waits for the output, not for the write.)
    let gotBytes = 0;
    const blockOut = new Promise<void>((resolve) => dec.on('data', (b: Buffer) => { got.push(b); gotBytes += b.length; if (gotBytes >= B) resolve(); }));
    const done = new Promise<void>((resolve, reject) => { dec.on('end', resolve); dec.on('error', reject); });
    let err: unknown;
    dec.write(o.ct.subarray(r.cipherStart, chunkAtBlock(1)));
    await blockOut;
    revoked = true;
    dec.end(o.ct.subarray(chunkAtBlock(1), r.cipherEnd + 1));
    try { await done; } catch (e) { err = e; }
    expect(reason(err)).toBe('DekErased');
    expect(Buffer.concat(got).equals(o.pt.subarray(0, B))).toBe(true);
  });
  const chunkAtBlock = (b: number): number => 32 + b * 2 * S;
});

describe('header tampering', async () => {
  const o = await encryptObject([B + 1], B);
  const kek = Buffer.alloc(32, 3);
  const hb = sealHeader(o.h, kek);
  const loc = { bucket: 'b', key: 'k' };
  const open = (bytes: Buffer, l = loc, k = kek): string | undefined => {
    try { openHeader(bytes, l, k); } catch (e) { return reason(e); }
    return undefined;
  };
  it('every single-bit flip anywhere in the header is refused', () => {
    for (let at = 0; at < hb.length; at++) {
      const want = at < 8 ? 'BadMagic' : at === 8 ? 'UnsupportedVersion' : 'HeaderAuthFailed';
      expect([at, open(flip(hb, at))]).toEqual([at, want]);
    }
  });
  it('truncation at every length is refused', () => {
    for (let n = 0; n < hb.length; n++) expect(open(hb.subarray(0, n))).toBe(n < 98 ? 'HeaderTruncated' : 'HeaderAuthFailed');
  });
  it('a header moved to another key or bucket, or opened with another KEK, fails', () => {
    expect(open(hb)).toBeUndefined();
    expect(open(hb, { bucket: 'b', key: 'k2' })).toBe('HeaderAuthFailed');
    expect(open(hb, { bucket: 'b2', key: 'k' })).toBe('HeaderAuthFailed');
    expect(open(hb, { bucket: 'bk', key: '' })).toBe('HeaderAuthFailed'); // separator makes ("b","k") != ("bk","")
    expect(open(hb, loc, Buffer.alloc(32, 4))).toBe('HeaderAuthFailed');
  });
  it('headers swapped between objects at two keys both fail; a re-bound copy opens', () => {
    const other = sealHeader({ ...o.h, key: 'k2', oid: Buffer.alloc(16, 9) }, kek);
    expect(open(other, loc)).toBe('HeaderAuthFailed');
    expect(open(hb, { bucket: 'b', key: 'k2' })).toBe('HeaderAuthFailed');
    const copy = sealHeader({ ...o.h, key: 'k2' }, kek);
    expect(open(copy, { bucket: 'b', key: 'k2' })).toBeUndefined();
  });
  it('peekHeader reads fixed fields without the KEK and rejects bad magic', () => {
    expect(peekHeader(hb).keyNumber).toBe(1);
    expect(peekHeader(hb).oid).toEqual(o.h.oid);
    expect(() => peekHeader(flip(hb, 0))).toThrow(/BadMagic/);
  });
  it('limits: oversize header is HeaderMalformed; bad fields refuse to seal', () => {
    const big = Buffer.alloc(MAX_HEADER_SIZE + 1);
    hb.copy(big, 0, 0, 82);
    expect(open(big)).toBe('HeaderMalformed');
    expect(() => sealHeader({ ...o.h, blockSize: 1000 }, kek)).toThrow(RangeError);
    expect(() => sealHeader({ ...o.h, dataset: 'x'.repeat(1025) }, kek)).toThrow(RangeError);
    expect(() => sealHeader({ ...o.h, parts: [{ plaintextSize: B + 1, deks: [o.h.parts[0].deks[0]] }] }, kek)).toThrow(RangeError);
    expect(() => sealHeader({ ...o.h, keyNumber: 0 }, kek)).toThrow(RangeError);
  });
});

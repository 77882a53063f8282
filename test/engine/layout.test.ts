import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { blockCount, ciphertextSize, isFormatError, planRange, plaintextSize, type HeaderFields } from '../../src/engine/index.ts';
import { C, S } from './helpers.ts';

const reasonOf = (f: () => unknown): string | undefined => {
  try { f(); } catch (e) { return isFormatError(e) ? e.reason : String(e); }
  return undefined;
};

describe('ciphertextSize / plaintextSize', () => {
  it.for([
    [0, 32], [1, 49], [C - 1, 32 + C - 1 + 16], [C, 32 + S], [C + 1, 32 + S + 17], [2 * C, 32 + 2 * S], [8 * 1024 * 1024, 32 + 128 * S],
  ])('ciphertextSize(%i) = %i and back', ([p, c]) => {
    expect(ciphertextSize(p)).toBe(c);
    expect(plaintextSize(c)).toBe(p);
  });
  it.for([31, 33, 48, 32 + S + 1, 32 + S + 16, 32 + 7 * S + 3])('plaintextSize(%i) is InvalidCiphertextSize', (c) => {
    expect(reasonOf(() => plaintextSize(c))).toBe('InvalidCiphertextSize');
  });
  it('round-trips at and around every chunk boundary (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 80_000_000 }), fc.integer({ min: -1, max: 1 }), (k, d) => {
      const p = Math.max(0, k * C + d);
      expect(plaintextSize(ciphertextSize(p))).toBe(p);
      expect(ciphertextSize(p + 1)).toBeGreaterThan(ciphertextSize(p));
    }));
  });
  it('every ciphertext size is either the image of exactly one plaintext size or InvalidCiphertextSize (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 45 }), (c) => {
      const rest = (c - 32) % S;
      const impossible = c < 32 || (rest >= 1 && rest <= 16);
      if (impossible) expect(reasonOf(() => plaintextSize(c))).toBe('InvalidCiphertextSize');
      else expect(ciphertextSize(plaintextSize(c))).toBe(c);
    }));
  });
  it('blockCount', () => {
    expect([0, 1, 131072, 131073].map((p) => blockCount(p, 131072))).toEqual([0, 1, 1, 2]);
    expect(() => blockCount(1, 1000)).toThrow(RangeError);
    expect(() => blockCount(1, 16 * 1024 * 1024)).toThrow(RangeError);
  });
});

/** Model: walk every chunk of every part and list (plainStart, plainEnd, cipherStart, cipherEnd). */
function chunksOf(sizes: number[]): { ps: number; pe: number; cs: number; ce: number }[] {
  const out = [];
  let plain = 0;
  let cipher = 32;
  for (const size of sizes) {
    for (let o = 0; o < size; o += C) {
      const len = Math.min(C, size - o);
      out.push({ ps: plain + o, pe: plain + o + len - 1, cs: cipher, ce: cipher + len + 15 });
      cipher += len + 16;
    }
    plain += size;
  }
  return out;
}
const headerOf = (sizes: number[]): HeaderFields => ({
  version: 2, dataset: 'd', keyNumber: 1, oid: Buffer.alloc(16), bucket: 'b', key: 'k', state: 'final', createdAt: 0, blockSize: 2 * C, chunkSize: C,
  parts: sizes.map((s, i) => ({ partNumber: i + 1, plaintextSize: s, deks: Array.from({ length: blockCount(s, 2 * C) }, () => Buffer.alloc(32)) })),
  meta: { user: {} }, checksums: {},
});

describe('planRange', () => {
  it('matches a chunk-walking model for any layout and range (property)', () => {
    const layout = fc.array(fc.oneof(fc.integer({ min: 0, max: 5 * C }), fc.constantFrom(C, 2 * C, 3 * C, C - 1, C + 1)), { minLength: 1, maxLength: 5 })
      .filter((s) => s.reduce((a, b) => a + b, 0) > 0);
    fc.assert(fc.property(layout, fc.nat(), fc.nat(), (sizes, a, b) => {
      const total = sizes.reduce((x, y) => x + y, 0);
      const [s, e] = [a % total, b % total].sort((x, y) => x - y);
      const chunks = chunksOf(sizes);
      const first = chunks.findIndex((c) => c.pe >= s);
      const last = chunks.findIndex((c) => c.pe >= e);
      const r = planRange(headerOf(sizes), s, e);
      expect(r).toEqual({ cipherStart: first === 0 ? 0 : chunks[first].cs, cipherEnd: chunks[last].ce });
    }), { numRuns: 500 });
  });
  it('uses the single-stream size function for aligned multipart layouts', () => {
    const sizes = [3 * C, 2 * C, 1234];
    const total = 5 * C + 1234;
    expect(planRange(headerOf(sizes), 0, total - 1)).toEqual({ cipherStart: 0, cipherEnd: ciphertextSize(total) - 1 });
  });
  it.for([[-1, 0], [0, 5 * C], [3, 2], [0.5, 1]])('range %i-%i is InvalidRange', ([s, e]) => {
    let code: string | undefined;
    try { planRange(headerOf([5 * C]), s, e); } catch (err) { code = (err as { code?: string }).code; }
    expect(code).toBe('InvalidRange');
  });
});

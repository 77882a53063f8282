/**
 * sealWhole / openWhole: the one-call forms for bodies already in memory (small PUTs and GETs). They must give
 * exactly the streams' bytes and refuse exactly what the streams refuse, before returning any plaintext.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { blockCount, newDeks, openWhole, planRange, sealWhole } from '../../src/engine/index.ts';
import { isFormatError } from '../../src/format/errors.ts';
import { C, S, encryptObject, readRange } from './helpers.ts';

const B = 2 * C; // 128 KiB blocks: multi-block cases stay small

describe('sealWhole', () => {
  it.for([0, 1, C - 1, C, C + 1, B, B + 1, 16 * C + 3, 3 * B + 7])('%i bytes: the same ciphertext as the encrypt stream', async (size) => {
    const o = await encryptObject([size], B);
    const got = sealWhole({ dataset: 'ds', oid: o.h.oid, partNumber: 1, plaintextSize: size, blockSize: B, deks: o.h.parts[0].deks as Buffer[], withPrefix: true }, o.pt);
    expect(got.equals(o.ct)).toBe(true);
  });

  it('refuses a body of another length than declared, and a DEK count that does not fit the size', () => {
    const oid = randomBytes(16);
    const deks = newDeks(blockCount(100, B));
    expect(() => sealWhole({ dataset: 'ds', oid, partNumber: 1, plaintextSize: 100, blockSize: B, deks, withPrefix: true }, randomBytes(99))).toThrow(/IncompleteBody|declared/);
    expect(() => sealWhole({ dataset: 'ds', oid, partNumber: 1, plaintextSize: 3 * B, blockSize: B, deks, withPrefix: true }, randomBytes(3 * B))).toThrow(RangeError);
  });
});

describe('openWhole', () => {
  it.for([1, C - 1, C, C + 1, B, B + 1, 16 * C + 3, 3 * B + 7])('%i bytes: the plaintext, as the decrypt stream gives it (whole and ranges)', async (size) => {
    const o = await encryptObject([size], B);
    expect(openWhole({ header: o.h, start: 0, endInclusive: size - 1 }, o.ct).equals(o.pt)).toBe(true);
    if (size > C + 10) {
      // a range starting past the first chunk: its ciphertext starts there, without the prefix
      const r = await readRange(o, C + 3, size - 2);
      const { cipherStart, cipherEnd } = planRange(o.h, C + 3, size - 2);
      expect(cipherStart).toBe(32 + S); // the second chunk, no prefix
      expect(openWhole({ header: o.h, start: C + 3, endInclusive: size - 2 }, o.ct.subarray(cipherStart, cipherEnd + 1)).equals(r.out)).toBe(true);
      expect(r.out.equals(o.pt.subarray(C + 3, size - 1))).toBe(true);
    }
  });

  it('any flipped byte (prefix, chunk body, tag, last chunk) is refused with its reason, and no plaintext is returned', async () => {
    const o = await encryptObject([2 * C + 5], B);
    const reasons = new Set<string>();
    for (const at of [0, 9, 20, 32, 40, 32 + C, 32 + S - 1, 32 + S, 32 + 2 * S + 2, o.ct.length - 1]) {
      const bad = Buffer.from(o.ct);
      bad[at] ^= 0x01;
      let err: unknown;
      try {
        openWhole({ header: o.h, start: 0, endInclusive: o.pt.length - 1 }, bad);
      } catch (e) {
        err = e;
      }
      expect(isFormatError(err), `flip at ${at}`).toBe(true);
      reasons.add((err as { reason: string }).reason);
    }
    expect([...reasons].sort()).toEqual(['BadMagic', 'ChunkAuthFailed', 'OidMismatch', 'UnsupportedVersion']);
  });

  it('truncated, extended, and swapped chunks are refused', async () => {
    const o = await encryptObject([2 * C + 5], B);
    const whole = { header: o.h, start: 0, endInclusive: o.pt.length - 1 };
    expect(() => openWhole(whole, o.ct.subarray(0, o.ct.length - 1))).toThrow(/UnexpectedEOF/);
    expect(() => openWhole(whole, Buffer.concat([o.ct, Buffer.alloc(1)]))).toThrow(/TrailingData/);
    const swapped = Buffer.concat([o.ct.subarray(0, 32), o.ct.subarray(32 + S, 32 + 2 * S), o.ct.subarray(32, 32 + S), o.ct.subarray(32 + 2 * S)]);
    expect(() => openWhole(whole, swapped)).toThrow(/ChunkAuthFailed/);
    // another object's chunks under this header (same sizes, other oid and DEKs)
    const other = await encryptObject([2 * C + 5], B);
    expect(() => openWhole(whole, Buffer.concat([o.ct.subarray(0, 32), other.ct.subarray(32)]))).toThrow(/ChunkAuthFailed/);
  });

  it('a revoked or erased block is refused before anything is opened (DekErased, the S3 code KeyRevoked)', async () => {
    const o = await encryptObject([3 * B + 7], B);
    const whole = { header: o.h, start: 0, endInclusive: o.pt.length - 1 };
    expect(() => openWhole({ ...whole, isRevoked: (_p, b) => b === 2 }, o.ct)).toThrow(/DekErased: block 2/);
    const erased = { ...o.h, parts: [{ ...o.h.parts[0], deks: o.h.parts[0].deks.map((d, i) => (i === 1 ? null : d)) }] };
    let err: unknown;
    try {
      openWhole({ ...whole, header: erased }, o.ct);
    } catch (e) {
      err = e;
    }
    expect(isFormatError(err, 'DekErased')).toBe(true);
    expect((err as { code: string }).code).toBe('KeyRevoked');
    // a range that avoids the revoked block still opens
    expect(openWhole({ header: o.h, start: 0, endInclusive: B - 1, isRevoked: (_p, b) => b === 2 }, o.ct.subarray(0, 32 + 2 * S)).equals(o.pt.subarray(0, B))).toBe(true);
  });
});

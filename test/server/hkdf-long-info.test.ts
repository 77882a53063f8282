/**
 * Object keys up to S3's 1,024 bytes: the header and ETag keys are HKDF-SHA256 with info = label || bucket || key,
 * longer than the 1,024 bytes Node's hkdfSync (OpenSSL) takes. Every info goes through an HMAC spelling of
 * RFC 5869 (also half hkdfSync's CPU), which must give what hkdfSync gives wherever both work (so the format is unchanged).
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { headerKey, hkdfSha256, hkdfSha256Hmac } from '../../src/format/header.ts';

describe('HKDF-SHA256 for long infos', () => {
  it('the HMAC spelling equals hkdfSync for every info length hkdfSync takes, and other output lengths', () => {
    for (const n of [0, 1, 31, 32, 33, 500, 1023, 1024]) {
      const ikm = randomBytes(32);
      const salt = randomBytes(16);
      const info = randomBytes(n);
      for (const len of [32, 16, 64, 100]) {
        const native = Buffer.from(hkdfSync('sha256', ikm, salt, info, len));
        expect(hkdfSha256Hmac(ikm, salt, info, len).equals(native)).toBe(true);
        // the derivation the format uses (src/format/header.ts) is the HMAC spelling at every length
        expect(hkdfSha256(ikm, salt, info, len).equals(native)).toBe(true);
      }
    }
    // RFC 5869 test case 3: empty salt and info
    const okm = hkdfSha256Hmac(Buffer.alloc(22, 0x0b), Buffer.alloc(0), Buffer.alloc(0), 42);
    expect(okm.toString('hex')).toBe('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8');
  });

  it('derives a header key for a 1,024-byte key in a 63-character bucket (info > 1,024 bytes), deterministically', () => {
    const kek = randomBytes(32);
    const oid = randomBytes(16);
    const bucket = 'b'.repeat(63);
    const key = 'k'.repeat(1024);
    const a = headerKey(kek, oid, bucket, key, 2);
    expect(a.length).toBe(32);
    expect(headerKey(kek, oid, bucket, key, 2).equals(a)).toBe(true);
    expect(headerKey(kek, oid, bucket, key.slice(0, -1) + 'j', 2).equals(a)).toBe(false);
    expect(hkdfSha256(kek, oid, Buffer.alloc(1025, 1)).equals(hkdfSha256Hmac(kek, oid, Buffer.alloc(1025, 1)))).toBe(true);
  });
});

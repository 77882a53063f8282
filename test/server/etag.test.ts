import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openEtag, sealEtag, sealedEtagKey } from '../../src/format/etag.ts';

const md5 = createHash('md5').update('hello').digest('hex');

describe('sealed ETag (lc-etag)', () => {
  const kek = randomBytes(32);
  const oid = randomBytes(16);

  it('opens at its own location under its key, names that key, and hides the MD5', () => {
    for (const ref of [{ version: 1, keyNumber: 7 }, { version: 2, keyNumber: 7 }] as const) {
      const v = sealEtag(kek, ref, oid, 'b', 'k/ey', md5);
      expect(v.startsWith(ref.version === 2 ? 'h7.' : '7.')).toBe(true);
      expect(sealedEtagKey(v)).toEqual(ref);
      expect(openEtag(v, kek, oid, 'b', 'k/ey')).toBe(md5);
      expect(v).not.toContain(md5);
      expect(v).not.toContain(Buffer.from(md5, 'hex').toString('base64url'));
      // fresh nonce every time
      expect(sealEtag(kek, ref, oid, 'b', 'k/ey', md5)).not.toBe(v);
    }
  });

  it('a format-1 value relabelled as format 2 (or back) does not open: the versions derive different keys', () => {
    const v1 = sealEtag(kek, { version: 1, keyNumber: 3 }, oid, 'b', 'k', md5);
    expect(openEtag(`h${v1}`, kek, oid, 'b', 'k')).toBeNull();
    const v2 = sealEtag(kek, { version: 2, keyNumber: 3 }, oid, 'b', 'k', md5);
    expect(openEtag(v2.slice(1), kek, oid, 'b', 'k')).toBeNull();
  });

  it('does not open anywhere else: other key, bucket, oid, KEK, or any flipped character', () => {
    const v = sealEtag(kek, { version: 1, keyNumber: 1 }, oid, 'b', 'k', md5);
    expect(openEtag(v, kek, oid, 'b', 'k2')).toBeNull();
    expect(openEtag(v, kek, oid, 'b2', 'k')).toBeNull();
    expect(openEtag(v, kek, randomBytes(16), 'b', 'k')).toBeNull();
    expect(openEtag(v, randomBytes(32), oid, 'b', 'k')).toBeNull();
    // the bucket/key boundary is part of the binding
    expect(openEtag(sealEtag(kek, { version: 2, keyNumber: 1 }, oid, 'ab', 'c', md5), kek, oid, 'a', 'bc')).toBeNull();
    const body = v.slice(v.indexOf('.') + 1);
    for (let i = 0; i < body.length; i++) {
      const c = body[i] === 'A' ? 'B' : 'A';
      const bad = `1.${body.slice(0, i)}${c}${body.slice(i + 1)}`;
      expect(openEtag(bad, kek, oid, 'b', 'k'), `position ${i}`).toBeNull();
    }
    for (const junk of ['', '1', '1.', 'x.' + body, 'hh1.' + body, 'h.' + body, '1.' + body + 'A', '1.' + body.slice(1)]) {
      expect(openEtag(junk, kek, oid, 'b', 'k')).toBeNull();
      expect(sealedEtagKey(junk)).toBeNull();
    }
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openEtag, sealEtag, sealedEtagVersion } from '../../src/server/etag.ts';

const md5 = createHash('md5').update('hello').digest('hex');

describe('sealed ETag (lc-etag)', () => {
  const kek = randomBytes(32);
  const oid = randomBytes(16);

  it('opens at its own location under its KEK version, and hides the MD5', () => {
    const v = sealEtag(kek, 7, oid, 'b', 'k/ey', md5);
    expect(sealedEtagVersion(v)).toBe(7);
    expect(openEtag(v, kek, oid, 'b', 'k/ey')).toBe(md5);
    expect(v).not.toContain(md5);
    expect(v).not.toContain(Buffer.from(md5, 'hex').toString('base64url'));
    // fresh nonce every time
    expect(sealEtag(kek, 7, oid, 'b', 'k/ey', md5)).not.toBe(v);
  });

  it('does not open anywhere else: other key, bucket, oid, KEK, or any flipped character', () => {
    const v = sealEtag(kek, 1, oid, 'b', 'k', md5);
    expect(openEtag(v, kek, oid, 'b', 'k2')).toBeNull();
    expect(openEtag(v, kek, oid, 'b2', 'k')).toBeNull();
    expect(openEtag(v, kek, randomBytes(16), 'b', 'k')).toBeNull();
    expect(openEtag(v, randomBytes(32), oid, 'b', 'k')).toBeNull();
    // the bucket/key boundary is part of the binding
    expect(openEtag(sealEtag(kek, 1, oid, 'ab', 'c', md5), kek, oid, 'a', 'bc')).toBeNull();
    const body = v.slice(v.indexOf('.') + 1);
    for (let i = 0; i < body.length; i++) {
      const c = body[i] === 'A' ? 'B' : 'A';
      const bad = `1.${body.slice(0, i)}${c}${body.slice(i + 1)}`;
      expect(openEtag(bad, kek, oid, 'b', 'k'), `position ${i}`).toBeNull();
    }
    for (const junk of ['', '1', '1.', 'x.' + body, '1.' + body + 'A', '1.' + body.slice(1)]) {
      expect(openEtag(junk, kek, oid, 'b', 'k')).toBeNull();
      expect(sealedEtagVersion(junk)).toBeNull();
    }
  });
});

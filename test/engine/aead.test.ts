/** The one AES-256-GCM door for headers, sealed ETags, header keys and local CMK blobs (src/format/aead.ts). */
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { open, openBlob, seal, sealBlob } from '../../src/format/aead.ts';

describe('aead door', () => {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const aad = Buffer.from('context');

  it('seal is plain AES-256-GCM (ciphertext || tag), and open inverts it', () => {
    const pt = Buffer.from('sixteen byte key');
    const sealed = seal(key, nonce, pt, { aad });
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    expect(sealed.equals(Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]))).toBe(true);
    expect(open(key, nonce, sealed, { aad })?.equals(pt)).toBe(true);
  });

  it('a flipped bit anywhere, another aad, or no aad: null, never plaintext', () => {
    const pt = randomBytes(40);
    const sealed = seal(key, nonce, pt, { aad });
    for (let i = 0; i < sealed.length; i++) {
      const t = Buffer.from(sealed);
      t[i]! ^= 1;
      expect(open(key, nonce, t, { aad }), `byte ${i}`).toBeNull();
    }
    expect(open(key, nonce, sealed, { aad: Buffer.from('other') })).toBeNull();
    expect(open(key, nonce, sealed)).toBeNull();
    expect(open(key, nonce, sealed.subarray(0, 15), { aad })).toBeNull();
  });

  it('lengths are checked before the cipher sees them', () => {
    expect(() => seal(randomBytes(16), nonce, Buffer.alloc(1))).toThrow(/key must be 32 bytes/);
    expect(() => seal(key, randomBytes(16), Buffer.alloc(1))).toThrow(/nonce must be 12 bytes/);
    expect(() => open(key, randomBytes(8), Buffer.alloc(32))).toThrow(/nonce must be 12 bytes/);
    expect(openBlob(key, Buffer.alloc(27))).toBeNull();
  });

  it('wipeKey zeroes the key after use, on success and on failure alike', () => {
    const k1 = randomBytes(32);
    const blob = sealBlob(Buffer.from(k1), Buffer.from('x'), { aad });
    const k2 = Buffer.from(k1);
    expect(openBlob(k2, blob, { aad, wipeKey: true })?.toString()).toBe('x');
    expect(k2.every((b) => b === 0)).toBe(true);
    const k3 = Buffer.from(k1);
    expect(openBlob(k3, Buffer.concat([blob, Buffer.from([0])]), { aad, wipeKey: true })).toBeNull();
    expect(k3.every((b) => b === 0)).toBe(true);
    const k4 = Buffer.from(k1);
    sealBlob(k4, Buffer.from('y'), { wipeKey: true });
    expect(k4.every((b) => b === 0)).toBe(true);
  });

  it('sealBlob draws a fresh nonce each time', () => {
    const a = sealBlob(key, Buffer.from('same'));
    const b = sealBlob(key, Buffer.from('same'));
    expect(a.subarray(0, 12).equals(b.subarray(0, 12))).toBe(false);
  });
});

import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * The ETag a client sees for a single-PUT object is the MD5 of its plaintext, as on S3 without encryption:
 * rclone, and anything else that treats a 32-hex ETag as the content's MD5, then works unchanged. A listing
 * must return it without a request per object, so it travels in the data object's backend metadata — sealed,
 * because an MD5 of the plaintext lets whoever holds the backend confirm a guessed content (docs/FORMAT.md 2.5).
 *
 * Value: `<kekVersion>.<base64url(nonce(12) || AES-256-GCM(md5(16)) || tag(16))>` under
 * HKDF-SHA256(ikm = KEK version, salt = oid, info = "lakecrypt/v1 etag" || 0x00 || bucket || 0x00 || key).
 * The authoritative copy is `checksums.md5` in the header; this one only saves listings a header read.
 */
export const META_ETAG = 'lc-etag';

function etagKey(kek: Buffer, oid: Buffer, bucket: string, key: string): Buffer {
  const info = Buffer.concat([Buffer.from('lakecrypt/v1 etag\0', 'utf8'), Buffer.from(bucket, 'utf8'), Buffer.from([0]), Buffer.from(key, 'utf8')]);
  return Buffer.from(hkdfSync('sha256', kek, oid, info, 32));
}

export function sealEtag(kek: Buffer, kekVersion: number, oid: Buffer, bucket: string, key: string, md5Hex: string): string {
  const k = etagKey(kek, oid, bucket, key);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', k, nonce);
  const ct = Buffer.concat([c.update(Buffer.from(md5Hex, 'hex')), c.final(), c.getAuthTag()]);
  k.fill(0);
  return `${kekVersion}.${Buffer.concat([nonce, ct]).toString('base64url')}`;
}

/** The KEK version a sealed ETag needs, or null when the value is not one. */
export function sealedEtagVersion(value: string): number | null {
  const m = /^(\d{1,10})\.([A-Za-z0-9_-]{59})$/.exec(value);
  return m ? Number(m[1]) : null;
}

/** The MD5 hex, or null when the value does not open at this location (tampered, moved, wrong key). */
export function openEtag(value: string, kek: Buffer, oid: Buffer, bucket: string, key: string): string | null {
  const m = /^(\d{1,10})\.([A-Za-z0-9_-]{59})$/.exec(value);
  if (!m) return null;
  const raw = Buffer.from(m[2]!, 'base64url');
  // Canonical encoding only: the last character carries two unused bits that decoding would ignore.
  if (raw.length !== 44 || raw.toString('base64url') !== m[2]) return null;
  const k = etagKey(kek, oid, bucket, key);
  try {
    const d = createDecipheriv('aes-256-gcm', k, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(28));
    return Buffer.concat([d.update(raw.subarray(12, 28)), d.final()]).toString('hex');
  } catch {
    return null;
  } finally {
    k.fill(0);
  }
}

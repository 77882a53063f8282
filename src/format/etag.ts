import { openBlob, sealBlob } from './aead.ts';
import { hkdfSha256 } from '../format/header.ts';

/**
 * The ETag a client sees for a single-PUT object is the MD5 of its plaintext, as on S3 without encryption:
 * rclone, and anything else that treats a 32-hex ETag as the content's MD5, then works unchanged. A listing
 * must return it without a request per object, so it travels in the data object's backend metadata — sealed,
 * because an MD5 of the plaintext lets whoever holds the backend confirm a guessed content (docs/FORMAT.md 2.5).
 *
 * Value: `<ref>.<base64url(nonce(12) || AES-256-GCM(md5(16)) || tag(16))>` under the key of the header it goes
 * with: `<ref>` = `<v>` and HKDF-SHA256(ikm = KEK version v, salt = oid, info = "lakecrypt/v1 etag" || 0x00 ||
 * bucket || 0x00 || key) for a format-1 header; `h<n>` and the same with header key n and "lakecrypt/v2 etag"
 * for a format-2 header.
 * The authoritative copy is `checksums.md5` in the header; this one only saves listings a header read.
 */
export const META_ETAG = 'lc-etag';

/** Which key a sealed ETag is under: format-1 headers' KEK version, or format-2 headers' header key. */
export interface EtagKeyRef {
  version: 1 | 2;
  keyNumber: number;
}

const LABELS = { 1: 'lakecrypt/v1 etag\0', 2: 'lakecrypt/v2 etag\0' } as const;
const VALUE = /^(h?)(\d{1,10})\.([A-Za-z0-9_-]{59})$/;

function etagKey(kek: Buffer, version: 1 | 2, oid: Buffer, bucket: string, key: string): Buffer {
  const info = Buffer.concat([Buffer.from(LABELS[version], 'utf8'), Buffer.from(bucket, 'utf8'), Buffer.from([0]), Buffer.from(key, 'utf8')]);
  return hkdfSha256(kek, oid, info, 32);
}

export function sealEtag(kek: Buffer, ref: EtagKeyRef, oid: Buffer, bucket: string, key: string, md5Hex: string): string {
  const blob = sealBlob(etagKey(kek, ref.version, oid, bucket, key), Buffer.from(md5Hex, 'hex'), { wipeKey: true });
  return `${ref.version === 2 ? 'h' : ''}${ref.keyNumber}.${blob.toString('base64url')}`;
}

/** The key a sealed ETag needs, or null when the value is not one. */
export function sealedEtagKey(value: string): EtagKeyRef | null {
  const m = VALUE.exec(value);
  return m ? { version: m[1] ? 2 : 1, keyNumber: Number(m[2]) } : null;
}

/** The MD5 hex, or null when the value does not open at this location (tampered, moved, wrong key). */
export function openEtag(value: string, kek: Buffer, oid: Buffer, bucket: string, key: string): string | null {
  const m = VALUE.exec(value);
  if (!m) return null;
  const raw = Buffer.from(m[3], 'base64url');
  // Canonical encoding only: the last character carries two unused bits that decoding would ignore.
  if (raw.length !== 44 || raw.toString('base64url') !== m[3]) return null;
  return openBlob(etagKey(kek, m[1] ? 2 : 1, oid, bucket, key), raw, { wipeKey: true })?.toString('hex') ?? null;
}

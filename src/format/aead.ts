/**
 * The one AES-256-GCM door for sealed values that are not data chunks: object headers, sealed ETags, header keys
 * and the local CMK's wrapped KEKs. It checks every length before the cipher sees it (key 32, nonce 12, at least
 * a tag to open), never returns plaintext of a value that failed authentication (zeroed, and `null` instead: the
 * caller names the failure in its own terms), and wipes the key when asked to (one-shot derived keys).
 * Data chunks are sealed in batches by workers/crypto-core.mjs and src/engine/chunk-stream.ts, which follow the
 * chunk layout of workers/chunk-layout.mjs instead: a per-value door costs too much on the bulk path.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { NONCE_SIZE, TAG_SIZE } from '../../workers/chunk-layout.mjs';

export const AEAD_KEY_SIZE = 32;
export { NONCE_SIZE as AEAD_NONCE_SIZE, TAG_SIZE as AEAD_TAG_SIZE };

export interface AeadOptions {
  /** Authenticated, not encrypted. */
  aad?: Buffer;
  /** Zero the key after use: for keys derived for this one value. */
  wipeKey?: boolean;
}

function check(key: Buffer, nonce: Buffer): void {
  if (key.length !== AEAD_KEY_SIZE) throw new RangeError(`AES-256-GCM key must be ${AEAD_KEY_SIZE} bytes, got ${key.length}`);
  if (nonce.length !== NONCE_SIZE) throw new RangeError(`AES-256-GCM nonce must be ${NONCE_SIZE} bytes, got ${nonce.length}`);
}

/** ciphertext || tag of `plaintext` under (key, nonce). The caller guarantees the nonce is never reused for the key. */
export function seal(key: Buffer, nonce: Buffer, plaintext: Buffer, o: AeadOptions = {}): Buffer {
  try {
    check(key, nonce);
    const c = createCipheriv('aes-256-gcm', key, nonce);
    if (o.aad) c.setAAD(o.aad);
    return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  } finally {
    if (o.wipeKey) key.fill(0);
  }
}

/** The plaintext of ciphertext || tag, or null when it does not authenticate (nothing of it is returned). */
export function open(key: Buffer, nonce: Buffer, sealed: Buffer, o: AeadOptions = {}): Buffer | null {
  try {
    check(key, nonce);
    if (sealed.length < TAG_SIZE) return null;
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    if (o.aad) d.setAAD(o.aad);
    d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
    const pt = d.update(sealed.subarray(0, sealed.length - TAG_SIZE));
    try {
      d.final();
    } catch {
      pt.fill(0);
      return null;
    }
    return pt;
  } finally {
    if (o.wipeKey) key.fill(0);
  }
}

/** nonce || ciphertext || tag with a fresh random nonce: the blob form of wrapped keys and sealed ETags. */
export function sealBlob(key: Buffer, plaintext: Buffer, o: AeadOptions = {}, random: (n: number) => Buffer = randomBytes): Buffer {
  const nonce = random(NONCE_SIZE);
  return Buffer.concat([nonce, seal(key, nonce, plaintext, o)]);
}

/** The plaintext of a sealBlob, or null (too short, or it does not authenticate). */
export function openBlob(key: Buffer, blob: Buffer, o: AeadOptions = {}): Buffer | null {
  if (blob.length < NONCE_SIZE + TAG_SIZE) {
    if (o.wipeKey) key.fill(0);
    return null;
  }
  return open(key, blob.subarray(0, NONCE_SIZE), blob.subarray(NONCE_SIZE), o);
}

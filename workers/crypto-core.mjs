// AES-256-GCM batch sealing shared by the inline path (src/engine) and the worker threads (crypto-worker.mjs).
// Plain JS so worker threads load it without a TypeScript loader. Layout: docs/FORMAT.md section 2.2.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AAD_OFF, CHUNK_SIZE as CHUNK, FLAG_LAST, TAG_SIZE as TAG, chunkNonce as nonceFor } from './chunk-layout.mjs';

const AAD_CHUNK = AAD_OFF.chunk;
const AAD_FLAGS = AAD_OFF.flags;

/**
 * Seals `count` consecutive chunks of one block. All chunks are CHUNK bytes except the last, which is `lastLen`.
 * @param {{ key: Uint8Array, aad: Uint8Array, firstChunk: number, count: number, lastLen: number, final: boolean, data: Uint8Array }} t
 * @returns {Buffer} sealed chunks (data.length + 16 * count bytes), backed by its own ArrayBuffer
 */
export function sealBatch(t) {
  const out = Buffer.allocUnsafeSlow(t.data.length + TAG * t.count);
  const aad = Buffer.from(t.aad);
  let inAt = 0;
  let outAt = 0;
  for (let i = 0; i < t.count; i++) {
    const len = i === t.count - 1 ? t.lastLen : CHUNK;
    const c = t.firstChunk + i;
    aad.writeUInt32BE(c, AAD_CHUNK);
    aad[AAD_FLAGS] = t.final && i === t.count - 1 ? FLAG_LAST : 0;
    const cipher = createCipheriv('aes-256-gcm', t.key, nonceFor(c));
    cipher.setAAD(aad);
    outAt += cipher.update(t.data.subarray(inAt, inAt + len)).copy(out, outAt);
    outAt += cipher.final().copy(out, outAt);
    outAt += cipher.getAuthTag().copy(out, outAt);
    inAt += len;
  }
  if (inAt !== t.data.length) throw new RangeError(`batch holds ${t.data.length} bytes, layout says ${inAt}`);
  return out;
}

/**
 * Opens `count` sealed chunks of one block. Stops at the first chunk that fails: `data` holds the plaintext of
 * the `ok` chunks before it and nothing of the failed one.
 * @param {{ key: Uint8Array, aad: Uint8Array, firstChunk: number, count: number, lastLen: number, final: boolean, data: Uint8Array }} t
 * @returns {{ data: Buffer, ok: number, failed: boolean }}
 */
export function openBatch(t) {
  const out = Buffer.allocUnsafeSlow(Math.max(0, t.data.length - TAG * t.count));
  const aad = Buffer.from(t.aad);
  let inAt = 0;
  let outAt = 0;
  for (let i = 0; i < t.count; i++) {
    const len = i === t.count - 1 ? t.lastLen : CHUNK;
    const c = t.firstChunk + i;
    aad.writeUInt32BE(c, AAD_CHUNK);
    aad[AAD_FLAGS] = t.final && i === t.count - 1 ? FLAG_LAST : 0;
    const d = createDecipheriv('aes-256-gcm', t.key, nonceFor(c));
    d.setAAD(aad);
    d.setAuthTag(t.data.subarray(inAt + len, inAt + len + TAG));
    const pt = d.update(t.data.subarray(inAt, inAt + len));
    try {
      d.final();
    } catch {
      pt.fill(0);
      out.fill(0, outAt);
      return { data: out.subarray(0, outAt), ok: i, failed: true };
    }
    outAt += pt.copy(out, outAt);
    inAt += len + TAG;
  }
  return { data: out.subarray(0, outAt), ok: t.count, failed: false };
}

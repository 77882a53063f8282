// The chunk layout of docs/FORMAT.md section 2.2, in one place for the engine (src/format/layout.ts re-exports it)
// and the worker threads (crypto-core.mjs), which load plain JS without a TypeScript loader.
// test/engine/layout.test.ts pins these numbers to FORMAT.md.

/** Plaintext bytes per chunk. */
export const CHUNK_SIZE = 65536;
/** AES-GCM tag bytes after each chunk. */
export const TAG_SIZE = 16;
/** AES-GCM nonce bytes: 0x00 * 8 || uint32(chunk index within the block). */
export const NONCE_SIZE = 12;
/** "LKC1" || datasetId(32) || oid(16) || uint32(partNumber) || uint32(block) || uint32(chunk) || uint8(flags). */
export const AAD_SIZE = 65;
/** AAD field offsets. */
export const AAD_OFF = Object.freeze({ datasetId: 4, oid: 36, part: 52, block: 56, chunk: 60, flags: 64 });
/** flags bit 0: the last chunk of its part. */
export const FLAG_LAST = 0x01;

/** The nonce of chunk `c` of a block. */
export function chunkNonce(c) {
  const n = Buffer.alloc(NONCE_SIZE);
  n.writeUInt32BE(c, NONCE_SIZE - 4);
  return n;
}

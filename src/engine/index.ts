/**
 * Public surface of the encryption engine. Wire format: docs/FORMAT.md. Everything else in src/format and
 * src/engine is internal.
 */
import { randomBytes } from 'node:crypto';
import { DEK_SIZE } from '../format/layout.ts';

export { CHUNK_SIZE, DEFAULT_BLOCK_SIZE, PREFIX_SIZE, ciphertextSize, plaintextSize, blockCount, datasetIdOf } from '../format/layout.ts';
export { sealHeader, peekHeader, openHeader, MAX_HEADER_SIZE } from '../format/header.ts';
export type { HeaderMeta, HeaderChecksums, HeaderFields, HeaderPart, HeaderPeek } from '../format/header.ts';
export { FormatError, isFormatError, type FormatErrorReason } from '../format/errors.ts';
export { totalPlaintextSize, planRange, checkEmptyObject } from './plan.ts';
export { createEncryptStream, sealWhole, type EncryptOptions } from './encrypt.ts';
export { createDecryptStream, openWhole, type DecryptOptions } from './decrypt.ts';
export { closeCryptoPool, setCryptoThreads } from './pool.ts';
export { cryptoMeter } from './meter.ts';

/** `count` fresh random 32-byte DEKs, each in its own buffer. */
export function newDeks(count: number, random: (n: number) => Buffer = randomBytes): Buffer[] {
  return Array.from({ length: count }, () => Buffer.from(random(DEK_SIZE)));
}

/** Overwrites key material in place. */
export function zero(buf: Buffer): void {
  buf.fill(0);
}

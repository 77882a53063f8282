import { createHash } from 'node:crypto';
import { S3Error } from '../errors.ts';
import { FormatError } from './errors.ts';
import { AAD_OFF, AAD_SIZE, CHUNK_SIZE, FLAG_LAST, NONCE_SIZE, TAG_SIZE } from '../../workers/chunk-layout.mjs';

// The chunk layout lives in one plain-JS module that the worker threads load as well.
export { AAD_OFF, AAD_SIZE, CHUNK_SIZE, FLAG_LAST, NONCE_SIZE, TAG_SIZE };

export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE;
export const DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024;
export const MAX_BLOCK_SIZE = 8 * 1024 * 1024;
export const PREFIX_SIZE = 32;
export const FORMAT_VERSION = 1;
export const DATA_MAGIC = Buffer.from('LKCRYPTD', 'latin1');
export const AAD_MAGIC = Buffer.from('LKC1', 'latin1');
export const DEK_SIZE = 32;
/** 5 TiB: the S3 object size limit. */
export const MAX_PART_PLAINTEXT = 5 * 1024 ** 4;
export const MAX_PARTS = 10000;


const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);
const isSize = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

/** Number of chunks a part of `p` plaintext bytes is sealed into (0 for an empty part). */
export const chunkCount = (p: number): number => ceilDiv(p, CHUNK_SIZE);

/** Sealed size of a part's chunks, without the prefix. */
export const sealedPartSize = (p: number): number => p + TAG_SIZE * chunkCount(p);

export function ciphertextSize(plaintextSize: number): number {
  if (!isSize(plaintextSize)) throw new RangeError(`plaintext size must be a non-negative safe integer, got ${plaintextSize}`);
  return PREFIX_SIZE + sealedPartSize(plaintextSize);
}

/** Exact inverse of ciphertextSize; throws InvalidCiphertextSize where no plaintext size maps to `c`. */
export function plaintextSize(c: number): number {
  if (!isSize(c) || c < PREFIX_SIZE) throw new FormatError('InvalidCiphertextSize', `ciphertext size ${c} is smaller than the ${PREFIX_SIZE}-byte prefix`);
  const body = c - PREFIX_SIZE;
  const full = Math.floor(body / SEALED_CHUNK_SIZE);
  const rest = body % SEALED_CHUNK_SIZE;
  if (rest !== 0 && rest <= TAG_SIZE) {
    throw new FormatError('InvalidCiphertextSize', `ciphertext size ${c} leaves a last sealed chunk of ${rest} bytes (must be > ${TAG_SIZE})`);
  }
  return full * CHUNK_SIZE + (rest === 0 ? 0 : rest - TAG_SIZE);
}

export function blockCount(partPlaintextSize: number, blockSize: number): number {
  checkBlockSize(blockSize);
  if (!isSize(partPlaintextSize)) throw new RangeError(`part size must be a non-negative safe integer, got ${partPlaintextSize}`);
  return ceilDiv(partPlaintextSize, blockSize);
}

export function checkBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < CHUNK_SIZE || blockSize > MAX_BLOCK_SIZE || blockSize % CHUNK_SIZE !== 0) {
    throw new RangeError(`blockSize must be a multiple of ${CHUNK_SIZE} in [${CHUNK_SIZE}, ${MAX_BLOCK_SIZE}], got ${blockSize}`);
  }
}

export function datasetIdOf(datasetName: string): Buffer {
  return createHash('sha256').update(datasetName, 'utf8').digest();
}

export function encodePrefix(oid: Buffer): Buffer {
  checkOid(oid);
  const p = Buffer.alloc(PREFIX_SIZE);
  DATA_MAGIC.copy(p, 0);
  p[8] = FORMAT_VERSION;
  oid.copy(p, 16);
  return p;
}

/** Checks a data prefix against the header's oid (docs/FORMAT.md 2.1). */
export function checkPrefix(prefix: Buffer, oid: Buffer): void {
  if (prefix.length < PREFIX_SIZE) throw new FormatError('UnexpectedEOF', `data object is ${prefix.length} bytes, shorter than the ${PREFIX_SIZE}-byte prefix`);
  if (!prefix.subarray(0, 8).equals(DATA_MAGIC)) throw new FormatError('BadMagic', 'data object does not start with LKCRYPTD');
  if (prefix[8] !== FORMAT_VERSION) throw new FormatError('UnsupportedVersion', `data format version ${prefix[8]}, expected ${FORMAT_VERSION}`);
  for (let i = 9; i < 16; i++) {
    if (prefix[i] !== 0) throw new FormatError('UnsupportedVersion', 'data prefix reserved bytes are not zero');
  }
  if (!prefix.subarray(16, 32).equals(oid)) throw new FormatError('OidMismatch', 'data prefix oid differs from the header oid');
}

export function checkOid(oid: Buffer): void {
  if (!Buffer.isBuffer(oid) || oid.length !== 16) throw new RangeError(`oid must be 16 bytes, got ${oid?.length}`);
}

/** The 65-byte chunk AAD with part and block filled in; chunk index and flags are set per chunk. */
export function baseAad(datasetId: Buffer, oid: Buffer, partNumber: number, block: number): Buffer {
  const aad = Buffer.alloc(AAD_SIZE);
  AAD_MAGIC.copy(aad, 0);
  datasetId.copy(aad, AAD_OFF.datasetId);
  oid.copy(aad, AAD_OFF.oid);
  aad.writeUInt32BE(partNumber, AAD_OFF.part);
  aad.writeUInt32BE(block, AAD_OFF.block);
  return aad;
}

/** Thrown for a range outside the object; the server maps it to 416. */
export const invalidRange = (start: number, end: number, size: number): S3Error =>
  new S3Error('InvalidRange', `range ${start}-${end} is outside the object of ${size} bytes`);

import { FormatError } from '../format/errors.ts';
import { partNumberOf, type HeaderFields } from '../format/header.ts';
import {
  CHUNK_SIZE, PREFIX_SIZE, SEALED_CHUNK_SIZE, TAG_SIZE, chunkCount, checkPrefix, invalidRange, sealedPartSize,
} from '../format/layout.ts';
import { BATCH_CHUNKS } from './pool.ts';

/** A run of consecutive chunks of one block: the unit of work for the crypto pool. */
export interface Batch {
  partIndex: number;
  partNumber: number;
  block: number;
  /** Chunk index within the block of the first chunk. */
  firstChunk: number;
  count: number;
  /** Plaintext bytes of the last chunk (the others are CHUNK_SIZE). */
  lastLen: number;
  /** The batch ends with the last chunk of its part. */
  final: boolean;
  /** Offset of the first chunk in the object's plaintext. */
  plainStart: number;
  plainLen: number;
  sealedLen: number;
}

/** A chunk position: part index into the header's parts table, chunk index within the part. */
export interface ChunkPos { part: number; chunk: number }

export interface PartLayout { size: number; partNumber: number; plainStart: number; cipherStart: number }

/** Only part number 1 carries the prefix: an object completed from parts 2, 5, 9 has none (FORMAT.md 2.3). */
export const hasPrefix = (h: Pick<HeaderFields, 'parts'>): boolean => partNumberOf(h as HeaderFields, 0) === 1;

/** Cumulative plaintext and ciphertext offsets of every part (docs/FORMAT.md 2.3, any layout). */
export function partLayout(h: Pick<HeaderFields, 'parts'>): PartLayout[] {
  let plain = 0;
  let cipher = hasPrefix(h) ? PREFIX_SIZE : 0;
  return h.parts.map((p, i) => {
    const l = { size: p.plaintextSize, partNumber: partNumberOf(h as HeaderFields, i), plainStart: plain, cipherStart: cipher };
    plain += p.plaintextSize;
    cipher += sealedPartSize(p.plaintextSize);
    return l;
  });
}

export function* batches(parts: PartLayout[], blockSize: number, from: ChunkPos, to: ChunkPos): Generator<Batch> {
  const perBlock = blockSize / CHUNK_SIZE;
  for (let p = from.part; p <= to.part; p++) {
    const { size, partNumber, plainStart } = parts[p];
    if (size === 0) continue;
    const n = chunkCount(size);
    const last = p === to.part ? to.chunk : n - 1;
    for (let k = p === from.part ? from.chunk : 0; k <= last;) {
      const inBlock = k % perBlock;
      const count = Math.min(BATCH_CHUNKS, perBlock - inBlock, last - k + 1);
      const lastK = k + count - 1;
      const lastLen = Math.min(CHUNK_SIZE, size - lastK * CHUNK_SIZE);
      const plainLen = (count - 1) * CHUNK_SIZE + lastLen;
      yield {
        partIndex: p, partNumber, block: Math.floor(k / perBlock), firstChunk: inBlock, count, lastLen,
        final: lastK === n - 1, plainStart: plainStart + k * CHUNK_SIZE, plainLen, sealedLen: plainLen + TAG_SIZE * count,
      };
      k += count;
    }
  }
}

export interface RangePlan {
  /** Inclusive ciphertext range to read from the data object. Starts at 0 (prefix included) when chunk 0 is touched. */
  cipherStart: number;
  cipherEnd: number;
  withPrefix: boolean;
  from: ChunkPos;
  to: ChunkPos;
  parts: PartLayout[];
}

function partAt(parts: PartLayout[], offset: number): number {
  // Binary search on plainStart over the non-empty parts: the last part starting at or before offset with size > 0.
  let lo = 0;
  let hi = parts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (parts[mid].plainStart <= offset) lo = mid;
    else hi = mid - 1;
  }
  while (parts[lo].size === 0 || offset >= parts[lo].plainStart + parts[lo].size) lo++; // skip empty parts
  return lo;
}

export function totalPlaintextSize(h: Pick<HeaderFields, 'parts'>): number {
  return h.parts.reduce((s, p) => s + p.plaintextSize, 0);
}

export function locateRange(h: Pick<HeaderFields, 'parts'>, start: number, endInclusive: number): RangePlan {
  const total = totalPlaintextSize(h);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(endInclusive) || start < 0 || start > endInclusive || endInclusive >= total) {
    throw invalidRange(start, endInclusive, total);
  }
  const parts = partLayout(h);
  const pf = partAt(parts, start);
  const pt = partAt(parts, endInclusive);
  const from = { part: pf, chunk: Math.floor((start - parts[pf].plainStart) / CHUNK_SIZE) };
  const to = { part: pt, chunk: Math.floor((endInclusive - parts[pt].plainStart) / CHUNK_SIZE) };
  const first = parts[pf].cipherStart + from.chunk * SEALED_CHUNK_SIZE;
  const lastLen = Math.min(CHUNK_SIZE, parts[pt].size - to.chunk * CHUNK_SIZE);
  const cipherEnd = parts[pt].cipherStart + to.chunk * SEALED_CHUNK_SIZE + lastLen + TAG_SIZE - 1;
  const withPrefix = hasPrefix(h) && first === PREFIX_SIZE;
  return { cipherStart: withPrefix ? 0 : first, cipherEnd, withPrefix, from, to, parts };
}

/** Inclusive ciphertext byte range of the chunks holding plaintext[start..endInclusive] (prefix included at 0). */
export function planRange(h: HeaderFields, start: number, endInclusive: number): { cipherStart: number; cipherEnd: number } {
  const { cipherStart, cipherEnd } = locateRange(h, start, endInclusive);
  return { cipherStart, cipherEnd };
}

/**
 * The empty object (planRange is not called for size 0): its data object MUST be exactly the 32-byte prefix.
 * Pass the whole data object; throws the named error otherwise.
 */
export function checkEmptyObject(data: Buffer, h: HeaderFields): void {
  if (totalPlaintextSize(h) !== 0) throw new RangeError('checkEmptyObject called for a non-empty object');
  checkPrefix(data, h.oid);
  if (data.length > PREFIX_SIZE) throw new FormatError('TrailingData', `empty object has ${data.length - PREFIX_SIZE} bytes after the prefix`);
}

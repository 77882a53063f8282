import type { Transform } from 'node:stream';
import { openBatch, type OpenResult } from '../../workers/crypto-core.mjs';
import { FormatError } from '../format/errors.ts';
import { type HeaderFields } from '../format/header.ts';
import { CHUNK_SIZE, PREFIX_SIZE, baseAad, checkPrefix, datasetIdOf } from '../format/layout.ts';
import { BatchStream } from './batch-stream.ts';
import { OpenStream, type LiveCheck } from './chunk-stream.ts';
import { batches, locateRange, type Batch, type RangePlan } from './plan.ts';
import { POOL_MIN_BYTES, configuredThreads } from './pool.ts';
import { cryptoMeter } from './meter.ts';

export type { LiveCheck } from './chunk-stream.ts';

export interface DecryptOptions {
  header: HeaderFields; start: number; endInclusive: number;
  /**
   * (part number as in the chunk AAD, block index within the part) -> revoked in the keystore. Asked before each
   * batch (at most 1 MiB) is opened, so it may answer differently as `live` refreshes it.
   */
  isRevoked?: (part: number, block: number) => boolean;
  /**
   * Key state that can change while the stream runs (issue #16): checked once per input buffer; when it moved,
   * the stream waits for its recheck, then asks `isRevoked` again for the block in progress, or errors with
   * what the recheck threw (KeyRevoked, DekErased, a backend error) before releasing more plaintext.
   */
  live?: LiveCheck;
  /** Crypto threads; default: inline below POOL_MIN_BYTES, else the cryptoThreads setting (setCryptoThreads). */
  threads?: number;
}

/** The refusal of a revoked block, in the admin's words: which object, which plaintext bytes, which dataset. */
function erased(b: Batch, h: HeaderFields): FormatError {
  const blockStart = b.plainStart - b.firstChunk * CHUNK_SIZE;
  const partSize = h.parts[b.partIndex]?.plaintextSize ?? 0;
  const blockEnd = blockStart + Math.max(0, Math.min(h.blockSize, partSize - b.block * h.blockSize)) - 1;
  return new FormatError(
    'DekErased',
    `block ${b.block} of part ${b.partNumber} (plaintext bytes ${blockStart}-${blockEnd}) of ${h.bucket}/${h.key} in dataset ${h.dataset} is revoked`,
  );
}

class DecryptStream extends BatchStream {
  private readonly o: DecryptOptions;
  private readonly plan: RangePlan;
  constructor(o: DecryptOptions, plan: RangePlan, threads: number) {
    const h = o.header;
    super({
      op: 'open', batches: batches(plan.parts, h.blockSize, plan.from, plan.to), datasetId: datasetIdOf(h.dataset), oid: h.oid,
      keyOf: (b) => h.parts[b.partIndex].deks[b.block]!, threads, lead: plan.withPrefix ? 32 : 0, live: o.live,
    });
    this.o = o;
    this.plan = plan;
  }
  protected override onLead(lead: Buffer): void { checkPrefix(lead, this.o.header.oid); }
  protected override beforeSubmit(b: Batch): void {
    if (this.o.header.parts[b.partIndex].deks[b.block] == null || this.o.isRevoked?.(b.partNumber, b.block)) throw erased(b, this.o.header);
  }
  protected inputLen(b: Batch): number { return b.sealedLen; }
  protected onResult(b: Batch, r: OpenResult): void {
    // r.data is the plaintext of the r.ok chunks that verified, starting at b.plainStart; trim to the range.
    const from = Math.max(0, this.o.start - b.plainStart);
    const to = Math.min(r.data.length, this.o.endInclusive + 1 - b.plainStart);
    if (to > from) this.push(r.data.subarray(from, to));
    if (r.failed) {
      throw new FormatError('ChunkAuthFailed', `part ${b.partNumber} block ${b.block} chunk ${b.firstChunk + r.ok} failed authentication`);
    }
  }
  protected tooMuch(): Error { return new FormatError('TrailingData', `data continues after byte ${this.plan.cipherEnd}`); }
  protected tooLittle(): Error { return new FormatError('UnexpectedEOF', `data ended before byte ${this.plan.cipherEnd}`); }
}

/** Inline (threads = 0): chunk by chunk from the input buffers (chunk-stream.ts). */
class InlineDecryptStream extends OpenStream {
  private readonly o: DecryptOptions;
  private readonly plan: RangePlan;
  constructor(o: DecryptOptions, plan: RangePlan) {
    const h = o.header;
    super({
      batches: batches(plan.parts, h.blockSize, plan.from, plan.to), datasetId: datasetIdOf(h.dataset), oid: h.oid,
      keyOf: (b) => h.parts[b.partIndex].deks[b.block]!, lead: plan.withPrefix ? 32 : 0,
      start: o.start, endInclusive: o.endInclusive, live: o.live,
    });
    this.o = o;
    this.plan = plan;
  }
  protected override onLead(lead: Buffer): void { checkPrefix(lead, this.o.header.oid); }
  protected override beforeBatch(b: Batch): void {
    if (this.o.header.parts[b.partIndex].deks[b.block] == null || this.o.isRevoked?.(b.partNumber, b.block)) throw erased(b, this.o.header);
  }
  protected tooMuch(): Error { return new FormatError('TrailingData', `data continues after byte ${this.plan.cipherEnd}`); }
  protected tooLittle(): Error { return new FormatError('UnexpectedEOF', `data ended before byte ${this.plan.cipherEnd}`); }
}

/** DekErased/KeyRevoked for the first touched block whose DEK is erased or revoked (one check per block). */
function checkBlocks(opts: DecryptOptions, plan: RangePlan): void {
  let first = true;
  for (const b of batches(plan.parts, opts.header.blockSize, plan.from, plan.to)) {
    if (!first && b.firstChunk !== 0) continue;
    first = false;
    if (opts.header.parts[b.partIndex].deks[b.block] == null || opts.isRevoked?.(b.partNumber, b.block)) throw erased(b, opts.header);
  }
}

/**
 * Input: exactly the ciphertext bytes planRange(header, start, endInclusive) names. Output: plaintext[start..end].
 * Throws synchronously (before any byte) with DekErased/KeyRevoked when a touched block's DEK is erased or
 * revoked, so the server can answer 403; a revocation seen later while streaming errors the stream.
 */
export function createDecryptStream(opts: DecryptOptions): Transform {
  const plan = locateRange(opts.header, opts.start, opts.endInclusive);
  checkBlocks(opts, plan);
  const len = opts.endInclusive - opts.start + 1;
  const threads = opts.threads ?? (len < POOL_MIN_BYTES ? 0 : configuredThreads());
  const t = threads === 0 ? new InlineDecryptStream(opts, plan) : new DecryptStream(opts, plan, threads);
  // counted once the whole range was decrypted and handed on (a refused or aborted read counts nothing)
  t.once('end', () => (cryptoMeter.decrypt += len));
  return t;
}

/**
 * createDecryptStream's plaintext for ciphertext already whole in memory (a small GET): opened in one call per
 * batch (openBatch, the batch door the streams use too), without a stream around it. Same checks, same errors, all
 * before any plaintext is returned: revoked or erased blocks, the prefix, every tag, the exact length. `live` is
 * not consulted here: the caller re-validates the keys once before (nothing is released while this runs).
 */
export function openWhole(opts: DecryptOptions, cipher: Buffer): Buffer {
  const h = opts.header;
  const plan = locateRange(h, opts.start, opts.endInclusive);
  checkBlocks(opts, plan);
  const want = plan.cipherEnd - plan.cipherStart + 1;
  if (cipher.length < want) throw new FormatError('UnexpectedEOF', `data ended before byte ${plan.cipherEnd}`);
  if (cipher.length > want) throw new FormatError('TrailingData', `data continues after byte ${plan.cipherEnd}`);
  let at = 0;
  if (plan.withPrefix) {
    checkPrefix(cipher.subarray(0, PREFIX_SIZE), h.oid);
    at = PREFIX_SIZE;
  }
  const datasetId = datasetIdOf(h.dataset);
  const out = Buffer.allocUnsafe(opts.endInclusive - opts.start + 1);
  let filled = 0;
  for (const b of batches(plan.parts, h.blockSize, plan.from, plan.to)) {
    const r = openBatch({
      key: h.parts[b.partIndex].deks[b.block]!, aad: baseAad(datasetId, h.oid, b.partNumber, b.block),
      firstChunk: b.firstChunk, count: b.count, lastLen: b.lastLen, final: b.final, data: cipher.subarray(at, at + b.sealedLen),
    });
    at += b.sealedLen;
    if (r.failed) {
      r.data.fill(0);
      out.fill(0);
      throw new FormatError('ChunkAuthFailed', `part ${b.partNumber} block ${b.block} chunk ${b.firstChunk + r.ok} failed authentication`);
    }
    const from = Math.max(0, opts.start - b.plainStart);
    const to = Math.min(r.data.length, opts.endInclusive + 1 - b.plainStart);
    if (to > from) filled += r.data.copy(out, filled, from, to);
  }
  cryptoMeter.decrypt += out.length;
  return out;
}

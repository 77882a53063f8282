import type { Transform } from 'node:stream';
import { sealBatch, type OpenResult } from '../../workers/crypto-core.mjs';
import { S3Error } from '../errors.ts';
import {
  DEK_SIZE, PREFIX_SIZE, baseAad, blockCount, checkOid, chunkCount, datasetIdOf, encodePrefix, sealedPartSize,
} from '../format/layout.ts';
import { BatchStream } from './batch-stream.ts';
import { SealStream } from './chunk-stream.ts';
import { batches, type Batch } from './plan.ts';
import { POOL_MIN_BYTES, configuredThreads } from './pool.ts';
import { cryptoMeter } from './meter.ts';

export interface EncryptOptions {
  dataset: string; oid: Buffer; partNumber: number; plaintextSize: number; blockSize: number; deks: Buffer[];
  withPrefix: boolean;
  /** Crypto threads; default: inline below POOL_MIN_BYTES, else the cryptoThreads setting (setCryptoThreads). */
  threads?: number;
}

class EncryptStream extends BatchStream {
  private received = 0;
  private readonly size: number;
  constructor(o: EncryptOptions, threads: number) {
    const n = chunkCount(o.plaintextSize);
    super({
      op: 'seal',
      batches: batches([{ size: o.plaintextSize, partNumber: o.partNumber, plainStart: 0, cipherStart: 0 }], o.blockSize, { part: 0, chunk: 0 }, { part: 0, chunk: n - 1 }),
      datasetId: datasetIdOf(o.dataset), oid: o.oid, keyOf: (b) => o.deks[b.block], threads, lead: 0,
    });
    this.size = o.plaintextSize;
    if (o.withPrefix) this.push(encodePrefix(o.oid));
  }
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.received += chunk.length;
    super._transform(chunk, enc, cb);
  }
  protected inputLen(b: Batch): number { return b.plainLen; }
  protected onResult(_b: Batch, r: OpenResult): void { this.push(r.data); }
  protected tooMuch(): Error {
    return new S3Error('IncompleteBody', `body is longer than the declared ${this.size} bytes`);
  }
  protected tooLittle(): Error {
    return new S3Error('IncompleteBody', `body ended after ${this.received} of ${this.size} bytes`);
  }
}

/** Inline (threads = 0): chunk by chunk from the input buffers (chunk-stream.ts). */
class InlineEncryptStream extends SealStream {
  private received = 0;
  private readonly size: number;
  constructor(o: EncryptOptions) {
    const n = chunkCount(o.plaintextSize);
    super({
      batches: batches([{ size: o.plaintextSize, partNumber: o.partNumber, plainStart: 0, cipherStart: 0 }], o.blockSize, { part: 0, chunk: 0 }, { part: 0, chunk: n - 1 }),
      datasetId: datasetIdOf(o.dataset), oid: o.oid, keyOf: (b) => o.deks[b.block], lead: 0,
    });
    this.size = o.plaintextSize;
    if (o.withPrefix) this.push(encodePrefix(o.oid));
  }
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.received += chunk.length;
    super._transform(chunk, enc, cb);
  }
  protected tooMuch(): Error {
    return new S3Error('IncompleteBody', `body is longer than the declared ${this.size} bytes`);
  }
  protected tooLittle(): Error {
    return new S3Error('IncompleteBody', `body ended after ${this.received} of ${this.size} bytes`);
  }
}

function checkOptions(opts: EncryptOptions): void {
  checkOid(opts.oid);
  if (!Number.isInteger(opts.partNumber) || opts.partNumber < 1 || opts.partNumber > 10000) throw new RangeError(`partNumber must be 1..10000, got ${opts.partNumber}`);
  const want = blockCount(opts.plaintextSize, opts.blockSize);
  if (opts.deks.length !== want) throw new RangeError(`${want} DEKs needed for ${opts.plaintextSize} bytes, got ${opts.deks.length}`);
  for (const d of opts.deks) if (d.length !== DEK_SIZE) throw new RangeError(`DEK must be ${DEK_SIZE} bytes`);
}

/** Seals one part (docs/FORMAT.md 2.2). Input MUST be exactly plaintextSize bytes, else IncompleteBody. */
export function createEncryptStream(opts: EncryptOptions): Transform {
  checkOptions(opts);
  const threads = opts.threads ?? (opts.plaintextSize < POOL_MIN_BYTES ? 0 : configuredThreads());
  const t = threads === 0 ? new InlineEncryptStream(opts) : new EncryptStream(opts, threads);
  // counted once every plaintext byte went through (an aborted stream counts nothing)
  t.once('finish', () => (cryptoMeter.encrypt += opts.plaintextSize));
  return t;
}

/**
 * The same bytes as createEncryptStream, for a part already whole in memory (a small PUT): sealed here in one
 * call per batch (sealBatch, the batch door the streams use too), without a stream around it. A small PUT's
 * stream set-up cost more than its AES.
 */
export function sealWhole(opts: EncryptOptions, plain: Buffer): Buffer {
  checkOptions(opts);
  if (plain.length !== opts.plaintextSize) throw new S3Error('IncompleteBody', `body is ${plain.length} bytes, declared ${opts.plaintextSize}`);
  const out = Buffer.allocUnsafe((opts.withPrefix ? PREFIX_SIZE : 0) + sealedPartSize(opts.plaintextSize));
  let at = opts.withPrefix ? encodePrefix(opts.oid).copy(out, 0) : 0;
  const datasetId = datasetIdOf(opts.dataset);
  const n = chunkCount(opts.plaintextSize);
  const part = [{ size: opts.plaintextSize, partNumber: opts.partNumber, plainStart: 0, cipherStart: 0 }];
  for (const b of batches(part, opts.blockSize, { part: 0, chunk: 0 }, { part: 0, chunk: n - 1 })) {
    const sealed = sealBatch({
      key: opts.deks[b.block], aad: baseAad(datasetId, opts.oid, b.partNumber, b.block),
      firstChunk: b.firstChunk, count: b.count, lastLen: b.lastLen, final: b.final,
      data: plain.subarray(b.plainStart, b.plainStart + b.plainLen),
    });
    at += sealed.copy(out, at);
  }
  if (at !== out.length) throw new RangeError(`sealed ${at} bytes, layout says ${out.length}`);
  cryptoMeter.encrypt += opts.plaintextSize;
  return out;
}

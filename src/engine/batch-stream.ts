import { Transform, type TransformCallback } from 'node:stream';
import type { OpenResult } from '../../workers/crypto-core.mjs';
import { baseAad } from '../format/layout.ts';
import { INLINE_HWM, type LiveCheck } from './chunk-stream.ts';
import type { Batch } from './plan.ts';
import { runBatch, type Op } from './pool.ts';

export interface BatchStreamInit {
  op: Op;
  batches: Iterator<Batch>;
  datasetId: Buffer;
  oid: Buffer;
  keyOf: (b: Batch) => Buffer;
  /** Crypto threads for this stream; 0 = inline. */
  threads: number;
  /** Bytes to hand to `onLead` before the first batch (the data prefix). */
  lead: number;
  /** Re-validation of the keys while the stream runs (see LiveCheck). */
  live?: LiveCheck;
}

/**
 * Cuts the input into the planned batches, seals or opens them (inline or in the pool) and pushes results in
 * order. At most `2 * threads` batches are in flight: the callback of _transform waits for the oldest, so a slow
 * consumer stops the producer instead of growing memory.
 */
export abstract class BatchStream extends Transform {
  private readonly init: BatchStreamInit;
  private readonly maxInFlight: number;
  private readonly inFlight: { b: Batch; p: Promise<OpenResult> }[] = [];
  private next: IteratorResult<Batch>;
  private cur: { b: Batch; buf: Buffer; filled: number } | null = null;
  private leadBuf: Buffer;
  private leadFilled = 0;
  private failed = false;

  constructor(init: BatchStreamInit) {
    // Same buffering as the inline streams: with the 16 KiB default every 64 KiB socket read paused the source.
    super({ readableHighWaterMark: INLINE_HWM, writableHighWaterMark: INLINE_HWM });
    this.init = init;
    this.maxInFlight = Math.max(2, init.threads * 2);
    this.next = init.batches.next();
    this.leadBuf = Buffer.alloc(init.lead);
  }

  protected abstract inputLen(b: Batch): number;
  protected abstract onResult(b: Batch, r: OpenResult): void;
  protected abstract tooMuch(): Error;
  protected abstract tooLittle(): Error;
  protected beforeSubmit(_b: Batch): void {}
  protected onLead(_lead: Buffer): void {}

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failed) return cb();
    const live = this.init.live;
    // One integer compare per input buffer while the key state is unchanged (see LiveCheck).
    if (live !== undefined && live.stale()) return this.recheck(live, () => this.run(chunk, cb), cb);
    this.run(chunk, cb);
  }

  private run(chunk: Buffer, cb: TransformCallback): void {
    try {
      this.consume(chunk);
    } catch (e) {
      return this.fail(e, cb);
    }
    if (this.inFlight.length <= this.maxInFlight) return cb();
    this.settle(this.maxInFlight).then(() => cb(), (e: unknown) => this.fail(e, cb));
  }

  override _flush(cb: TransformCallback): void {
    if (this.failed) return cb();
    const live = this.init.live;
    // The results still in flight are pushed here: they get the same check as the input.
    if (live !== undefined && live.stale()) return this.recheck(live, () => this.finish(cb), cb);
    this.finish(cb);
  }

  private finish(cb: TransformCallback): void {
    this.settle(0).then(() => {
      if (this.leadFilled < this.leadBuf.length || this.cur !== null || !this.next.done) throw this.tooLittle();
      cb();
    }).catch((e: unknown) => this.fail(e, cb));
  }

  /**
   * The key state moved: hold the input until the keys are re-validated, then check again the batches already
   * submitted (their results are not pushed yet) under the new state before going on with `then`.
   */
  private recheck(live: LiveCheck, then: () => void, cb: TransformCallback): void {
    live.recheck().then(
      () => {
        if (this.failed || this.destroyed) return cb();
        try {
          for (const f of this.inFlight) this.beforeSubmit(f.b);
        } catch (e) {
          return this.fail(e, cb);
        }
        then();
      },
      (e: unknown) => (this.failed || this.destroyed ? cb() : this.fail(e, cb)),
    );
  }

  private fail(e: unknown, cb: TransformCallback): void {
    this.failed = true;
    cb(e as Error);
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.leadFilled < this.leadBuf.length) {
        const n = chunk.copy(this.leadBuf, this.leadFilled, off, off + this.leadBuf.length - this.leadFilled);
        this.leadFilled += n;
        off += n;
        if (this.leadFilled === this.leadBuf.length) this.onLead(this.leadBuf);
        continue;
      }
      if (this.cur === null) {
        if (this.next.done) throw this.tooMuch();
        const b = this.next.value;
        this.next = this.init.batches.next();
        const need = this.inputLen(b);
        if (this.init.threads === 0 && chunk.length - off >= need) {
          // Inline fast path: the whole batch is in this chunk, no copy needed.
          this.submit(b, chunk.subarray(off, off + need));
          off += need;
          continue;
        }
        this.cur = { b, buf: Buffer.allocUnsafeSlow(need), filled: 0 };
      }
      const c = this.cur;
      const n = chunk.copy(c.buf, c.filled, off, off + c.buf.length - c.filled);
      c.filled += n;
      off += n;
      if (c.filled === c.buf.length) {
        this.cur = null;
        this.submit(c.b, c.buf);
      }
    }
  }

  private submit(b: Batch, data: Buffer): void {
    this.beforeSubmit(b);
    const task = {
      key: this.init.keyOf(b), aad: baseAad(this.init.datasetId, this.init.oid, b.partNumber, b.block),
      firstChunk: b.firstChunk, count: b.count, lastLen: b.lastLen, final: b.final, data,
    };
    const r = runBatch(this.init.op, task, this.init.threads);
    if (!(r instanceof Promise)) {
      this.onResult(b, r);
      return;
    }
    r.catch(() => {}); // observed later in order by settle(); avoid an unhandled rejection meanwhile
    this.inFlight.push({ b, p: r });
  }

  private async settle(limit: number): Promise<void> {
    while (this.inFlight.length > limit) {
      const { b, p } = this.inFlight.shift()!;
      this.onResult(b, await p);
    }
  }
}

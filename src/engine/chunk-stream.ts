import { createCipheriv, createDecipheriv, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { FormatError } from '../format/errors.ts';
import { AAD_OFF, CHUNK_SIZE, NONCE_SIZE, TAG_SIZE, baseAad } from '../format/layout.ts';
import type { Batch } from './plan.ts';

/**
 * Buffering of the inline streams on each side: one socket read (64 KiB). It was 512 KiB so that the sockets on
 * either side keep moving while the other waits, but buffers queued that long outlive V8's cheap collections and
 * are freed by major ones: with four transfers on two cores that doubled the gateway's CPU per MiB (37-50 major GCs
 * per GiB). 64 KiB here and on the body streams around it cut CPU per MiB by a median 19% and raised throughput in
 * all 12 A/B pairs (bench/README.md "Data-plane designs").
 */
export const INLINE_HWM = 64 * 1024;

/**
 * Key state a stream re-validates while it runs (revocations made after it started). `stale()` runs once per
 * input buffer, so it must stay as cheap as an integer compare; only when it says true does the stream hold that
 * buffer and await `recheck()`, which refreshes what the stream's revocation predicate answers, or rejects
 * (KeyRevoked, DekErased, a backend failure: fail closed) — then the stream errors before releasing more.
 */
export interface LiveCheck {
  stale(): boolean;
  recheck(): Promise<void>;
}

export interface ChunkStreamInit {
  batches: Iterator<Batch>;
  datasetId: Buffer;
  oid: Buffer;
  keyOf: (b: Batch) => Buffer;
  /** Bytes to hand to `onLead` before the first chunk (the data prefix). */
  lead: number;
  /** Re-validation of the keys while the stream runs (decrypt only). */
  live?: LiveCheck;
}

/**
 * Inline (threads = 0) crypto, one chunk at a time straight from the input buffers: no re-assembly of batches, no
 * copy of the cipher output. A chunk that spans two input buffers is fed to its cipher in two `update` calls.
 * Subclasses handle the chunk body and tag. Chunk order comes from the same plan as the pool path (plan.ts).
 * The pieces are pushed as they are (2-3 per sealed chunk): Node's HTTP messages cork the socket for a tick, so
 * they still leave in one writev; gathering them into 1 MiB buffers (one more copy) measured no better.
 */
abstract class ChunkStream extends Transform {
  private readonly init: ChunkStreamInit;
  private nextBatch: IteratorResult<Batch>;
  private batch: Batch | null = null;
  /** Index within `batch` of the next chunk to start. */
  private nextIndex = 0;
  private aad: Buffer | null = null;
  private readonly nonce = Buffer.alloc(NONCE_SIZE);
  private leadBuf: Buffer;
  private leadFilled = 0;
  private failed = false;
  /** The current chunk: its batch, index within its block, plaintext length and offset, bytes of its body still due. */
  protected cur: Batch | null = null;
  protected chunk = 0;
  protected len = 0;
  protected plainStart = 0;
  protected bodyLeft = 0;
  protected inChunk = false;

  constructor(init: ChunkStreamInit) {
    super({ readableHighWaterMark: INLINE_HWM, writableHighWaterMark: INLINE_HWM });
    this.init = init;
    this.nextBatch = init.batches.next();
    this.leadBuf = Buffer.alloc(init.lead);
  }

  protected abstract tooMuch(): Error;
  protected abstract tooLittle(): Error;
  protected beforeBatch(_b: Batch): void {}
  protected onLead(_lead: Buffer): void {}
  /** Start the chunk now in `cur`/`chunk`/`len`: create its cipher from `key`, `nonce`, `aad`. */
  protected abstract begin(key: Buffer, nonce: Buffer, aad: Buffer): void;
  /** Consume input from `off` for the current chunk; returns the new offset. Sets `inChunk = false` when done. */
  protected abstract feed(input: Buffer, off: number): number;
  protected wipe(): void {}

  override _transform(input: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failed) return cb();
    const live = this.init.live;
    if (live !== undefined && live.stale()) {
      // The key state moved since the last check (once per input buffer; an integer compare until then): this
      // buffer waits until the keys are re-validated, and the block in progress is checked again, since
      // beforeBatch saw it under the old state. The input pauses meanwhile (backpressure).
      live.recheck().then(
        () => {
          if (this.failed || this.destroyed) return cb();
          try {
            if (this.batch !== null && (this.inChunk || this.nextIndex < this.batch.count)) this.beforeBatch(this.batch);
          } catch (e) {
            return this.fail(e, cb);
          }
          this.run(input, cb);
        },
        (e: unknown) => (this.failed || this.destroyed ? cb() : this.fail(e, cb)),
      );
      return;
    }
    this.run(input, cb);
  }

  private run(input: Buffer, cb: TransformCallback): void {
    try {
      this.consume(input);
    } catch (e) {
      return this.fail(e, cb);
    }
    cb();
  }

  private fail(e: unknown, cb: TransformCallback): void {
    this.failed = true;
    this.wipe();
    cb(e as Error);
  }

  override _flush(cb: TransformCallback): void {
    if (this.failed) return cb();
    if (this.leadFilled < this.leadBuf.length || this.inChunk || this.hasNext()) {
      this.failed = true;
      this.wipe();
      return cb(this.tooLittle());
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.wipe();
    cb(err);
  }

  private hasNext(): boolean {
    return (this.batch !== null && this.nextIndex < this.batch.count) || !this.nextBatch.done;
  }

  private startChunk(): void {
    if (this.batch === null || this.nextIndex === this.batch.count) {
      if (this.nextBatch.done) throw this.tooMuch();
      const b = this.nextBatch.value;
      this.nextBatch = this.init.batches.next();
      this.beforeBatch(b);
      this.batch = b;
      this.nextIndex = 0;
      this.aad = baseAad(this.init.datasetId, this.init.oid, b.partNumber, b.block);
    }
    const b = this.batch;
    const i = this.nextIndex++;
    const last = i === b.count - 1;
    this.cur = b;
    this.chunk = b.firstChunk + i;
    this.len = last ? b.lastLen : CHUNK_SIZE;
    this.plainStart = b.plainStart + i * CHUNK_SIZE;
    this.bodyLeft = this.len;
    const aad = this.aad!;
    aad.writeUInt32BE(this.chunk, AAD_OFF.chunk);
    aad[AAD_OFF.flags] = b.final && last ? 1 : 0;
    this.nonce.writeUInt32BE(this.chunk, 8);
    this.inChunk = true;
    this.begin(this.init.keyOf(b), this.nonce, aad);
  }

  private consume(input: Buffer): void {
    let off = 0;
    const n = input.length;
    while (off < n) {
      if (this.leadFilled < this.leadBuf.length) {
        const k = input.copy(this.leadBuf, this.leadFilled, off, off + this.leadBuf.length - this.leadFilled);
        this.leadFilled += k;
        off += k;
        if (this.leadFilled === this.leadBuf.length) this.onLead(this.leadBuf);
        continue;
      }
      if (!this.inChunk) this.startChunk();
      off = this.feed(input, off);
    }
  }
}

export interface OpenInit extends ChunkStreamInit {
  /** Plaintext range to release, inclusive (object offsets). */
  start: number;
  endInclusive: number;
}

/**
 * Opens sealed chunks. The plaintext of a chunk is held (as the `update` outputs) until its tag verifies, then
 * released trimmed to the range; a failing chunk is zeroed and ends the stream with ChunkAuthFailed.
 */
export abstract class OpenStream extends ChunkStream {
  private d: DecipherGCM | null = null;
  private readonly held: Buffer[] = [];
  private readonly tag = Buffer.alloc(TAG_SIZE);
  private tagFilled = 0;
  private readonly rangeStart: number;
  private readonly rangeEnd: number;

  constructor(init: OpenInit) {
    super(init);
    this.rangeStart = init.start;
    this.rangeEnd = init.endInclusive;
  }

  protected begin(key: Buffer, nonce: Buffer, aad: Buffer): void {
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    d.setAAD(aad);
    this.d = d;
    this.tagFilled = 0;
  }

  protected feed(input: Buffer, off: number): number {
    const d = this.d!;
    const avail = input.length - off;
    if (this.bodyLeft > 0) {
      const len = this.len;
      if (this.bodyLeft === len && avail >= len + TAG_SIZE) {
        // The whole sealed chunk is in this buffer.
        d.setAuthTag(input.subarray(off + len, off + len + TAG_SIZE));
        this.held.push(d.update(input.subarray(off, off + len)));
        this.bodyLeft = 0;
        this.verify();
        return off + len + TAG_SIZE;
      }
      const take = Math.min(this.bodyLeft, avail);
      this.held.push(d.update(input.subarray(off, off + take)));
      this.bodyLeft -= take;
      return off + take;
    }
    if (this.tagFilled === 0 && avail >= TAG_SIZE) {
      d.setAuthTag(input.subarray(off, off + TAG_SIZE));
      this.verify();
      return off + TAG_SIZE;
    }
    const k = input.copy(this.tag, this.tagFilled, off, off + TAG_SIZE - this.tagFilled);
    this.tagFilled += k;
    if (this.tagFilled === TAG_SIZE) {
      d.setAuthTag(this.tag);
      this.verify();
    }
    return off + k;
  }

  private verify(): void {
    const d = this.d!;
    this.d = null;
    this.inChunk = false;
    try {
      d.final();
    } catch {
      const b = this.cur!;
      this.wipe();
      throw new FormatError('ChunkAuthFailed', `part ${b.partNumber} block ${b.block} chunk ${this.chunk} failed authentication`);
    }
    // Release the verified chunk, trimmed to [start, end].
    const from = this.rangeStart - this.plainStart;
    const to = this.rangeEnd + 1 - this.plainStart;
    let pos = 0;
    for (const p of this.held) {
      const a = Math.max(0, from - pos);
      const z = Math.min(p.length, to - pos);
      if (z > a) this.push(a === 0 && z === p.length ? p : p.subarray(a, z));
      pos += p.length;
    }
    this.held.length = 0;
  }

  /** Zeroes unverified plaintext. */
  protected override wipe(): void {
    for (const p of this.held) p.fill(0);
    this.held.length = 0;
    this.d = null;
  }
}

/** Seals chunks: each `update` output goes out as it is produced, the tag after the chunk's last byte. */
export abstract class SealStream extends ChunkStream {
  private c: CipherGCM | null = null;

  protected begin(key: Buffer, nonce: Buffer, aad: Buffer): void {
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    this.c = c;
  }

  protected feed(input: Buffer, off: number): number {
    const c = this.c!;
    const take = Math.min(this.bodyLeft, input.length - off);
    this.push(c.update(take === input.length ? input : input.subarray(off, off + take)));
    this.bodyLeft -= take;
    if (this.bodyLeft === 0) {
      c.final();
      this.push(c.getAuthTag());
      this.c = null;
      this.inChunk = false;
    }
    return off + take;
  }

  protected override wipe(): void {
    this.c = null;
  }
}

/**
 * Stream helpers of the object layer: bounded whole-body reads, the held-back tail that keeps an unverified
 * upload from committing, and the release of a stream its consumer never took.
 */
import { Readable, Transform } from 'node:stream';
import { S3Error } from '../errors.ts';

/** Bytes `holdLastBytes` keeps back: at least one GCM tag, so the backend never has a complete last chunk early. */
const HOLD_BYTES = 16;

/** Bytes of whole bodies held at once, across requests: past it, uploads stream instead (memory stays bounded). */
export class ByteBudget {
  private used = 0;
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

/**
 * Hand a stream we opened (a decrypting read, a backend body) to `write`; if the write fails before consuming
 * it, release the stream — and the backend response under it — at once instead of leaving it paused.
 */
export async function consuming<T>(stream: Readable, write: (s: Readable) => Promise<T>): Promise<T> {
  try {
    return await write(stream);
  } catch (e) {
    if (!stream.readableEnded) stream.destroy();
    throw e;
  }
}

/**
 * The bytes of a stream into one buffer of `size`, by its events (a for-await loop costs small requests an async
 * iterator, an end-of-stream watcher and an abort DOMException each). `longer` when more arrives (the stream is
 * then destroyed), `shorter(got)` when it ends early; a stream error, or a close before the end, rejects.
 */
function gather(stream: Readable, size: number, longer: () => Error, shorter: (got: number) => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    const settle = (e: Error | null) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (e) reject(e);
      else resolve(out);
    };
    const onData = (c: Buffer) => {
      if (at + c.length > size) {
        settle(longer());
        stream.destroy();
        return;
      }
      c.copy(out, at);
      at += c.length;
    };
    const onEnd = () => settle(at === size ? null : shorter(at));
    const onError = (e: Error) => settle(e);
    const premature = () => Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    const onClose = () => settle(premature());
    // one that already ended or failed emits neither again
    if (stream.readableEnded) return settle(size === 0 ? null : shorter(0));
    if (stream.destroyed) return settle(stream.errored ?? premature());
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onClose);
  });
}

/** Exactly `size` bytes of a stream, else IncompleteBody. */
export function readExactly(body: Readable, size: number): Promise<Buffer> {
  return gather(
    body,
    size,
    () => new S3Error('IncompleteBody', `body is longer than the declared ${size} bytes`),
    (at) => new S3Error('IncompleteBody', `body ended after ${at} of ${size} bytes`),
  );
}

/** A stream of exactly `size` bytes collected into one buffer. */
export function collect(stream: Readable, size: number): Promise<Buffer> {
  return gather(
    stream,
    size,
    () => new S3Error('InternalError', 'ciphertext longer than its layout'),
    () => new S3Error('InternalError', 'ciphertext shorter than its layout'),
  );
}

/**
 * Pass ciphertext through but keep its last bytes back until `verify` (the upload's checksums) succeeds, so a
 * backend never receives a complete object whose plaintext failed verification: the engine seals the final
 * chunk as soon as the declared length has arrived, before the trailer checksum can be checked.
 */
export function holdLastBytes(verify: () => Promise<void>): Transform {
  let tail = Buffer.alloc(0);
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (chunk.length < HOLD_BYTES) {
        // Rare (tiny writes): merge into the held bytes and release what exceeds them.
        const all = Buffer.concat([tail, chunk]);
        tail = Buffer.from(all.subarray(Math.max(0, all.length - HOLD_BYTES)));
        cb(null, all.length > HOLD_BYTES ? all.subarray(0, all.length - HOLD_BYTES) : undefined);
        return;
      }
      // Release the previously held bytes and all but the end of this chunk, without copying the chunk.
      if (tail.length) this.push(tail);
      tail = Buffer.from(chunk.subarray(chunk.length - HOLD_BYTES));
      cb(null, chunk.subarray(0, chunk.length - HOLD_BYTES));
    },
    flush(cb) {
      verify().then(() => cb(null, tail.length ? tail : undefined), cb);
    },
  });
}

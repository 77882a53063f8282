/** Small helpers shared by the admin jobs: JSON state in the meta bucket, a rate limiter, a bounded pool. */
import { createHash } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { isS3Error } from '../errors.ts';

export const sha256hex = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

export async function readState<T>(backend: Backend, bucket: string, key: string): Promise<T | null> {
  return (await readStateTagged<T>(backend, bucket, key))?.value ?? null;
}

/**
 * Write a state object; with a condition, only if it is still the version read (`ifMatch`) or absent
 * (`ifNoneMatch`). Returns the new ETag; PreconditionFailed when another writer came first.
 */
export async function writeState(backend: Backend, bucket: string, key: string, value: unknown, cond: { ifMatch?: string; ifNoneMatch?: '*' } = {}): Promise<string> {
  const data = Buffer.from(JSON.stringify(value, null, 1), 'utf8');
  return (await backend.putObject(bucket, key, data, { size: data.length, ...cond })).etag;
}

/** A state object with the ETag it was read at (for a conditional write back). */
export async function readStateTagged<T>(backend: Backend, bucket: string, key: string): Promise<{ value: T; etag: string } | null> {
  try {
    const { data, info } = await backend.getBuffer(bucket, key);
    return { value: JSON.parse(data.toString('utf8')) as T, etag: info.etag };
  } catch (e) {
    if (isS3Error(e, 'NoSuchKey')) return null;
    throw e;
  }
}

/** Keys under a prefix of one bucket, in order, page by page (startAfter is exclusive). */
export async function* listPages(
  backend: Backend,
  bucket: string,
  prefix: string,
  startAfter?: string,
): AsyncGenerator<{ key: string; size: number; etag: string }[]> {
  let token: string | undefined;
  do {
    const page = await backend.listObjects(bucket, { prefix, startAfter: token ? undefined : startAfter, continuationToken: token, maxKeys: 1000 });
    yield page.objects.map((o) => ({ key: o.key, size: o.size, etag: o.etag }));
    token = page.isTruncated ? page.nextContinuationToken : undefined;
  } while (token);
}

/** Token bucket: `ratePerSec` operations per second (0 = unlimited), bursts of up to one second's worth. */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  constructor(private ratePerSec: number) {
    this.tokens = Math.min(ratePerSec, 1);
  }
  setRate(r: number): void {
    this.ratePerSec = r;
  }
  async take(): Promise<void> {
    for (;;) {
      if (!this.ratePerSec) return;
      const now = Date.now();
      this.tokens = Math.min(Math.max(1, this.ratePerSec), this.tokens + ((now - this.last) / 1000) * this.ratePerSec);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(1, ((1 - this.tokens) / this.ratePerSec) * 1000)));
    }
  }
}

/** Run `fn` over items with at most `limit` in flight. */
export async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) {
      const item = items[i++];
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/** A backend wrapper counting the bytes of every GET on a bucket other than the meta bucket. */
export function countingBackend(inner: Backend, metaBucket: string, counter: { dataBytesRead: number }): Backend {
  return new Proxy(inner, {
    get(target, prop, recv) {
      if (prop === 'getBuffer') {
        return async (bucket: string, key: string) => {
          const r = await target.getBuffer(bucket, key);
          if (bucket !== metaBucket) counter.dataBytesRead += r.data.length;
          return r;
        };
      }
      if (prop === 'getObject') {
        return async (bucket: string, key: string, range?: { start: number; end?: number }) => {
          const r = await target.getObject(bucket, key, range);
          if (bucket !== metaBucket) r.body.on('data', (c: Buffer) => (counter.dataBytesRead += c.length));
          return r;
        };
      }
      const v: unknown = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

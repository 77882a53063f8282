/**
 * Bounded LRU caches with TTL. `SecretCache` holds Buffers (unwrapped KEKs, other secrets) and zeroes them
 * (`fill(0)`) whenever they leave the cache: eviction, expiry, delete, overwrite or clear.
 *
 * Counters: every cache has its own `stats`; the process-wide totals of all key caches are in `keyCacheCounters`
 * (read by the metrics module).
 */
import { S3Error } from '../errors.ts';

export interface CacheStats {
  hits: number;
  misses: number;
  /** CMK unwrap calls made to fill the cache (incremented by the owner via `countUnwrap`). */
  unwraps: number;
  evictions: number;
  expirations: number;
}

const newStats = (): CacheStats => ({ hits: 0, misses: 0, unwraps: 0, evictions: 0, expirations: 0 });

/** Process-wide totals over every SecretCache / LruTtlCache created with `countGlobally: true` (default). */
export const keyCacheCounters: CacheStats = newStats();

export interface LruTtlOptions<V> {
  /** Maximum number of entries (>= 1). */
  max: number;
  /** Time to live per entry, ms (> 0). */
  ttlMs: number;
  /** Called with every value that leaves the cache. */
  dispose?: (value: V, key: string) => void;
  /** Add this cache's counters to `keyCacheCounters` (default true). */
  countGlobally?: boolean;
  /** Injectable clock (tests). */
  now?: () => number;
}

interface Entry<V> {
  value: V;
  expires: number;
}

export class LruTtlCache<V> {
  readonly stats: CacheStats = newStats();
  private readonly map = new Map<string, Entry<V>>();
  private readonly max: number;
  private readonly ttlMs: number;
  private readonly dispose?: (value: V, key: string) => void;
  private readonly global: boolean;
  private readonly now: () => number;

  constructor(opts: LruTtlOptions<V>) {
    if (!(opts.max >= 1)) throw new RangeError('cache max must be >= 1');
    if (!(opts.ttlMs > 0)) throw new RangeError('cache ttlMs must be > 0');
    this.max = Math.floor(opts.max);
    this.ttlMs = opts.ttlMs;
    this.dispose = opts.dispose;
    this.global = opts.countGlobally ?? true;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.map.size;
  }

  private bump(k: keyof CacheStats, n = 1): void {
    this.stats[k] += n;
    if (this.global) keyCacheCounters[k] += n;
  }

  /** Record that the owner had to unwrap (or otherwise compute) a value for this cache. */
  countUnwrap(): void {
    this.bump('unwraps');
  }

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) {
      this.bump('misses');
      return undefined;
    }
    if (e.expires <= this.now()) {
      this.map.delete(key);
      this.bump('expirations');
      this.bump('misses');
      this.dispose?.(e.value, key);
      return undefined;
    }
    // refresh recency
    this.map.delete(key);
    this.map.set(key, e);
    this.bump('hits');
    return e.value;
  }

  /** Presence without touching recency or counters. */
  has(key: string): boolean {
    const e = this.map.get(key);
    return !!e && e.expires > this.now();
  }

  set(key: string, value: V): void {
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      if (old.value !== value) this.dispose?.(old.value, key);
    }
    this.map.set(key, { value, expires: this.now() + this.ttlMs });
    while (this.map.size > this.max) {
      const oldestKey = this.map.keys().next().value as string;
      const oldest = this.map.get(oldestKey)!;
      this.map.delete(oldestKey);
      this.bump('evictions');
      this.dispose?.(oldest.value, oldestKey);
    }
  }

  delete(key: string): boolean {
    const e = this.map.get(key);
    if (!e) return false;
    this.map.delete(key);
    this.dispose?.(e.value, key);
    return true;
  }

  /** Delete every entry whose key satisfies the predicate. */
  deleteWhere(pred: (key: string) => boolean): number {
    let n = 0;
    for (const k of [...this.map.keys()]) if (pred(k) && this.delete(k)) n++;
    return n;
  }

  /** Drop expired entries now (so secrets do not linger in memory until the next access). */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const [k, e] of [...this.map]) {
      if (e.expires <= now) {
        this.map.delete(k);
        this.bump('expirations');
        this.dispose?.(e.value, k);
        n++;
      }
    }
    return n;
  }

  clear(): void {
    const entries = [...this.map];
    this.map.clear();
    for (const [k, e] of entries) this.dispose?.(e.value, k);
  }
}

/**
 * The key, or ServiceUnavailable when a cache clear zeroed it while the caller held it (a real 32-byte key is never
 * all zero): sealing under — or wrapping — a zeroed key would lose the data for good.
 */
export function liveKey(k: Buffer): Buffer {
  if (k.length !== 32 || k.every((b) => b === 0)) throw new S3Error('ServiceUnavailable', 'Key cache was cleared during the operation; retry.');
  return k;
}

/** LRU+TTL cache of secret Buffers; every Buffer leaving the cache is zeroed. */
export class SecretCache extends LruTtlCache<Buffer> {
  constructor(opts: Omit<LruTtlOptions<Buffer>, 'dispose'> & { dispose?: (value: Buffer, key: string) => void }) {
    const extra = opts.dispose;
    super({
      ...opts,
      dispose: (v, k) => {
        v.fill(0);
        extra?.(v, k);
      },
    });
  }
}

/** Alias kept for readability at call sites: the cache of unwrapped KEKs. */
export { SecretCache as KekCache };

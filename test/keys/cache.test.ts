import { describe, expect, it } from 'vitest';
import { LruTtlCache, SecretCache, keyCacheCounters } from '../../src/keys/cache.ts';

describe('LRU/TTL caches', () => {
  it('LRU order, counters, zeroing on eviction/overwrite/delete/clear', () => {
    const c = new SecretCache({ max: 2, ttlMs: 1000 });
    const a = Buffer.alloc(8, 1);
    const b = Buffer.alloc(8, 2);
    const d = Buffer.alloc(8, 3);
    c.set('a', a);
    c.set('b', b);
    const h0 = keyCacheCounters.hits;
    expect(c.get('a')).toBe(a); // a most recent now
    expect(keyCacheCounters.hits).toBe(h0 + 1);
    c.set('d', d); // evicts b
    expect(b.every((x) => x === 0)).toBe(true);
    expect(c.get('b')).toBeUndefined();
    expect(c.stats).toMatchObject({ hits: 1, misses: 1, evictions: 1 });
    const a2 = Buffer.alloc(8, 9);
    c.set('a', a2); // overwrite zeroes the old value
    expect(a.every((x) => x === 0)).toBe(true);
    c.delete('a');
    expect(a2.every((x) => x === 0)).toBe(true);
    c.clear();
    expect(d.every((x) => x === 0)).toBe(true);
    expect(c.size).toBe(0);
  });

  it('TTL expiry on access and by sweep', () => {
    let now = 0;
    const c = new SecretCache({ max: 10, ttlMs: 100, now: () => now });
    const x = Buffer.alloc(4, 7);
    const y = Buffer.alloc(4, 7);
    c.set('x', x);
    c.set('y', y);
    now = 99;
    expect(c.get('x')).toBe(x);
    now = 100;
    expect(c.get('x')).toBeUndefined();
    expect(x.every((v) => v === 0)).toBe(true);
    expect(c.sweep()).toBe(1);
    expect(y.every((v) => v === 0)).toBe(true);
    expect(c.stats.expirations).toBe(2);
  });

  it('generic variant with dispose and deleteWhere', () => {
    const gone: string[] = [];
    const c = new LruTtlCache<{ v: number }>({ max: 5, ttlMs: 1000, dispose: (_v, k) => gone.push(k), countGlobally: false });
    c.set('ds1:1', { v: 1 });
    c.set('ds1:2', { v: 2 });
    c.set('ds2:1', { v: 3 });
    expect(c.deleteWhere((k) => k.startsWith('ds1:'))).toBe(2);
    expect(gone).toEqual(['ds1:1', 'ds1:2']);
    expect(c.has('ds2:1')).toBe(true);
    expect(() => new LruTtlCache({ max: 0, ttlMs: 1 })).toThrow();
  });
});

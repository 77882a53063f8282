import type { HeaderFields } from '../engine/index.ts';

interface Entry {
  value: { header: HeaderFields; etag: string };
  expires: number;
}

/** Wipe every DEK a header holds: called when a header leaves the cache. */
export function wipeHeaderKeys(h: HeaderFields): void {
  for (const part of h.parts) for (const dek of part.deks) dek?.fill(0);
}

/** A copy of a header whose DEK buffers are the caller's own (so cache eviction can wipe the originals). */
export function cloneHeaderKeys(h: HeaderFields): HeaderFields {
  return { ...h, parts: h.parts.map((p) => ({ ...p, deks: p.deks.map((d) => (d ? Buffer.from(d) : null)) })) };
}

/**
 * Opened headers by (bucket, key, oid): a hot object costs one header read and one KEK unwrap per TTL.
 * Bounded, TTL'd; DEKs are zeroed when an entry is evicted, expires or the cache is cleared (revocation).
 */
export class HeaderCache {
  private readonly map = new Map<string, Entry>();
  hits = 0;
  misses = 0;
  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
  ) {}

  private id(bucket: string, key: string, oid: string) {
    return `${bucket}\u0000${key}\u0000${oid}`;
  }

  get(bucket: string, key: string, oid: string): Entry['value'] | undefined {
    const id = this.id(bucket, key, oid);
    const e = this.map.get(id);
    if (!e) {
      this.misses++;
      return undefined;
    }
    if (e.expires <= Date.now()) {
      this.map.delete(id);
      wipeHeaderKeys(e.value.header);
      this.misses++;
      return undefined;
    }
    this.map.delete(id);
    this.map.set(id, e);
    this.hits++;
    return e.value;
  }

  set(bucket: string, key: string, oid: string, value: Entry['value']): void {
    const id = this.id(bucket, key, oid);
    const old = this.map.get(id);
    if (old && old.value.header !== value.header) wipeHeaderKeys(old.value.header);
    this.map.delete(id);
    this.map.set(id, { value, expires: Date.now() + this.ttlMs });
    while (this.map.size > this.max) {
      const [firstId, first] = this.map.entries().next().value as [string, Entry];
      this.map.delete(firstId);
      wipeHeaderKeys(first.value.header);
    }
  }

  delete(bucket: string, key: string, oid: string): void {
    const id = this.id(bucket, key, oid);
    const e = this.map.get(id);
    if (e) {
      this.map.delete(id);
      wipeHeaderKeys(e.value.header);
    }
  }

  clear(): void {
    for (const e of this.map.values()) wipeHeaderKeys(e.value.header);
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

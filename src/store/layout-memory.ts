/**
 * Where each key's current data object was last seen: its oid and its layout (part sizes and numbers, block size),
 * so that a Range or partNumber GET can plan the backend's ranged GET without a HEAD first (ObjectStore.openRange:
 * one backend round trip instead of two, as for whole GETs). Nothing here is trusted: the ranged GET's answer must
 * name the same oid and that version's header must have the same layout before anything of it is decrypted, else
 * the read starts over the long way. No key material: DEKs stay in the header cache.
 *
 * Bounded by entries and by the parts they hold in all (an object may have 10,000 parts): the earliest remembered
 * goes first (seeing the same version again changes nothing).
 */
import type { HeaderFields } from '../engine/index.ts';

export interface SeenLayout {
  oid: string;
  blockSize: number;
  chunkSize: number;
  /** Plaintext size and part number of each part, in order. */
  sizes: number[];
  numbers: (number | undefined)[];
  /** Plaintext bytes in all. */
  size: number;
}

const MAX_ENTRIES = 4096;
const MAX_PARTS = 256 * 1024;

export class LayoutMemory {
  private readonly map = new Map<string, SeenLayout>();
  private parts = 0;

  private id(bucket: string, key: string): string {
    return `${bucket}\u0000${key}`;
  }

  get(bucket: string, key: string): SeenLayout | undefined {
    return this.map.get(this.id(bucket, key));
  }

  /** The current version of bucket/key was seen with this header (its oid and layout). */
  remember(bucket: string, key: string, h: HeaderFields): void {
    const id = this.id(bucket, key);
    const oid = h.oid.toString('hex');
    // every GET and HEAD of a key lands here: the same version again costs a lookup, not new arrays
    const seen = this.map.get(id);
    if (seen && seen.oid === oid && sameLayout(h, seen)) return;
    this.drop(id);
    if (h.parts.length > MAX_PARTS) return;
    const sizes = h.parts.map((p) => p.plaintextSize);
    this.map.set(id, {
      oid,
      blockSize: h.blockSize,
      chunkSize: h.chunkSize,
      sizes,
      numbers: h.parts.map((p) => p.partNumber),
      size: sizes.reduce((a, b) => a + b, 0),
    });
    this.parts += sizes.length;
    while (this.map.size > MAX_ENTRIES || this.parts > MAX_PARTS) this.drop(this.map.keys().next().value as string);
  }

  forget(bucket: string, key: string): void {
    this.drop(this.id(bucket, key));
  }

  private drop(id: string): void {
    const e = this.map.get(id);
    if (!e) return;
    this.map.delete(id);
    this.parts -= e.sizes.length;
  }
}

/** The header's layout is the one remembered (same oid, parts, block and chunk size). */
export function sameLayout(h: HeaderFields, l: SeenLayout): boolean {
  return (
    h.oid.toString('hex') === l.oid &&
    h.blockSize === l.blockSize &&
    h.chunkSize === l.chunkSize &&
    h.parts.length === l.sizes.length &&
    h.parts.every((p, i) => p.plaintextSize === l.sizes[i] && p.partNumber === l.numbers[i])
  );
}

/** A stand-in header of the remembered layout for planRange (sizes and part numbers only: no keys). */
export function layoutHeader(l: SeenLayout): Pick<HeaderFields, 'parts'> {
  return { parts: l.sizes.map((plaintextSize, i) => ({ plaintextSize, partNumber: l.numbers[i], deks: [] })) };
}

/**
 * HTTP Range parsing as S3 does it: a single `bytes=` range; syntactically invalid or multi-range headers are
 * ignored (the full object is returned); a well-formed range that cannot be satisfied is InvalidRange (416).
 */
import { S3Error } from '../errors.ts';

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

const RANGE_RE = /^bytes=(\d*)-(\d*)$/;

export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null;
  const m = RANGE_RE.exec(header.trim());
  if (!m) return null;
  const [, a, b] = m as unknown as [string, string, string];
  const total = BigInt(size);
  const unsatisfiable = () =>
    new S3Error('InvalidRange', undefined, { RangeRequested: header.trim().slice(0, 128), ActualObjectSize: String(size) });
  if (a === '' && b === '') return null;
  if (a === '') {
    // suffix range: last n bytes
    const n = BigInt(b);
    if (n === 0n || total === 0n) throw unsatisfiable();
    const len = n > total ? total : n;
    return { start: Number(total - len), end: size - 1 };
  }
  const start = BigInt(a);
  if (b !== '') {
    const end = BigInt(b);
    if (end < start) return null; // syntactically invalid: ignored
    if (start >= total) throw unsatisfiable();
    return { start: Number(start), end: Number(end >= total ? total - 1n : end) };
  }
  if (start >= total) throw unsatisfiable();
  return { start: Number(start), end: size - 1 };
}

/** `bytes start-end/size` for the Content-Range response header. */
export const contentRange = (r: ByteRange, size: number): string => `bytes ${r.start}-${r.end}/${size}`;

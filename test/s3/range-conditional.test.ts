import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseRange } from '../../src/s3/range.ts';
import { checkCopySourceConditions, checkGetConditions, checkWriteConditions, etagMatches } from '../../src/s3/conditional.ts';
import { S3Error } from '../../src/errors.ts';

const code = (f: () => unknown) => {
  try { f(); } catch (e) { if (e instanceof S3Error) return e.code; throw e; }
  return 'OK';
};

/** Reference model written from the S3 / RFC 7233 rules, independent of the implementation. */
function model(h: string | undefined, size: number): { start: number; end: number } | null | 'InvalidRange' {
  if (h === undefined) return null;
  const t = h.trim();
  if (!t.startsWith('bytes=')) return null;
  const spec = t.slice(6);
  const dash = spec.indexOf('-');
  if (dash < 0 || spec.indexOf('-', dash + 1) >= 0) return null;
  const a = spec.slice(0, dash), b = spec.slice(dash + 1);
  if (!/^\d*$/.test(a) || !/^\d*$/.test(b) || (a === '' && b === '')) return null;
  if (a === '') {
    const n = BigInt(b);
    if (n === 0n || size === 0) return 'InvalidRange';
    return { start: n >= BigInt(size) ? 0 : size - Number(n), end: size - 1 };
  }
  const s = BigInt(a);
  if (b !== '' && BigInt(b) < s) return null;
  if (s >= BigInt(size)) return 'InvalidRange';
  return { start: Number(s), end: b === '' || BigInt(b) >= BigInt(size) ? size - 1 : Number(b) };
}

describe('parseRange', () => {
  it('examples', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-8', 100)).toEqual({ start: 92, end: 99 });
    expect(parseRange('bytes=-800', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=50-5000', 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange('bytes=0-1,4-5', 100)).toBeNull();
    expect(parseRange('bytes=9-0', 100)).toBeNull();
    expect(parseRange('items=0-1', 100)).toBeNull();
    expect(parseRange('bytes=-', 100)).toBeNull();
    expect(code(() => parseRange('bytes=100-', 100))).toBe('InvalidRange');
    expect(code(() => parseRange('bytes=-0', 100))).toBe('InvalidRange');
    expect(code(() => parseRange('bytes=0-', 0))).toBe('InvalidRange');
    expect(code(() => parseRange('bytes=99999999999999999999-', 100))).toBe('InvalidRange');
    expect(parseRange('bytes=0-99999999999999999999', 100)).toEqual({ start: 0, end: 99 });
  });
  it('matches the reference model (fast-check)', () => {
    const num = fc.oneof(fc.constant(''), fc.nat(300).map(String), fc.bigInt({ min: 0n, max: 10n ** 22n }).map(String));
    const header = fc.oneof(
      fc.tuple(num, num).map(([a, b]) => `bytes=${a}-${b}`),
      fc.tuple(num, num, num).map(([a, b, c]) => `bytes=${a}-${b},${c}-`),
      fc.string({ maxLength: 20 }),
      fc.string({ maxLength: 12 }).map((s) => `bytes=${s}`),
    );
    fc.assert(fc.property(fc.option(header, { nil: undefined }), fc.nat(400), (h, size) => {
      const m = model(h, size);
      let got: unknown;
      try { got = parseRange(h, size); } catch (e) { got = (e as S3Error).code; }
      expect(got).toEqual(m);
    }), { numRuns: 3000 });
  });
});

describe('conditional', () => {
  const obj = { etag: 'abc', lastModified: new Date('2026-01-01T00:00:00.500Z') };
  const before = 'Wed, 31 Dec 2025 00:00:00 GMT', same = 'Thu, 01 Jan 2026 00:00:00 GMT', after = 'Fri, 02 Jan 2026 00:00:00 GMT';
  const now = new Date('2026-06-01T00:00:00Z');
  const get = (h: Record<string, string>) => code(() => checkGetConditions(h, obj, now));
  it('etag matching', () => {
    expect(etagMatches('"abc"', 'abc')).toBe(true);
    expect(etagMatches('"x", "abc"', '"abc"')).toBe(true);
    expect(etagMatches('*', 'zzz')).toBe(true);
    expect(etagMatches('W/"abc"', 'abc')).toBe(true);
    expect(etagMatches('"abd"', 'abc')).toBe(false);
  });
  it('GET/HEAD precedence', () => {
    expect(get({})).toBe('OK');
    expect(get({ 'if-match': '"abc"' })).toBe('OK');
    expect(get({ 'if-match': '"x"' })).toBe('PreconditionFailed');
    expect(get({ 'if-unmodified-since': before })).toBe('PreconditionFailed');
    expect(get({ 'if-unmodified-since': same })).toBe('OK');
    expect(get({ 'if-match': '"abc"', 'if-unmodified-since': before })).toBe('OK');
    expect(get({ 'if-none-match': '"abc"' })).toBe('NotModified');
    expect(get({ 'if-none-match': '"x"' })).toBe('OK');
    expect(get({ 'if-modified-since': same })).toBe('NotModified');
    expect(get({ 'if-modified-since': before })).toBe('OK');
    expect(get({ 'if-none-match': '"x"', 'if-modified-since': after })).toBe('OK');
    expect(get({ 'if-none-match': '"abc"', 'if-modified-since': before })).toBe('NotModified');
    expect(get({ 'if-match': '"x"', 'if-none-match': '"abc"' })).toBe('PreconditionFailed');
    expect(get({ 'if-modified-since': 'garbage' })).toBe('OK');
    expect(get({ 'if-modified-since': 'Fri, 01 Jan 2100 00:00:00 GMT' })).toBe('OK');
  });
  it('copy source: all failures 412', () => {
    const cp = (h: Record<string, string>) => code(() => checkCopySourceConditions(h, obj, now));
    expect(cp({ 'x-amz-copy-source-if-match': 'abc', 'x-amz-copy-source-if-unmodified-since': before })).toBe('OK');
    expect(cp({ 'x-amz-copy-source-if-none-match': 'abc' })).toBe('PreconditionFailed');
    expect(cp({ 'x-amz-copy-source-if-none-match': 'x', 'x-amz-copy-source-if-modified-since': after })).toBe('OK');
    expect(cp({ 'x-amz-copy-source-if-modified-since': after })).toBe('PreconditionFailed');
    expect(cp({ 'x-amz-copy-source-if-match': 'x' })).toBe('PreconditionFailed');
  });
  it('writes', () => {
    expect(code(() => checkWriteConditions({ 'if-none-match': '*' }, undefined))).toBe('OK');
    expect(code(() => checkWriteConditions({ 'if-none-match': '*' }, obj))).toBe('PreconditionFailed');
    expect(code(() => checkWriteConditions({ 'if-match': '"abc"' }, obj))).toBe('OK');
    expect(code(() => checkWriteConditions({ 'if-match': '"abd"' }, obj))).toBe('PreconditionFailed');
    expect(code(() => checkWriteConditions({ 'if-match': '"abc"' }, undefined))).toBe('NoSuchKey');
  });
});

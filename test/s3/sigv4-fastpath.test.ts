/**
 * The SigV4 canonicalisation fast paths (plain paths and query components, lowercase Node header maps, values
 * without whitespace runs) must give exactly what the general code gives. The reference below is the general
 * code as it was before the fast paths.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalHeaders,
  canonicalQuery,
  canonicalUri,
  deriveSigningKey,
  hmacSha256,
  parseQuery,
  percentDecodeBytes,
  uriEncodeBytes,
  type HeaderMap,
} from '../../src/s3/sigv4.ts';

const ref = {
  canonicalUri(rawPath: string): string {
    return uriEncodeBytes(percentDecodeBytes(rawPath === '' ? '/' : rawPath), true);
  },
  canonicalQuery(rawQuery: string, exclude: ReadonlySet<string> = new Set(), plusIsSpace = true): string {
    if (!rawQuery) return '';
    const pairs: Array<[string, string]> = [];
    for (const part of rawQuery.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const rawK = eq < 0 ? part : part.slice(0, eq);
      const rawV = eq < 0 ? '' : part.slice(eq + 1);
      const k = uriEncodeBytes(percentDecodeBytes(rawK, plusIsSpace), false);
      if (exclude.has(percentDecodeBytes(rawK, plusIsSpace).toString('utf8'))) continue;
      pairs.push([k, uriEncodeBytes(percentDecodeBytes(rawV, plusIsSpace), false)]);
    }
    pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    return pairs.map(([k, v]) => `${k}=${v}`).join('&');
  },
  parseQuery(rawQuery: string): Map<string, string> {
    const m = new Map<string, string>();
    if (!rawQuery) return m;
    for (const part of rawQuery.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const k = percentDecodeBytes(eq < 0 ? part : part.slice(0, eq), true).toString('utf8');
      const v = percentDecodeBytes(eq < 0 ? '' : part.slice(eq + 1), true).toString('utf8');
      if (!m.has(k)) m.set(k, v);
    }
    return m;
  },
  canonicalHeaders(headers: HeaderMap, signedHeaders: string[]): string {
    const value = (v: string | string[] | undefined) =>
      v === undefined ? '' : (Array.isArray(v) ? v : [v]).map((x) => x.trim().replace(/\s+/g, ' ')).join(',');
    const lower = new Map<string, string | string[]>();
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) continue;
      const lk = k.toLowerCase();
      const prev = lower.get(lk);
      if (prev === undefined) lower.set(lk, v);
      else lower.set(lk, [...(Array.isArray(prev) ? prev : [prev]), ...(Array.isArray(v) ? v : [v])]);
    }
    return signedHeaders.map((h) => `${h}:${value(lower.get(h))}\n`).join('');
  },
};

// Characters that exercise every branch: unreserved, reserved, '%' (valid and broken escapes), '+', spaces and
// other whitespace, non-ASCII (2-, 3- and 4-byte UTF-8), '/'.
const ALPHABET = ['a', 'Z', '0', '-', '.', '_', '~', '/', '%', '%2F', '%41', '%zz', '%4', '+', ' ', '&', '=', '?', '#', '*', "'", 'é', '€', '😀', '\t', '\u00a0', '\u2028', ':', '@', ','];
function randomString(max: number): string {
  const n = randomBytes(1)[0]! % (max + 1);
  let s = '';
  for (const b of randomBytes(n)) s += ALPHABET[b % ALPHABET.length];
  return s;
}
const WS = [' ', '  ', '\t', '\u00a0', '\u2028', 'a', 'b c', 'x', '\n', ' y '];
function randomValue(): string {
  let s = '';
  for (const b of randomBytes(randomBytes(1)[0]! % 8)) s += WS[b % WS.length];
  return s;
}

describe('sigv4 canonicalisation fast paths', () => {
  it('canonicalUri equals the decode/re-encode reference', () => {
    for (const p of ['', '/', '/bucket/key', '/b/a b', '/b/%7Ekey', '/b/k~._-', '/b/k+1', '/b/%E2%82%AC', '/b/€', '//x//']) {
      expect(canonicalUri(p)).toBe(ref.canonicalUri(p));
    }
    for (let i = 0; i < 3000; i++) {
      const p = '/' + randomString(24);
      expect(canonicalUri(p)).toBe(ref.canonicalUri(p));
    }
  });

  it('canonicalQuery and parseQuery equal the reference (both + forms, with exclusions)', () => {
    const exclude = new Set(['X-Amz-Signature']);
    const fixed = ['x-id=GetObject', 'uploads', 'a=1&b=2&a=0', 'k=a+b', 'k=a%20b', 'X-Amz-Signature=abc&X-Amz-Date=1', 'X%2DAmz-Signature=1', '&&a=&=b', 'list-type=2&prefix=a%2Fb&delimiter=%2F'];
    const random = Array.from({ length: 3000 }, () => randomString(30));
    for (const q of [...fixed, ...random]) {
      for (const plus of [true, false]) {
        expect(canonicalQuery(q, new Set(), plus)).toBe(ref.canonicalQuery(q, new Set(), plus));
        expect(canonicalQuery(q, exclude, plus)).toBe(ref.canonicalQuery(q, exclude, plus));
      }
      expect([...parseQuery(q)]).toEqual([...ref.parseQuery(q)]);
    }
  });

  it('canonicalHeaders equals the reference for Node-style and mixed-case maps', () => {
    const names = ['host', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-meta-a', 'content-type', 'range', 'constructor', 'toString', 'missing'];
    for (let i = 0; i < 3000; i++) {
      const h: HeaderMap = {};
      for (const n of names.slice(0, 6)) {
        const r = randomBytes(1)[0]!;
        if (r % 5 === 0) continue;
        h[r % 7 === 0 ? n.toUpperCase() : n] = r % 3 === 0 ? [randomValue(), randomValue()] : randomValue();
      }
      if (i % 11 === 0) h['X-Amz-Date'] = randomValue(); // duplicate name in another case: merged
      if (i % 13 === 0) h['x-amz-meta-a'] = undefined;
      expect(canonicalHeaders(h, names)).toBe(ref.canonicalHeaders(h, names));
    }
  });

  it('the signing key cache gives the derived key for each secret, date and region', () => {
    const derive = (secret: string, date: string, region: string) =>
      hmacSha256(hmacSha256(hmacSha256(hmacSha256('AWS4' + secret, date), region), 's3'), 'aws4_request');
    for (let i = 0; i < 600; i++) {
      const secret = `s${i % 300}`;
      const date = `2026112${i % 3}`;
      expect(deriveSigningKey(secret, date, 'us-east-1').equals(derive(secret, date, 'us-east-1'))).toBe(true);
      expect(deriveSigningKey(secret, date, 'eu-west-1').equals(derive(secret, date, 'eu-west-1'))).toBe(true);
    }
  });
});

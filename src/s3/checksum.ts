/**
 * Upload integrity: Content-MD5 and x-amz-checksum-* (header or aws-chunked trailer), computed while streaming,
 * plus multipart checksum combination (composite and full-object CRC combination).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { createRequire } from 'node:module';
import type { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { S3Error } from '../errors.ts';
import { getHeader, type HeaderMap } from './sigv4.ts';

/**
 * @aws-sdk/crc64-nvme, loaded on first use: it pulls in @smithy/core, about 10 MiB of the gateway's RSS, for a
 * checksum only some clients send (issue #22: RSS while streaming at most 96 MiB; docs/OPERATIONS.md "Memory").
 */
let crc64Module: { Crc64Nvme: typeof Crc64Nvme } | undefined;
const crc64 = () => (crc64Module ??= createRequire(import.meta.url)('@aws-sdk/crc64-nvme') as { Crc64Nvme: typeof Crc64Nvme });

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];
export type CrcAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME';

/** Raw digest length in bytes. */
export const DIGEST_LENGTH: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 };

/** `x-amz-checksum-crc32` etc. */
export const checksumHeaderName = (alg: ChecksumAlgorithm): string => `x-amz-checksum-${alg.toLowerCase()}`;

/** XML element / SDK field name: ChecksumCRC32, ChecksumCRC32C, ChecksumCRC64NVME, ChecksumSHA1, ChecksumSHA256. */
export const checksumFieldName = (alg: ChecksumAlgorithm): string => `Checksum${alg}`;

export function parseAlgorithm(s: string): ChecksumAlgorithm | undefined {
  const u = s.trim().toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(u) ? (u as ChecksumAlgorithm) : undefined;
}

const HEADER_TO_ALG = new Map<string, ChecksumAlgorithm>(CHECKSUM_ALGORITHMS.map((a) => [checksumHeaderName(a), a]));
/** x-amz-checksum-* headers that are not checksum values. */
const NON_VALUE_HEADERS = new Set(['x-amz-checksum-mode', 'x-amz-checksum-type', 'x-amz-checksum-algorithm']);

/** Strictly decode base64 to exactly `len` bytes; undefined when not valid. */
export function decodeDigest(b64: string, len: number): Buffer | undefined {
  const t = b64.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) return undefined;
  const buf = Buffer.from(t, 'base64');
  if (buf.length !== len || buf.toString('base64') !== t) return undefined;
  return buf;
}

/** S3's words for a checksum that does not match the body (the algorithm's name, not the header's). */
const mismatch = (alg: ChecksumAlgorithm): string => `The ${alg} you specified did not match the calculated checksum.`;

export interface ExpectedChecksums {
  /** base64 Content-MD5 as sent. */
  md5?: string;
  /** The checksum algorithm of this upload (from a checksum header, the trailer, or x-amz-sdk-checksum-algorithm). */
  algorithm?: ChecksumAlgorithm;
  /** base64 value from an x-amz-checksum-<alg> header. */
  value?: string;
  /** Set when the value comes in the aws-chunked trailer under this (lowercase) name. */
  trailerName?: string;
}

/**
 * Parse and validate the integrity headers of an upload request.
 * - Content-MD5 not base64 of 16 bytes -> InvalidDigest
 * - more than one x-amz-checksum-<alg> header, or a value that is not base64 of the right length -> InvalidRequest
 * - x-amz-trailer together with an x-amz-checksum-<alg> header -> InvalidRequest
 * - x-amz-trailer naming something other than one x-amz-checksum-<alg> -> InvalidRequest
 * - x-amz-sdk-checksum-algorithm unknown or disagreeing with the header/trailer algorithm -> InvalidRequest
 * - x-amz-sdk-checksum-algorithm without any value: accepted (the algorithm is computed, nothing verified)
 * @param trailerNames names declared by x-amz-trailer; when omitted, the header is parsed here.
 */
export function expectedFromRequest(headers: HeaderMap, trailerNames?: Iterable<string>): ExpectedChecksums {
  const out: ExpectedChecksums = {};
  const md5 = getHeader(headers, 'content-md5');
  if (md5 !== undefined) {
    if (!decodeDigest(md5, 16)) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified is not valid.');
    out.md5 = md5.trim();
  }

  const found: Array<[ChecksumAlgorithm, string]> = [];
  for (const name of Object.keys(headers)) {
    const lname = name.toLowerCase();
    if (!lname.startsWith('x-amz-checksum-') || NON_VALUE_HEADERS.has(lname)) continue;
    const v = getHeader(headers, lname);
    if (v === undefined) continue;
    const alg = HEADER_TO_ALG.get(lname);
    if (!alg) throw new S3Error('InvalidRequest', `Unsupported checksum header ${lname}.`);
    found.push([alg, v]);
  }
  if (found.length > 1) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');

  let names: string[];
  if (trailerNames !== undefined) names = [...trailerNames].map((s) => s.trim().toLowerCase()).filter(Boolean);
  else {
    const t = getHeader(headers, 'x-amz-trailer');
    names = t === undefined ? [] : t.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  }
  if (names.length > 0 && found.length > 0) {
    throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. x-amz-trailer and an x-amz-checksum- header cannot be used together.');
  }
  if (names.length > 1) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-trailer checksum.');

  if (found.length === 1) {
    const [alg, v] = found[0];
    if (!decodeDigest(v, DIGEST_LENGTH[alg])) {
      throw new S3Error('InvalidRequest', `Value for ${checksumHeaderName(alg)} header is invalid.`);
    }
    out.algorithm = alg;
    out.value = v.trim();
  } else if (names.length === 1) {
    const alg = HEADER_TO_ALG.get(names[0]);
    if (!alg) throw new S3Error('InvalidRequest', `The value specified in the x-amz-trailer header is not supported: ${names[0].slice(0, 64)}`);
    out.algorithm = alg;
    out.trailerName = names[0]!;
  }

  const sdk = getHeader(headers, 'x-amz-sdk-checksum-algorithm');
  if (sdk !== undefined && sdk.trim() !== '') {
    const alg = parseAlgorithm(sdk);
    if (!alg) throw new S3Error('InvalidRequest', 'Value for x-amz-sdk-checksum-algorithm header is invalid.');
    if (out.algorithm !== undefined && out.algorithm !== alg) {
      throw new S3Error('InvalidRequest', `Value for x-amz-sdk-checksum-algorithm header is invalid: ${alg} does not match the checksum sent (${out.algorithm}).`);
    }
    out.algorithm = alg;
  }
  return out;
}

interface Hasher {
  update(b: Uint8Array): void;
  digest(): Promise<Buffer>;
}

const u32be = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

function newHasher(alg: ChecksumAlgorithm): Hasher {
  switch (alg) {
    case 'CRC32': {
      // node's zlib (native, carry-less multiply): @aws-crypto/crc32's JavaScript table cost ~20 CPU-ms per MiB
      // (bench/README.md "Checksummed uploads")
      let c = 0;
      return { update: (b) => void (c = zlibCrc32(b, c)), digest: () => Promise.resolve(u32be(c)) };
    }
    case 'CRC32C': {
      const c = new Crc32c();
      return { update: (b) => void c.update(b), digest: () => Promise.resolve(u32be(c.digest())) };
    }
    case 'CRC64NVME': {
      const c = new (crc64().Crc64Nvme)();
      return { update: (b) => c.update(b), digest: async () => Buffer.from(await c.digest()) };
    }
    case 'SHA1':
    case 'SHA256': {
      const h: Hash = createHash(alg === 'SHA1' ? 'sha1' : 'sha256');
      return { update: (b) => void h.update(b), digest: () => Promise.resolve(h.digest()) };
    }
  }
}

export interface ChecksumResult {
  /** Raw MD5 of the payload (when the set computes it: always by default, only for Content-MD5 in forRequest). */
  md5?: Buffer;
  /** base64 digests of the computed algorithms. */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  length: number;
}

/** Computes MD5 plus the requested algorithms while streaming. */
export class ChecksumSet {
  readonly algorithms: readonly ChecksumAlgorithm[];
  private readonly md5: Hash | undefined;
  private readonly hashers: Map<ChecksumAlgorithm, Hasher>;
  private result: Promise<ChecksumResult> | undefined;
  length = 0;

  constructor(algorithms: Iterable<ChecksumAlgorithm> = [], opts: { md5?: boolean } = {}) {
    this.algorithms = [...new Set(algorithms)];
    this.md5 = opts.md5 === false ? undefined : createHash('md5');
    this.hashers = new Map(this.algorithms.map((a) => [a, newHasher(a)]));
  }

  /** A set computing what `expected` needs (plus MD5). */
  static forRequest(expected: ExpectedChecksums, extra: Iterable<ChecksumAlgorithm> = []): ChecksumSet {
    // MD5 costs a third of an upload's CPU and lakecrypt's ETag is not an MD5: compute it only to check Content-MD5.
    return new ChecksumSet([...(expected.algorithm ? [expected.algorithm] : []), ...extra], { md5: expected.md5 !== undefined });
  }

  update(chunk: Uint8Array): void {
    if (this.result) throw new Error('ChecksumSet.update after digest');
    this.length += chunk.length;
    this.md5?.update(chunk);
    for (const h of this.hashers.values()) h.update(chunk);
  }

  /** Final digests (idempotent). */
  digest(): Promise<ChecksumResult> {
    this.result ??= (async () => {
      const checksums: Partial<Record<ChecksumAlgorithm, string>> = {};
      for (const [a, h] of this.hashers) checksums[a] = (await h.digest()).toString('base64');
      return { md5: this.md5?.digest(), checksums, length: this.length };
    })();
    return this.result;
  }

  /** PassThrough that feeds this set. */
  stream(): Transform {
    const update = (chunk: Buffer) => this.update(chunk);
    return new Transform({
      transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
        update(chunk);
        cb(null, chunk);
      },
    });
  }

  /**
   * After the stream: verify Content-MD5 and the header or trailer checksum. BadDigest on mismatch (S3's code and
   * words; MinIO answers XAmzContentChecksumMismatch for a checksum, BadDigest for Content-MD5),
   * InvalidRequest when the trailer value is unparsable or names an algorithm that was not declared.
   * A declared trailer that never arrived is accepted (as S3 does). Returns the digests.
   */
  async verify(expected: ExpectedChecksums, trailers?: ReadonlyMap<string, string>): Promise<ChecksumResult> {
    const r = await this.digest();
    if (expected.md5 !== undefined && r.md5?.toString('base64') !== expected.md5) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    if (expected.value !== undefined && expected.algorithm) {
      if (r.checksums[expected.algorithm] !== expected.value) {
        throw new S3Error('BadDigest', mismatch(expected.algorithm));
      }
    }
    if (trailers) {
      for (const [name, value] of trailers) {
        const alg = HEADER_TO_ALG.get(name.toLowerCase());
        if (!alg) continue; // non-checksum trailers are not ours to judge
        if (expected.trailerName === undefined || alg !== expected.algorithm || r.checksums[alg] === undefined) {
          throw new S3Error('InvalidRequest', `The trailer ${name} was not declared in x-amz-trailer.`);
        }
        if (!decodeDigest(value, DIGEST_LENGTH[alg])) throw new S3Error('InvalidRequest', `Value for ${name} trailing header is invalid.`);
        if (r.checksums[alg] !== value.trim()) {
          throw new S3Error('BadDigest', mismatch(alg));
        }
      }
    }
    return r;
  }
}

// ---------------------------------------------------------------- multipart combination

/** Composite checksum: b64(hash(concat(raw part digests)))-N. Works for every algorithm. */
export async function compositeChecksum(alg: ChecksumAlgorithm, partChecksums: readonly string[]): Promise<string> {
  const h = newHasher(alg);
  for (const p of partChecksums) {
    const raw = decodeDigest(p, DIGEST_LENGTH[alg]);
    if (!raw) throw new S3Error('InvalidPart', `Invalid ${alg} part checksum.`);
    h.update(raw);
  }
  return `${(await h.digest()).toString('base64')}-${partChecksums.length}`;
}

interface CrcParams { width: number; poly: bigint }
/** Reflected polynomials (all three: reflected in/out, init = xorout = all ones). */
const CRC_PARAMS: Record<CrcAlgorithm, CrcParams> = {
  CRC32: { width: 32, poly: 0xedb88320n },
  CRC32C: { width: 32, poly: 0x82f63b78n },
  CRC64NVME: { width: 64, poly: 0x9a6c9329ac4bc9b5n },
};
const x2nTables = new Map<CrcAlgorithm, bigint[]>();

/** a(x) * b(x) mod p(x), reflected representation (zlib multmodp generalised to `width`). */
function multModP(a: bigint, b: bigint, { width, poly }: CrcParams): bigint {
  let m = 1n << BigInt(width - 1);
  let p = 0n;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1n)) === 0n) break;
    }
    m >>= 1n;
    b = b & 1n ? (b >> 1n) ^ poly : b >> 1n;
  }
  return p;
}

function x2nTable(alg: CrcAlgorithm): bigint[] {
  let t = x2nTables.get(alg);
  if (t) return t;
  const params = CRC_PARAMS[alg];
  t = [];
  let p = 1n << BigInt(params.width - 2); // x^1
  for (let n = 0; n < 64; n++) {
    t.push(p);
    p = multModP(p, p, params);
  }
  x2nTables.set(alg, t);
  return t;
}

/** x^(n * 2^k) mod p. */
function x2nModP(n: bigint, k: number, alg: CrcAlgorithm): bigint {
  const params = CRC_PARAMS[alg];
  const t = x2nTable(alg);
  let p = 1n << BigInt(params.width - 1); // x^0
  while (n) {
    if (n & 1n) p = multModP(t[k & 63], p, params);
    n >>= 1n;
    k++;
  }
  return p;
}

/** crc(A || B) from crc(A), crc(B) and len(B) (zlib crc32_combine). CRC values as unsigned bigint. */
export function crcCombine(alg: CrcAlgorithm, crcA: bigint, crcB: bigint, lenB: number | bigint): bigint {
  const op = x2nModP(BigInt(lenB), 3, alg);
  return multModP(op, crcA, CRC_PARAMS[alg]) ^ crcB;
}

const digestToBig = (buf: Buffer): bigint => BigInt('0x' + (buf.length ? buf.toString('hex') : '0'));
const bigToDigest = (v: bigint, bytes: number): Buffer => Buffer.from(v.toString(16).padStart(bytes * 2, '0'), 'hex');

/**
 * Full-object CRC of the concatenation of parts, from each part's base64 CRC and its length.
 * Only CRC32, CRC32C and CRC64NVME. Returns base64 (no `-N` suffix).
 */
export function combineFullObjectCrc(alg: CrcAlgorithm, parts: ReadonlyArray<{ checksum: string; length: number }>): string {
  const len = DIGEST_LENGTH[alg];
  let acc = 0n; // crc of the empty string is 0 for all three
  for (const p of parts) {
    const raw = decodeDigest(p.checksum, len);
    if (!raw) throw new S3Error('InvalidPart', `Invalid ${alg} part checksum.`);
    acc = crcCombine(alg, acc, digestToBig(raw), p.length);
  }
  return bigToDigest(acc, len).toString('base64');
}

export const supportsFullObject = (alg: ChecksumAlgorithm): alg is CrcAlgorithm =>
  alg === 'CRC32' || alg === 'CRC32C' || alg === 'CRC64NVME';

import { createHmac, randomBytes } from 'node:crypto';
import { open, seal } from './aead.ts';
import { FormatError } from './errors.ts';
import {
  CHUNK_SIZE, DEK_SIZE, MAX_PARTS, MAX_PART_PLAINTEXT, NONCE_SIZE, TAG_SIZE,
  blockCount, checkBlockSize, checkOid, datasetIdOf,
} from './layout.ts';

export const HEADER_MAGIC = Buffer.from('LKCRYPTH', 'latin1');
/** Size of the fixed fields, which are also the AAD of the sealed body. */
export const HEADER_FIXED_SIZE = 82;
export const MAX_HEADER_SIZE = 32 * 1024 * 1024;
export const MAX_JSON_SIZE = 4 * 1024 * 1024;
const LIMITS = { dataset: 1024, bucket: 255, key: 1024 } as const;
/** HKDF info labels per header version: v1 headers derive from a KEK, v2 headers from a header key. */
const HKDF_LABELS = { 1: Buffer.from('lakecrypt/v1 header', 'latin1'), 2: Buffer.from('lakecrypt/v2 header', 'latin1') } as const;
/** Header format versions this code reads; it writes what the caller asks (the gateway: 2). */
export type HeaderVersion = 1 | 2;
export const HEADER_VERSIONS: readonly HeaderVersion[] = [1, 2];
const STATES = { pending: 1, final: 2 } as const;
/** Fixed-field offsets (docs/FORMAT.md 3.1). */
const OFF = { version: 8, datasetId: 9, keyNumber: 41, oid: 45, state: 61, createdAt: 62, nonce: 70 } as const;

export interface HeaderMeta {
  contentType?: string; contentEncoding?: string; contentDisposition?: string; cacheControl?: string;
  contentLanguage?: string; expires?: string; user: Record<string, string>;
}
export interface HeaderChecksums {
  algorithm?: 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256'; value?: string;
  type?: 'FULL_OBJECT' | 'COMPOSITE'; parts?: string[]; md5?: string;
}
export interface HeaderPart {
  /** Plaintext bytes of this part. */
  plaintextSize: number;
  /** One DEK per block; null = erased (revoked). */
  deks: (Buffer | null)[];
  /** Part number bound into the chunk AAD. Defaults to index + 1; always set by openHeader. */
  partNumber?: number;
}
export interface HeaderFields {
  /**
   * Header format version and the number of the key it is sealed under: the dataset's KEK version (1), or the
   * dataset's header-key number (2; header keys are wrapped under a KEK version in the keystore).
   */
  version: HeaderVersion; keyNumber: number;
  dataset: string; oid: Buffer; bucket: string; key: string;
  state: 'pending' | 'final'; createdAt: number; blockSize: number; chunkSize: number;
  parts: HeaderPart[]; meta: HeaderMeta; checksums: HeaderChecksums;
}
export interface HeaderPeek { version: HeaderVersion; datasetId: Buffer; keyNumber: number; oid: Buffer; state: 'pending' | 'final'; createdAt: number }

const malformed = (msg: string): FormatError => new FormatError('HeaderMalformed', msg);

/**
 * HKDF-SHA256 (RFC 5869), spelled out with HMAC-SHA256. Not Node's hkdfSync: it builds a KeyObject per call and
 * cost about twice the CPU (11-15 against 6-9 us here; every PUT derives two keys, every cold GET one or two),
 * and it refuses an `info` over 1,024 bytes, which a 1,024-byte object key in a long bucket name exceeds. The
 * output is hkdfSync's for every info it takes (test/server/hkdf-long-info.test.ts checks the two against each
 * other and against RFC 5869's test vector).
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length = 32): Buffer {
  return hkdfSha256Hmac(ikm, salt, info, length);
}

/** RFC 5869 HKDF-SHA256 with HMAC-SHA256 (any info length); exported for its test against hkdfSync. */
export function hkdfSha256Hmac(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length = 32): Buffer {
  if (length < 1 || length > 255 * 32) throw new RangeError(`HKDF-SHA256 output must be 1..${255 * 32} bytes, got ${length}`);
  const prk = createHmac('sha256', salt.length ? salt : Buffer.alloc(32)).update(ikm).digest();
  const out: Buffer[] = [];
  let t: Buffer = Buffer.alloc(0);
  for (let i = 1, have = 0; have < length; i++) {
    t = createHmac('sha256', prk).update(t).update(info).update(Buffer.of(i)).digest();
    out.push(t);
    have += t.length;
  }
  prk.fill(0);
  return Buffer.concat(out).subarray(0, length);
}

/** HKDF-SHA256(KEK or header key, salt = oid, info = label || 0 || bucket || 0 || key). */
export function headerKey(kek: Buffer, oid: Buffer, bucket: string, key: string, version: HeaderVersion = 1): Buffer {
  if (kek.length !== 32) throw new RangeError(`key must be 32 bytes, got ${kek.length}`);
  const info = Buffer.concat([HKDF_LABELS[version], Buffer.of(0), Buffer.from(bucket, 'utf8'), Buffer.of(0), Buffer.from(key, 'utf8')]);
  return hkdfSha256(kek, oid, info, 32);
}

export const partNumberOf = (h: HeaderFields, index: number): number => h.parts[index]?.partNumber ?? index + 1;

/** Encodes the body plaintext (docs/FORMAT.md 3.2). Validates every limit so a sealed header always opens. */
export function encodeBody(f: HeaderFields): Buffer {
  const str = (s: string, max: number, what: string): Buffer => {
    const b = Buffer.from(s, 'utf8');
    if (b.length < 1 || b.length > max) throw new RangeError(`${what} must be 1..${max} bytes, got ${b.length}`);
    const out = Buffer.alloc(2 + b.length);
    out.writeUInt16BE(b.length, 0);
    b.copy(out, 2);
    return out;
  };
  checkBlockSize(f.blockSize);
  if (f.chunkSize !== CHUNK_SIZE) throw new RangeError(`chunkSize must be ${CHUNK_SIZE}, got ${f.chunkSize}`);
  if (f.parts.length < 1 || f.parts.length > MAX_PARTS) throw new RangeError(`parts must be 1..${MAX_PARTS}, got ${f.parts.length}`);
  const pieces: Buffer[] = [str(f.dataset, LIMITS.dataset, 'dataset'), str(f.bucket, LIMITS.bucket, 'bucket'), str(f.key, LIMITS.key, 'key')];
  const fixed = Buffer.alloc(12);
  fixed.writeUInt32BE(f.blockSize, 0);
  fixed.writeUInt32BE(f.chunkSize, 4);
  fixed.writeUInt32BE(f.parts.length, 8);
  pieces.push(fixed);
  let prev = 0;
  f.parts.forEach((p, i) => {
    const n = partNumberOf(f, i);
    if (!Number.isInteger(n) || n <= prev || n > MAX_PARTS) throw new RangeError(`part numbers must increase within 1..${MAX_PARTS}, got ${n}`);
    prev = n;
    if (!Number.isSafeInteger(p.plaintextSize) || p.plaintextSize < 0 || p.plaintextSize > MAX_PART_PLAINTEXT) throw new RangeError(`bad part size ${p.plaintextSize}`);
    const want = blockCount(p.plaintextSize, f.blockSize);
    if (p.deks.length !== want) throw new RangeError(`part ${n}: ${want} DEKs expected, got ${p.deks.length}`);
    const b = Buffer.alloc(16 + p.deks.length * (1 + DEK_SIZE));
    b.writeUInt32BE(n, 0);
    b.writeBigUInt64BE(BigInt(p.plaintextSize), 4);
    b.writeUInt32BE(p.deks.length, 12);
    p.deks.forEach((d, j) => {
      const at = 16 + j * (1 + DEK_SIZE);
      if (d === null) b[at] = 1;
      else if (d.length !== DEK_SIZE) throw new RangeError(`DEK must be ${DEK_SIZE} bytes, got ${d.length}`);
      else d.copy(b, at + 1);
    });
    pieces.push(b);
  });
  const json = Buffer.from(JSON.stringify({ meta: f.meta, checksums: f.checksums }), 'utf8');
  if (json.length > MAX_JSON_SIZE) throw new RangeError(`header JSON is ${json.length} bytes, max ${MAX_JSON_SIZE}`);
  const jl = Buffer.alloc(4);
  jl.writeUInt32BE(json.length, 0);
  pieces.push(jl, json);
  return Buffer.concat(pieces);
}

export function encodeFixed(f: Pick<HeaderFields, 'version' | 'dataset' | 'keyNumber' | 'oid' | 'state' | 'createdAt'>, nonce: Buffer): Buffer {
  checkOid(f.oid);
  if (!HEADER_VERSIONS.includes(f.version)) throw new RangeError(`header version must be 1 or 2, got ${f.version}`);
  if (!Number.isInteger(f.keyNumber) || f.keyNumber < 1 || f.keyNumber > 0xffffffff) throw new RangeError(`keyNumber must be a uint32 >= 1, got ${f.keyNumber}`);
  if (!Number.isSafeInteger(f.createdAt) || f.createdAt < 0) throw new RangeError(`createdAt must be a non-negative safe integer, got ${f.createdAt}`);
  if (nonce.length !== NONCE_SIZE) throw new RangeError('header nonce must be 12 bytes');
  const h = Buffer.alloc(HEADER_FIXED_SIZE);
  HEADER_MAGIC.copy(h, 0);
  h[OFF.version] = f.version;
  datasetIdOf(f.dataset).copy(h, OFF.datasetId);
  h.writeUInt32BE(f.keyNumber, OFF.keyNumber);
  f.oid.copy(h, OFF.oid);
  h[OFF.state] = STATES[f.state];
  h.writeBigUInt64BE(BigInt(f.createdAt), OFF.createdAt);
  nonce.copy(h, OFF.nonce);
  return h;
}

/** Seals raw body bytes under the fixed fields. Internal: lets vector generators build malformed bodies. */
export function sealBody(fixed: Buffer, body: Buffer, kek: Buffer, oid: Buffer, bucket: string, key: string): Buffer {
  const hk = headerKey(kek, oid, bucket, key, fixed[OFF.version] as HeaderVersion);
  const out = Buffer.concat([fixed, seal(hk, fixed.subarray(OFF.nonce, OFF.nonce + NONCE_SIZE), body, { aad: fixed, wipeKey: true })]);
  if (out.length > MAX_HEADER_SIZE) throw new RangeError(`header is ${out.length} bytes, max ${MAX_HEADER_SIZE}`);
  return out;
}

export function sealHeader(fields: HeaderFields, kek: Buffer, random: (n: number) => Buffer = randomBytes): Buffer {
  const fixed = encodeFixed(fields, random(NONCE_SIZE));
  const body = encodeBody(fields);
  try {
    return sealBody(fixed, body, kek, fields.oid, fields.bucket, fields.key);
  } finally {
    body.fill(0);
  }
}

function checkFixed(bytes: Buffer): void {
  if (bytes.length < HEADER_FIXED_SIZE + TAG_SIZE) throw new FormatError('HeaderTruncated', `header is ${bytes.length} bytes, at least ${HEADER_FIXED_SIZE + TAG_SIZE} expected`);
  if (bytes.length > MAX_HEADER_SIZE) throw malformed(`header is ${bytes.length} bytes, max ${MAX_HEADER_SIZE}`);
  if (!bytes.subarray(0, 8).equals(HEADER_MAGIC)) throw new FormatError('BadMagic', 'header does not start with LKCRYPTH');
  if (!HEADER_VERSIONS.includes(bytes[OFF.version] as HeaderVersion)) throw new FormatError('UnsupportedVersion', `header version ${bytes[OFF.version]}, expected 1 or 2`);
}

/** Unauthenticated fixed fields, only to pick the KEK. Never trust them before openHeader succeeds. */
export function peekHeader(bytes: Buffer): HeaderPeek {
  checkFixed(bytes);
  const st = bytes[OFF.state];
  const createdAt = Number(bytes.readBigUInt64BE(OFF.createdAt));
  return {
    version: bytes[OFF.version] as HeaderVersion,
    datasetId: Buffer.from(bytes.subarray(OFF.datasetId, OFF.datasetId + 32)),
    keyNumber: bytes.readUInt32BE(OFF.keyNumber),
    oid: Buffer.from(bytes.subarray(OFF.oid, OFF.oid + 16)),
    state: st === STATES.final ? 'final' : 'pending',
    createdAt,
  };
}

export function openHeader(bytes: Buffer, location: { bucket: string; key: string }, kek: Buffer): HeaderFields {
  checkFixed(bytes);
  const fixed = bytes.subarray(0, HEADER_FIXED_SIZE);
  const oid = Buffer.from(bytes.subarray(OFF.oid, OFF.oid + 16));
  const hk = headerKey(kek, oid, location.bucket, location.key, bytes[OFF.version] as HeaderVersion);
  const body = open(hk, fixed.subarray(OFF.nonce, OFF.nonce + NONCE_SIZE), bytes.subarray(HEADER_FIXED_SIZE), { aad: fixed, wipeKey: true });
  if (body === null) throw new FormatError('HeaderAuthFailed', 'header failed authentication (tampered, wrong KEK version, or moved to another location)');
  try {
    return decodeBody(fixed, body, location);
  } finally {
    body.fill(0);
  }
}

function decodeBody(fixed: Buffer, body: Buffer, location: { bucket: string; key: string }): HeaderFields {
  let at = 0;
  const need = (n: number): void => {
    if (at + n > body.length) throw malformed(`body ends at ${body.length}, ${n} more bytes needed at ${at}`);
  };
  const u16 = (): number => { need(2); const v = body.readUInt16BE(at); at += 2; return v; };
  const u32 = (): number => { need(4); const v = body.readUInt32BE(at); at += 4; return v; };
  const u64 = (): number => { need(8); const v = body.readBigUInt64BE(at); at += 8; if (v > BigInt(MAX_PART_PLAINTEXT)) throw malformed('part size above 5 TiB'); return Number(v); };
  const str = (max: number, what: string): string => {
    const n = u16();
    if (n < 1 || n > max) throw malformed(`${what} length ${n} outside 1..${max}`);
    need(n);
    const s = body.toString('utf8', at, at + n);
    if (Buffer.byteLength(s, 'utf8') !== n) throw malformed(`${what} is not valid UTF-8`);
    at += n;
    return s;
  };
  const dataset = str(LIMITS.dataset, 'dataset');
  const bucket = str(LIMITS.bucket, 'bucket');
  const key = str(LIMITS.key, 'key');
  if (!datasetIdOf(dataset).equals(fixed.subarray(OFF.datasetId, OFF.datasetId + 32))) throw malformed('KEK id is not SHA-256 of the dataset name');
  if (bucket !== location.bucket || key !== location.key) throw malformed('stored location differs from the location opened');
  const blockSize = u32();
  const chunkSize = u32();
  try { checkBlockSize(blockSize); } catch { throw malformed(`invalid blockSize ${blockSize}`); }
  if (chunkSize !== CHUNK_SIZE) throw malformed(`chunkSize ${chunkSize}, expected ${CHUNK_SIZE}`);
  const partCount = u32();
  if (partCount < 1 || partCount > MAX_PARTS) throw malformed(`part count ${partCount} outside 1..${MAX_PARTS}`);
  const parts: HeaderPart[] = [];
  let prev = 0;
  for (let i = 0; i < partCount; i++) {
    const partNumber = u32();
    if (partNumber <= prev || partNumber > MAX_PARTS) throw malformed(`part number ${partNumber} does not increase within 1..${MAX_PARTS}`);
    prev = partNumber;
    const size = u64();
    const n = u32();
    if (n !== blockCount(size, blockSize)) throw malformed(`part ${partNumber}: ${n} DEKs for ${size} bytes`);
    need(n * (1 + DEK_SIZE));
    const deks: (Buffer | null)[] = [];
    for (let j = 0; j < n; j++) {
      const flag = body[at];
      const raw = body.subarray(at + 1, at + 1 + DEK_SIZE);
      if (flag === 0) deks.push(Buffer.from(raw));
      else if (flag === 1 && raw.every((x) => x === 0)) deks.push(null);
      else throw malformed(`part ${partNumber} block ${j}: bad DEK flag`);
      at += 1 + DEK_SIZE;
    }
    parts.push({ partNumber, plaintextSize: size, deks });
  }
  const jl = u32();
  if (jl > MAX_JSON_SIZE) throw malformed(`JSON section ${jl} bytes, max ${MAX_JSON_SIZE}`);
  need(jl);
  let json: unknown;
  try { json = JSON.parse(body.toString('utf8', at, at + jl)); } catch { throw malformed('JSON section does not parse'); }
  at += jl;
  if (at !== body.length) throw malformed(`${body.length - at} bytes after the JSON section`);
  const { meta, checksums } = checkJson(json);
  const st = fixed[OFF.state];
  if (st !== STATES.pending && st !== STATES.final) throw malformed(`state ${st}`);
  return {
    version: fixed[OFF.version] as HeaderVersion,
    dataset, bucket, key, blockSize, chunkSize, parts, meta, checksums,
    keyNumber: fixed.readUInt32BE(OFF.keyNumber),
    oid: Buffer.from(fixed.subarray(OFF.oid, OFF.oid + 16)),
    state: st === STATES.final ? 'final' : 'pending',
    createdAt: Number(fixed.readBigUInt64BE(OFF.createdAt)),
  };
}

const META_KEYS = ['contentType', 'contentEncoding', 'contentDisposition', 'cacheControl', 'contentLanguage', 'expires'] as const;
const ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'];

function checkJson(j: unknown): { meta: HeaderMeta; checksums: HeaderChecksums } {
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(j) || !isObj(j.meta) || !isObj(j.checksums)) throw malformed('JSON section lacks meta/checksums objects');
  const m = j.meta;
  const c = j.checksums;
  for (const k of META_KEYS) if (m[k] !== undefined && typeof m[k] !== 'string') throw malformed(`meta.${k} is not a string`);
  if (!isObj(m.user) || !Object.values(m.user).every((v) => typeof v === 'string')) throw malformed('meta.user is not a string map');
  if (c.algorithm !== undefined && !ALGORITHMS.includes(c.algorithm as string)) throw malformed('checksums.algorithm unknown');
  if (c.type !== undefined && c.type !== 'FULL_OBJECT' && c.type !== 'COMPOSITE') throw malformed('checksums.type unknown');
  for (const k of ['value', 'md5'] as const) if (c[k] !== undefined && typeof c[k] !== 'string') throw malformed(`checksums.${k} is not a string`);
  if (c.parts !== undefined && !(Array.isArray(c.parts) && c.parts.every((p) => typeof p === 'string'))) throw malformed('checksums.parts is not a string array');
  return { meta: m as unknown as HeaderMeta, checksums: c };
}

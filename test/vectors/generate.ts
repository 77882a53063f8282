/**
 * Regenerates the golden vectors: npx tsx test/vectors/generate.ts
 * All randomness (KEK, oid, DEKs, header nonces) comes from a SHA-256 counter DRBG seeded per vector, so the
 * output is reproducible byte for byte. Plaintext: byte i = i mod 251.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import {
  blockCount, createEncryptStream, sealHeader, type HeaderFields,
} from '../../src/engine/index.ts';
import { encodeBody, encodeFixed, sealBody } from '../../src/format/header.ts';
import { SEALED_CHUNK_SIZE } from '../../src/format/layout.ts';

export function drbg(seed: string): (n: number) => Buffer {
  let counter = 0;
  return (n: number) => {
    const out: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const c = Buffer.alloc(4);
      c.writeUInt32BE(counter++, 0);
      const b = createHash('sha256').update(seed, 'utf8').update(c).digest();
      out.push(b);
      have += b.length;
    }
    return Buffer.concat(out).subarray(0, n);
  };
}

export const plaintextOf = (size: number, offset = 0): Buffer => {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (offset + i) % 251;
  return b;
};

export interface ValidVector {
  name: string; comment: string; dataset: string; bucket: string; key: string;
  /** Header format version; the key the header is sealed under (format 1: KEK version `keyNumber`; format 2: header key `keyNumber`). */
  headerVersion: 1 | 2; sealKey: string; keyNumber: number;
  createdAt: number; state: 'pending' | 'final'; blockSize: number; oid: string; headerNonce: string;
  parts: { partNumber: number; plaintextSize: number; deks: string[] }[];
  meta: HeaderFields['meta']; checksums: HeaderFields['checksums'];
  plaintext: { rule: string; size: number; sha256: string };
  ciphertext: string; header: string;
}

export type Change =
  | { op: 'flip'; offset: number; mask: number }
  | { op: 'set'; offset: number; value: number }
  | { op: 'truncate'; length: number }
  | { op: 'append'; hex: string }
  | { op: 'swap'; a: number; b: number; length: number }
  | { op: 'splice'; from: string; fromOffset: number; length: number; at: number }
  | { op: 'replace'; hex: string }
  | { op: 'location'; bucket: string; key: string }
  | { op: 'sealKey'; hex: string }
  | { op: 'header-from'; vector: string };

export interface InvalidVector {
  name: string; comment: string; base: string; target: 'data' | 'header'; change: Change; reason: string;
  /** Most plaintext bytes a reader may release before failing (all from chunks that verified). */
  emitsAtMost: number;
}

async function build(name: string, comment: string, blockSize: number, partSizes: [number, number][], headerVersion: 1 | 2 = 1): Promise<ValidVector> {
  const rnd = drbg(`lakecrypt vector ${name}`);
  const sealKey = rnd(32);
  const oid = rnd(16);
  const dataset = 'vectors/dataset';
  const bucket = 'vector-bucket';
  const key = `objects/${name}.bin`;
  let offset = 0;
  const cts: Buffer[] = [];
  const parts: HeaderFields['parts'] = [];
  for (const [partNumber, size] of partSizes) {
    const deks = Array.from({ length: blockCount(size, blockSize) }, () => rnd(32));
    const enc = createEncryptStream({ dataset, oid, partNumber, plaintextSize: size, blockSize, deks, withPrefix: partNumber === 1, threads: 0 });
    cts.push(await buffer(Readable.from([plaintextOf(size, offset)]).pipe(enc)));
    parts.push({ partNumber, plaintextSize: size, deks });
    offset += size;
  }
  const fields: HeaderFields = {
    version: headerVersion, dataset, keyNumber: 3, oid, bucket, key, state: 'final', createdAt: 1_764_000_000_000, blockSize, chunkSize: 65536, parts,
    meta: { contentType: 'application/octet-stream', cacheControl: 'no-cache', user: { origin: 'vector' } },
    checksums: { algorithm: 'CRC32C', value: 'AAAAAA==', type: 'FULL_OBJECT', md5: 'd41d8cd98f00b204e9800998ecf8427e' },
  };
  const headerNonce = rnd(12);
  const header = sealHeader(fields, sealKey, () => headerNonce);
  return {
    name, comment, dataset, bucket, key, headerVersion, sealKey: sealKey.toString('hex'), keyNumber: fields.keyNumber, createdAt: fields.createdAt,
    state: fields.state, blockSize, oid: oid.toString('hex'), headerNonce: headerNonce.toString('hex'),
    parts: parts.map((p, i) => ({ partNumber: partSizes[i][0], plaintextSize: p.plaintextSize, deks: p.deks.map((d) => d!.toString('hex')) })),
    meta: fields.meta, checksums: fields.checksums,
    plaintext: { rule: 'byte i = i mod 251', size: offset, sha256: createHash('sha256').update(plaintextOf(offset)).digest('hex') },
    ciphertext: Buffer.concat(cts).toString('hex'), header: header.toString('hex'),
  };
}

/** Rebuilds a vector's HeaderFields (with a chosen DEK table) from its JSON. */
export function fieldsOf(v: ValidVector): HeaderFields {
  return {
    version: v.headerVersion, dataset: v.dataset, keyNumber: v.keyNumber, oid: Buffer.from(v.oid, 'hex'), bucket: v.bucket, key: v.key, state: v.state,
    createdAt: v.createdAt, blockSize: v.blockSize, chunkSize: 65536, meta: v.meta, checksums: v.checksums,
    parts: v.parts.map((p) => ({ partNumber: p.partNumber, plaintextSize: p.plaintextSize, deks: p.deks.map((d) => Buffer.from(d, 'hex')) })),
  };
}

async function main(): Promise<void> {
  const dir = new URL('./', import.meta.url);
  const valid = [
    await build('empty', 'empty object: prefix only, zero chunks', 65536, [[1, 0]]),
    await build('one-byte', 'one chunk of 1 byte, last flag set', 65536, [[1, 1]]),
    await build('one-chunk', 'exactly one full chunk', 131072, [[1, 65536]]),
    await build('chunk-plus-one', 'full chunk + 1-byte last chunk, same block', 131072, [[1, 65537]]),
    await build('three-blocks', 'blockSize 64 KiB: 3 blocks, 3 DEKs, chunk index 0 in each', 65536, [[1, 131073]]),
    await build('multipart', 'parts 1 and 3 (non-contiguous part numbers); only part 1 carries the prefix', 131072, [[1, 65536], [3, 100]]),
    await build('v2-one-byte', 'header format 2 (sealed under a header key): one chunk of 1 byte', 65536, [[1, 1]], 2),
    await build('v2-multipart', 'header format 2: parts 1 and 3, only part 1 carries the prefix', 131072, [[1, 65536], [3, 100]], 2),
  ];
  for (const v of valid) writeFileSync(new URL(`valid-${v.name}.json`, dir), JSON.stringify(v, null, 1) + '\n');

  const by = (n: string): ValidVector => valid.find((v) => v.name === n)!;
  const S = SEALED_CHUNK_SIZE;
  const tb = by('three-blocks');
  // Header of three-blocks resealed with the DEK of block 1 erased.
  const erasedFields = fieldsOf(tb);
  erasedFields.parts[0].deks[1] = null;
  const erasedHeader = sealHeader(erasedFields, Buffer.from(tb.sealKey, 'hex'), () => Buffer.from(tb.headerNonce, 'hex'));
  // A correctly sealed header whose body has one byte after the JSON section.
  const oc = by('one-chunk');
  const ocFields = fieldsOf(oc);
  const badBody = Buffer.concat([encodeBody(ocFields), Buffer.of(0)]);
  const malformedHeader = sealBody(encodeFixed(ocFields, Buffer.from(oc.headerNonce, 'hex')), badBody, Buffer.from(oc.sealKey, 'hex'), ocFields.oid, oc.bucket, oc.key);

  const d = (name: string, base: string, change: Change, reason: string, emitsAtMost: number, comment: string): InvalidVector =>
    ({ name, comment, base, target: 'data', change, reason, emitsAtMost });
  const h = (name: string, base: string, change: Change, reason: string, comment: string): InvalidVector =>
    ({ name, comment, base, target: 'header', change, reason, emitsAtMost: 0 });
  const invalid: InvalidVector[] = [
    d('data-flip-ciphertext', 'one-chunk', { op: 'flip', offset: 32, mask: 1 }, 'ChunkAuthFailed', 0, 'first ciphertext bit'),
    d('data-flip-tag', 'one-chunk', { op: 'flip', offset: 32 + S - 1, mask: 0x80 }, 'ChunkAuthFailed', 0, 'last tag bit'),
    d('data-flip-second-chunk', 'chunk-plus-one', { op: 'flip', offset: 32 + S, mask: 1 }, 'ChunkAuthFailed', 65536, 'chunk 1 fails; chunk 0 may be released'),
    d('data-truncate-byte', 'chunk-plus-one', { op: 'truncate', length: 32 + S + 16 }, 'UnexpectedEOF', 65536, 'last sealed chunk loses 1 byte'),
    d('data-truncate-chunk', 'chunk-plus-one', { op: 'truncate', length: 32 + S }, 'UnexpectedEOF', 65536, 'last chunk dropped'),
    d('data-extend', 'one-byte', { op: 'append', hex: '00' }, 'TrailingData', 1, 'one byte appended'),
    d('data-swap-chunks', 'three-blocks', { op: 'swap', a: 32, b: 32 + S, length: S }, 'ChunkAuthFailed', 0, 'blocks 0 and 1 swapped'),
    d('data-splice-other-object', 'one-chunk', { op: 'splice', from: 'three-blocks', fromOffset: 32, length: S, at: 32 }, 'ChunkAuthFailed', 0, 'chunk 0 taken from another object'),
    d('data-bad-magic', 'one-byte', { op: 'flip', offset: 0, mask: 1 }, 'BadMagic', 0, 'prefix magic'),
    d('data-bad-version', 'one-byte', { op: 'set', offset: 8, value: 2 }, 'UnsupportedVersion', 0, 'prefix version 2'),
    d('data-reserved', 'one-byte', { op: 'set', offset: 12, value: 1 }, 'UnsupportedVersion', 0, 'prefix reserved byte not zero'),
    d('data-oid-mismatch', 'one-byte', { op: 'flip', offset: 16, mask: 1 }, 'OidMismatch', 0, 'prefix oid'),
    h('header-dek-erased', 'three-blocks', { op: 'replace', hex: erasedHeader.toString('hex') }, 'DekErased', 'authentic header with the DEK of block 1 erased: a full read fails before any byte'),
    h('header-bad-magic', 'one-chunk', { op: 'flip', offset: 7, mask: 1 }, 'BadMagic', 'magic'),
    h('header-bad-version', 'one-chunk', { op: 'set', offset: 8, value: 3 }, 'UnsupportedVersion', 'version 3'),
    h('header-v1-as-v2', 'one-chunk', { op: 'set', offset: 8, value: 2 }, 'HeaderAuthFailed', 'format-1 header relabelled format 2 (AAD and HKDF label)'),
    h('header-v2-as-v1', 'v2-one-byte', { op: 'set', offset: 8, value: 1 }, 'HeaderAuthFailed', 'format-2 header relabelled format 1 (AAD and HKDF label)'),
    h('header-v2-flip-key-number', 'v2-one-byte', { op: 'flip', offset: 44, mask: 1 }, 'HeaderAuthFailed', 'AAD: header-key number'),
    h('header-v2-wrong-key', 'v2-one-byte', { op: 'sealKey', hex: '22'.repeat(32) }, 'HeaderAuthFailed', 'another header key'),
    h('header-truncated', 'one-chunk', { op: 'truncate', length: 97 }, 'HeaderTruncated', 'shorter than fixed fields + tag'),
    h('header-truncated-body', 'one-chunk', { op: 'truncate', length: 200 }, 'HeaderAuthFailed', 'body cut'),
    h('header-flip-kek-id', 'one-chunk', { op: 'flip', offset: 9, mask: 1 }, 'HeaderAuthFailed', 'AAD: KEK id'),
    h('header-flip-kek-version', 'one-chunk', { op: 'flip', offset: 44, mask: 1 }, 'HeaderAuthFailed', 'AAD: KEK version'),
    h('header-flip-oid', 'one-chunk', { op: 'flip', offset: 45, mask: 1 }, 'HeaderAuthFailed', 'AAD + HKDF salt: oid'),
    h('header-flip-state', 'one-chunk', { op: 'set', offset: 61, value: 1 }, 'HeaderAuthFailed', 'AAD: final -> pending'),
    h('header-flip-created', 'one-chunk', { op: 'flip', offset: 69, mask: 1 }, 'HeaderAuthFailed', 'AAD: createdAt'),
    h('header-flip-nonce', 'one-chunk', { op: 'flip', offset: 70, mask: 1 }, 'HeaderAuthFailed', 'nonce'),
    h('header-flip-body', 'one-chunk', { op: 'flip', offset: 90, mask: 1 }, 'HeaderAuthFailed', 'sealed body'),
    h('header-extend', 'one-chunk', { op: 'append', hex: '00' }, 'HeaderAuthFailed', 'one byte appended'),
    h('header-moved-key', 'one-chunk', { op: 'location', bucket: 'vector-bucket', key: 'objects/other.bin' }, 'HeaderAuthFailed', 'opened at another key'),
    h('header-moved-bucket', 'one-chunk', { op: 'location', bucket: 'other-bucket', key: 'objects/one-chunk.bin' }, 'HeaderAuthFailed', 'opened in another bucket'),
    h('header-wrong-kek', 'one-chunk', { op: 'sealKey', hex: '11'.repeat(32) }, 'HeaderAuthFailed', 'another KEK (version)'),
    h('header-from-other-object', 'one-chunk', { op: 'header-from', vector: 'chunk-plus-one' }, 'HeaderAuthFailed', 'header of another object at this location'),
    h('header-malformed-body', 'one-chunk', { op: 'replace', hex: malformedHeader.toString('hex') }, 'HeaderMalformed', 'authentic body with a trailing byte'),
  ];
  const sizes = [0, 31, 33, 48, 32 + S + 1, 32 + S + 16].map((c) => ({ ciphertextSize: c, reason: 'InvalidCiphertextSize' }));
  writeFileSync(new URL('invalid.json', dir), JSON.stringify({ vectors: invalid, sizes }, null, 1) + '\n');
  console.log(`wrote ${valid.length} valid, ${invalid.length} invalid, ${sizes.length} size vectors`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

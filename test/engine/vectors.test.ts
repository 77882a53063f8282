import { createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkEmptyObject, closeCryptoPool, createDecryptStream, createEncryptStream, isFormatError, openHeader, peekHeader,
  planRange, plaintextSize, sealHeader, totalPlaintextSize, type HeaderFields,
} from '../../src/engine/index.ts';
import { fieldsOf, plaintextOf, type Change, type InvalidVector, type ValidVector } from '../vectors/generate.ts';

const dir = new URL('../vectors/', import.meta.url);
const valid: ValidVector[] = readdirSync(dir).filter((f) => f.startsWith('valid-')).sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as ValidVector);
const invalid = JSON.parse(readFileSync(new URL('invalid.json', dir), 'utf8')) as { vectors: InvalidVector[]; sizes: { ciphertextSize: number; reason: string }[] };
const byName = (n: string): ValidVector => valid.find((v) => v.name === n)!;
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

afterAll(() => closeCryptoPool());

/** Full read as the server does it: plan, fetch that ciphertext range, decrypt. Collects what was released. */
async function readAll(h: HeaderFields, data: Buffer, threads: number): Promise<{ out: Buffer; err?: unknown }> {
  const size = totalPlaintextSize(h);
  const got: Buffer[] = [];
  try {
    if (size === 0) {
      checkEmptyObject(data, h);
      return { out: Buffer.alloc(0) };
    }
    const r = planRange(h, 0, size - 1);
    // A full read returns whatever the backend holds from cipherStart on (so extension and truncation show).
    const input = data.subarray(r.cipherStart);
    const dec = createDecryptStream({ header: h, start: 0, endInclusive: size - 1, threads });
    dec.on('data', (b: Buffer) => got.push(b));
    await buffer(Readable.from([input]).pipe(dec));
    return { out: Buffer.concat(got) };
  } catch (err) {
    return { out: Buffer.concat(got), err };
  }
}

describe('valid vectors', () => {
  it('has the expected set', () => {
    expect(valid.map((v) => v.name)).toEqual(['chunk-plus-one', 'empty', 'multipart', 'one-byte', 'one-chunk', 'three-blocks', 'v2-multipart', 'v2-one-byte']);
    expect(valid.map((v) => v.headerVersion)).toEqual([1, 1, 1, 1, 1, 1, 2, 2]);
  });
  for (const v of valid) {
    describe(v.name, () => {
      const f = fieldsOf(v);
      it('encrypts to the ciphertext byte for byte', async () => {
        let offset = 0;
        const pieces: Buffer[] = [];
        for (const p of f.parts) {
          const enc = createEncryptStream({ dataset: v.dataset, oid: f.oid, partNumber: p.partNumber!, plaintextSize: p.plaintextSize, blockSize: v.blockSize, deks: p.deks as Buffer[], withPrefix: p.partNumber === 1, threads: 0 });
          pieces.push(await buffer(Readable.from([plaintextOf(p.plaintextSize, offset)]).pipe(enc)));
          offset += p.plaintextSize;
        }
        expect(Buffer.concat(pieces).toString('hex')).toBe(v.ciphertext);
        expect(plaintextSize(v.ciphertext.length / 2)).toBe(v.plaintext.size);
      });
      it('seals the header byte for byte', () => {
        expect(sealHeader(f, hex(v.sealKey), () => hex(v.headerNonce)).toString('hex')).toBe(v.header);
      });
      it('opens the header and decrypts to the plaintext (inline and pool)', async () => {
        const h = openHeader(hex(v.header), { bucket: v.bucket, key: v.key }, hex(v.sealKey));
        expect(h).toEqual(f);
        expect(peekHeader(hex(v.header))).toEqual({ version: v.headerVersion, datasetId: createHash('sha256').update(v.dataset).digest(), keyNumber: v.keyNumber, oid: f.oid, state: 'final', createdAt: v.createdAt });
        for (const threads of [0, 2]) {
          const { out, err } = await readAll(h, hex(v.ciphertext), threads);
          expect(err).toBeUndefined();
          expect(createHash('sha256').update(out).digest('hex')).toBe(v.plaintext.sha256);
        }
      });
    });
  }
});

describe('independent decoder from docs/FORMAT.md', () => {
  it.for(['one-byte', 'v2-one-byte'])('opens the %s vector with node:crypto only', (name) => {
    const v = byName(name);
    const kek = hex(v.sealKey);
    const header = hex(v.header);
    expect(header[8]).toBe(v.headerVersion);
    const oid = header.subarray(45, 61);
    const info = Buffer.concat([Buffer.from(`lakecrypt/v${header[8]} header`), Buffer.of(0), Buffer.from(v.bucket), Buffer.of(0), Buffer.from(v.key)]);
    const hk = Buffer.from(hkdfSync('sha256', kek, oid, info, 32));
    const d = createDecipheriv('aes-256-gcm', hk, header.subarray(70, 82));
    d.setAAD(header.subarray(0, 82));
    d.setAuthTag(header.subarray(header.length - 16));
    const body = Buffer.concat([d.update(header.subarray(82, header.length - 16)), d.final()]);
    // body: dataset, bucket, key (u16-prefixed), blockSize, chunkSize, partCount, part 1: number, size u64, dekCount, flag + DEK
    let at = 0;
    const str = (): string => { const n = body.readUInt16BE(at); at += 2; at += n; return body.toString('utf8', at - n, at); };
    expect([str(), str(), str()]).toEqual([v.dataset, v.bucket, v.key]);
    expect([body.readUInt32BE(at), body.readUInt32BE(at + 4), body.readUInt32BE(at + 8), body.readUInt32BE(at + 12)]).toEqual([v.blockSize, 65536, 1, 1]);
    at += 16;
    expect(Number(body.readBigUInt64BE(at))).toBe(1);
    expect(body.readUInt32BE(at + 8)).toBe(1);
    expect(body[at + 12]).toBe(0);
    const dek = body.subarray(at + 13, at + 45);
    expect(dek.toString('hex')).toBe(v.parts[0].deks[0]);
    // Data: prefix, then chunk 0 of block 0 of part 1 with the last flag.
    const data = hex(v.ciphertext);
    expect(data.subarray(0, 8).toString()).toBe('LKCRYPTD');
    expect(data.subarray(16, 32)).toEqual(oid);
    const aad = Buffer.concat([Buffer.from('LKC1'), createHash('sha256').update(v.dataset).digest(), oid, Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1])]);
    const c = createDecipheriv('aes-256-gcm', dek, Buffer.alloc(12));
    c.setAAD(aad);
    c.setAuthTag(data.subarray(33, 49));
    expect(Buffer.concat([c.update(data.subarray(32, 33)), c.final()])).toEqual(Buffer.of(0));
  });
});

function apply(bytes: Buffer, c: Change): Buffer {
  const b = Buffer.from(bytes);
  switch (c.op) {
    case 'flip': b[c.offset] ^= c.mask; return b;
    case 'set': b[c.offset] = c.value; return b;
    case 'truncate': return b.subarray(0, c.length);
    case 'append': return Buffer.concat([b, hex(c.hex)]);
    case 'swap': { const x = Buffer.from(b.subarray(c.a, c.a + c.length)); b.copy(b, c.a, c.b, c.b + c.length); x.copy(b, c.b); return b; }
    case 'splice': hex(byName(c.from).ciphertext).copy(b, c.at, c.fromOffset, c.fromOffset + c.length); return b;
    case 'replace': return hex(c.hex);
    case 'header-from': return hex(byName(c.vector).header);
    default: return b;
  }
}

describe('invalid vectors', () => {
  it('cover every named reason', () => {
    const reasons = new Set([...invalid.vectors.map((v) => v.reason), ...invalid.sizes.map((s) => s.reason)]);
    expect([...reasons].sort()).toEqual(['BadMagic', 'ChunkAuthFailed', 'DekErased', 'HeaderAuthFailed', 'HeaderMalformed', 'HeaderTruncated', 'InvalidCiphertextSize', 'OidMismatch', 'TrailingData', 'UnexpectedEOF', 'UnsupportedVersion']);
  });
  for (const iv of invalid.vectors) {
    it.for([0, 2])(`${iv.name}: fails with ${iv.reason} (threads %i)`, async (threads) => {
      const base = byName(iv.base);
      const header = iv.target === 'header' ? apply(hex(base.header), iv.change) : hex(base.header);
      const data = iv.target === 'data' ? apply(hex(base.ciphertext), iv.change) : hex(base.ciphertext);
      const loc = iv.change.op === 'location' ? { bucket: iv.change.bucket, key: iv.change.key } : { bucket: base.bucket, key: base.key };
      const kek = iv.change.op === 'sealKey' ? hex(iv.change.hex) : hex(base.sealKey);
      let h: HeaderFields;
      try {
        h = openHeader(header, loc, kek);
      } catch (e) {
        expect(iv.target).toBe('header');
        expect(isFormatError(e) && e.reason).toBe(iv.reason);
        return;
      }
      const { out, err } = await readAll(h, data, threads);
      expect(isFormatError(err) && err.reason).toBe(iv.reason);
      expect(isFormatError(err) && err.code).toBe(iv.reason === 'DekErased' ? 'KeyRevoked' : 'IntegrityError');
      expect(out.length).toBeLessThanOrEqual(iv.emitsAtMost);
      expect(out).toEqual(plaintextOf(out.length));
    });
  }
  it.for(invalid.sizes)('plaintextSize($ciphertextSize) fails with $reason', ({ ciphertextSize, reason }) => {
    let caught: unknown;
    try { plaintextSize(ciphertextSize); } catch (e) { caught = e; }
    expect(isFormatError(caught) && caught.reason).toBe(reason);
  });
});

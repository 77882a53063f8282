import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import {
  blockCount, createDecryptStream, createEncryptStream, newDeks, planRange, type HeaderFields,
} from '../../src/engine/index.ts';

export const C = 65536;
export const S = C + 16;

/** Feeds `data` in pieces of `piece` bytes (odd sizes exercise batch assembly across writes). */
export const pieces = (data: Buffer, piece: number): Readable =>
  Readable.from((function* () { for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece); })());

export interface Obj { h: HeaderFields; ct: Buffer; pt: Buffer }

/** Encrypts a (possibly multipart) object; part numbers default to 1..n. */
export async function encryptObject(sizes: number[], blockSize: number, opts: { threads?: number; piece?: number; dataset?: string; partNumbers?: number[]; oid?: Buffer } = {}): Promise<Obj> {
  const dataset = opts.dataset ?? 'ds';
  const oid = opts.oid ?? randomBytes(16);
  const pt = randomBytes(sizes.reduce((a, b) => a + b, 0));
  const parts: HeaderFields['parts'] = [];
  const cts: Buffer[] = [];
  let off = 0;
  for (const [i, size] of sizes.entries()) {
    const partNumber = opts.partNumbers?.[i] ?? i + 1;
    const deks = newDeks(blockCount(size, blockSize));
    const enc = createEncryptStream({ dataset, oid, partNumber, plaintextSize: size, blockSize, deks, withPrefix: partNumber === 1, threads: opts.threads ?? 0 });
    cts.push(await buffer(pieces(pt.subarray(off, off + size), opts.piece ?? 100_003).pipe(enc)));
    parts.push({ partNumber, plaintextSize: size, deks });
    off += size;
  }
  const h: HeaderFields = {
    version: 2, dataset, keyNumber: 1, oid, bucket: 'b', key: 'k', state: 'final', createdAt: 1, blockSize, chunkSize: C, parts,
    meta: { user: {} }, checksums: {},
  };
  return { h, ct: Buffer.concat(cts), pt };
}

/** Range read as the server does it. Returns what was released before any error. */
export async function readRange(o: { h: HeaderFields; ct: Buffer }, start: number, end: number, opts: { threads?: number; isRevoked?: (p: number, b: number) => boolean; piece?: number } = {}): Promise<{ out: Buffer; err?: unknown }> {
  const got: Buffer[] = [];
  try {
    const r = planRange(o.h, start, end);
    const dec = createDecryptStream({ header: o.h, start, endInclusive: end, threads: opts.threads ?? 0, isRevoked: opts.isRevoked });
    dec.on('data', (b: Buffer) => got.push(b));
    await buffer(pieces(o.ct.subarray(r.cipherStart, r.cipherEnd + 1), opts.piece ?? 77_777).pipe(dec));
    return { out: Buffer.concat(got) };
  } catch (err) {
    return { out: Buffer.concat(got), err };
  }
}

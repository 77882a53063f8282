/**
 * Header keys (docs/FORMAT.md 3.4): random 32-byte keys that format-2 headers are sealed under, kept in the
 * dataset's keystore record wrapped under a KEK version with AES-256-GCM. A KEK rotation starts a new header key
 * for new writes; re-wrapping moves the older header keys under the new KEK version — one keystore write for the
 * whole dataset instead of one rewrite per header.
 */
import { openBlob, sealBlob } from '../format/aead.ts';
import { S3Error } from '../errors.ts';
import { liveKey } from './cache.ts';
import type { DatasetRecord, HeaderKeyRecord } from './keystore.ts';

const LABEL = Buffer.from('lakecrypt/v2 header-key', 'latin1');

/** AAD = "lakecrypt/v2 header-key" || datasetId (32) || uint32(n) || uint32(generation) || uint32(kekVersion). */
export function hkAad(datasetIdHex: string, n: number, generation: number, kekVersion: number): Buffer {
  const nums = Buffer.alloc(12);
  nums.writeUInt32BE(n >>> 0, 0);
  nums.writeUInt32BE(generation >>> 0, 4);
  nums.writeUInt32BE(kekVersion >>> 0, 8);
  return Buffer.concat([LABEL, Buffer.from(datasetIdHex, 'hex'), nums]);
}

/** `generation` is bound too: it picks the key new writes use, so the keystore's holder must not change it. */
export function wrapHeaderKey(kek: Buffer, key: Buffer, datasetIdHex: string, n: number, generation: number, kekVersion: number): string {
  return sealBlob(liveKey(kek), liveKey(key), { aad: hkAad(datasetIdHex, n, generation, kekVersion) }).toString('base64');
}

/** The header key of a record; IntegrityError when its blob does not open under the KEK given. */
export function unwrapHeaderKey(kek: Buffer, rec: HeaderKeyRecord, datasetIdHex: string): Buffer {
  const b = Buffer.from(rec.blob, 'base64');
  if (b.length !== 12 + 32 + 16) throw new S3Error('IntegrityError', `header key ${rec.n} has a malformed blob`);
  const key = openBlob(kek, b, { aad: hkAad(datasetIdHex, rec.n, rec.generation, rec.kekVersion) });
  if (key === null) throw new S3Error('IntegrityError', `header key ${rec.n} failed authentication under KEK version ${rec.kekVersion}`);
  return key;
}

/** The header key new headers use: the newest of the active KEK version's generation. */
export function currentHeaderKey(keys: HeaderKeyRecord[] | undefined, activeVersion: number): HeaderKeyRecord | undefined {
  let best: HeaderKeyRecord | undefined;
  for (const k of keys ?? []) if (k.generation === activeVersion && (!best || k.n > best.n)) best = k;
  return best;
}

/** The highest header-key number the record ever gave out (retired keys included): numbers are never reused. */
export function lastGivenHeaderKey(rec: Pick<DatasetRecord, 'headerKeys' | 'lastHeaderKey'>): number {
  return Math.max(rec.lastHeaderKey ?? 0, ...(rec.headerKeys ?? []).map((k) => k.n));
}

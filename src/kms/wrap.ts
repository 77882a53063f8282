/**
 * The KMS endpoint's ciphertexts: what `/v1/transit/encrypt/<key>` returns and `/decrypt` takes.
 *
 *   vault:v<N>:<base64( salt(16) || nonce(12) || AES-256-GCM(subkey, plaintext, aad) || tag(16) )>
 *
 * N is the dataset's KEK version the value is wrapped under (so a rotation, a revocation and a re-wrap work on it
 * as on headers; clients that read the `vault:vN:` prefix, as Vault's own tooling does, see the version). The key
 * is never the KEK itself: subkey = HKDF-SHA256(ikm = KEK version N, salt, info = "lakecrypt/v1 kms" || 0x00 ||
 * datasetId(32) || uint32be(N)), with a fresh random salt per value, so the nonces of one subkey never need
 * counting (a KEK version may wrap billions of Parquet keys) and a KMS value never shares a key with a header, a
 * header key or a sealed ETag of the same dataset, which are all derived or wrapped under other labels.
 * The AAD binds the same (purpose, dataset, version), plus Vault's optional `associated_data`, so a value moved to
 * another dataset, relabelled to another version or presented as anything else does not open.
 */
import { randomBytes } from 'node:crypto';
import { AEAD_NONCE_SIZE, AEAD_TAG_SIZE, openBlob, sealBlob } from '../format/aead.ts';
import { hkdfSha256 } from '../format/header.ts';
import { liveKey } from '../keys/cache.ts';

const LABEL = Buffer.from('lakecrypt/v1 kms\0', 'latin1');
const SALT_SIZE = 16;
/** The smallest value: salt, nonce and tag around an empty plaintext. */
const MIN_RAW = SALT_SIZE + AEAD_NONCE_SIZE + AEAD_TAG_SIZE;
/** `vault:v<1-10 digits>:` then canonical base64 (padding as Buffer.toString('base64') writes it). */
const VALUE = /^vault:v([1-9]\d{0,9}):([A-Za-z0-9+/]+={0,2})$/;

/** purpose || datasetId || uint32be(version): the HKDF info and the start of the AAD. */
function context(datasetIdHex: string, version: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version >>> 0);
  return Buffer.concat([LABEL, Buffer.from(datasetIdHex, 'hex'), v]);
}

/** AAD = context || the caller's associated data (Vault's `associated_data`, empty when none). */
function aadOf(datasetIdHex: string, version: number, associated?: Buffer): Buffer {
  return associated?.length ? Buffer.concat([context(datasetIdHex, version), associated]) : context(datasetIdHex, version);
}

function subkey(kek: Buffer, salt: Buffer, datasetIdHex: string, version: number): Buffer {
  return hkdfSha256(liveKey(kek), salt, context(datasetIdHex, version), 32);
}

/** Wrap `plaintext` under KEK version `version` of the dataset (the KEK is used for the derivation only). */
export function sealKms(kek: Buffer, datasetIdHex: string, version: number, plaintext: Buffer, associated?: Buffer): string {
  const salt = randomBytes(SALT_SIZE);
  const blob = sealBlob(subkey(kek, salt, datasetIdHex, version), plaintext, { aad: aadOf(datasetIdHex, version, associated), wipeKey: true });
  return `vault:v${version}:${Buffer.concat([salt, blob]).toString('base64')}`;
}

/** The version a value names and its raw bytes, or null when it is not a value of this form. */
export function parseKms(value: string): { version: number; raw: Buffer } | null {
  const m = VALUE.exec(value);
  if (!m) return null;
  const version = Number(m[1]);
  const raw = Buffer.from(m[2], 'base64');
  // canonical encoding only, so one value has one spelling
  if (version > 0xffffffff || raw.length < MIN_RAW || raw.toString('base64') !== m[2]) return null;
  return { version, raw };
}

/** The plaintext, or null when the value does not open under this dataset's KEK version (tampered, moved, relabelled). */
export function openKms(kek: Buffer, datasetIdHex: string, version: number, raw: Buffer, associated?: Buffer): Buffer | null {
  if (raw.length < MIN_RAW) return null;
  const key = subkey(kek, raw.subarray(0, SALT_SIZE), datasetIdHex, version);
  return openBlob(key, raw.subarray(SALT_SIZE), { aad: aadOf(datasetIdHex, version, associated), wipeKey: true });
}

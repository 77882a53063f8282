/**
 * What the KMS endpoint does, apart from HTTP: key names to datasets, who may use which, and the Transit
 * operations (encrypt = wrap, decrypt = unwrap, data keys, rewrap, key info) over the dataset's KEK versions.
 *
 * Key names: a dataset name with '/' written as ':' (`lake:finance` is the dataset `lake/finance`, `lake` the
 * bucket dataset `lake`); a '/' sent as is counts the same (`lake/finance`: parquet-java's Vault sample client
 * puts the master key id into the path unchanged, and ':' cannot be in a Parquet master key id, whose column-keys
 * property uses it as a separator). Each part is percent-decoded after the split, so a prefix holding a ':'
 * itself is written `%3A`. A name must be a dataset exactly: a routed (configured or registered) dataset, a
 * dataset that has a keystore record, or an existing bucket. A longer name is not quietly taken for the dataset
 * that routes it: Parquet stores the master key's name in every file, and it must be the dataset that revocation
 * and rotation act on. One dataset is one master key; for separate master keys (footer and columns, or one per
 * column group) register separate datasets (`lake/finance/pii`).
 *
 * Every KEK comes from the KeyService (`activeKek`, `kek`), which hands keys out only while the revocation epoch
 * is confirmed within the bound: `keys revoke` stops unwraps on every gateway as it stops S3 reads.
 */
import { randomBytes } from 'node:crypto';
import { S3Error } from '../errors.ts';
import type { User, Users } from '../auth/users.ts';
import type { KeyService } from '../keys/service.ts';
import { openKms, parseKms, sealKms } from './wrap.ts';

/** The Transit operations served, as the audit trail names them (`kms.<op>`). */
export type TransitOp = 'encrypt' | 'decrypt' | 'datakey' | 'rewrap' | 'keys';

/** Largest plaintext wrapped in one call: Parquet's keys are 16-32 bytes, Vault's data keys at most 64. */
export const MAX_PLAINTEXT = 32 * 1024;

/** `lake:finance` -> `lake/finance`; InvalidArgument for a name that cannot be a dataset name. */
export function datasetOfKeyName(name: string): string {
  if (!name || name.length > 2048) throw new S3Error('InvalidArgument', 'invalid key name');
  let parts: string[];
  try {
    parts = name.split(/[:/]/).map((p) => decodeURIComponent(p));
  } catch {
    throw new S3Error('InvalidArgument', 'invalid key name: bad percent-encoding');
  }
  if (!parts[0]) throw new S3Error('InvalidArgument', 'invalid key name: no bucket');
  return parts.join('/');
}

/** The KMS key name of a dataset (the inverse of datasetOfKeyName). */
export function keyNameOf(dataset: string): string {
  return dataset
    .split('/')
    .map((p) => p.replace(/[%:]/g, (ch) => encodeURIComponent(ch)))
    .join(':');
}

const bucketOf = (dataset: string): string => {
  const i = dataset.indexOf('/');
  return i < 0 ? dataset : dataset.slice(0, i);
};

/** Vault's base64 fields: strict (canonical) base64, else InvalidArgument naming the field. */
export function b64Field(v: unknown, field: string, o: { optional?: boolean } = {}): Buffer | undefined {
  if (v === undefined || v === null || v === '') {
    if (o.optional) return undefined;
    throw new S3Error('InvalidArgument', `missing ${field}`);
  }
  if (typeof v !== 'string') throw new S3Error('InvalidArgument', `${field} must be a base64 string`);
  const b = Buffer.from(v, 'base64');
  if (b.toString('base64') !== v) throw new S3Error('InvalidArgument', `${field} is not valid base64`);
  return b;
}

export interface KeyInfo {
  name: string;
  type: 'aes256-gcm96';
  /** The version new wraps use (0: the dataset has no KEK yet; the first wrap makes version 1). */
  latest_version: number;
  min_decryption_version: number;
  min_encryption_version: number;
  /** Versions that unwrap now: version -> creation time (Unix seconds), as Vault lists them. */
  keys: Record<string, number>;
  deletion_allowed: false;
  derived: false;
  exportable: false;
  allow_plaintext_backup: false;
  supports_encryption: true;
  supports_decryption: true;
  supports_derivation: false;
  supports_signing: false;
  /** lakecrypt's own view: the dataset and every version's state (revoked ones too). */
  lakecrypt: { dataset: string; versions: { version: number; state: string }[] };
}

export class Transit {
  constructor(
    private readonly keys: KeyService,
    private readonly users: Users,
  ) {}

  /** The same rule as S3 access: a user who cannot reach the dataset's bucket cannot use its keys. */
  authorize(user: User, dataset: string): void {
    if (!this.users.canAccess(user, bucketOf(dataset))) throw new S3Error('AccessDenied', 'permission denied');
  }

  /** NoSuchKey (404) unless the name is a dataset (see the file comment). Checked after authorize(). */
  async requireDataset(dataset: string): Promise<void> {
    if (this.keys.routedDatasets().some((d) => d.name === dataset)) return;
    if (await this.keys.datasetRecord(dataset)) return;
    if (!dataset.includes('/') && (await this.keys.backend.bucketExists(dataset))) return;
    throw new S3Error('NoSuchKey', 'encryption key not found');
  }

  /** Wrap under the active KEK version (created lazily for a dataset that has none, as its first PUT would). */
  async encrypt(dataset: string, plaintext: Buffer, associated?: Buffer, keyVersion?: number): Promise<{ ciphertext: string; version: number }> {
    if (plaintext.length > MAX_PLAINTEXT) throw new S3Error('InvalidArgument', `plaintext is limited to ${MAX_PLAINTEXT} bytes`);
    const { version, key } = await this.keys.activeKek(dataset);
    if (keyVersion !== undefined && keyVersion !== 0 && keyVersion !== version) {
      throw new S3Error('InvalidArgument', `new values are wrapped under the active version ${version} only`);
    }
    return { ciphertext: sealKms(key, this.keys.datasetId(dataset), version, plaintext, associated), version };
  }

  /** Unwrap: the version the value names must be usable (not revoked, pending destruction or destroyed). */
  async decrypt(dataset: string, ciphertext: unknown, associated?: Buffer): Promise<{ plaintext: Buffer; version: number }> {
    if (typeof ciphertext !== 'string' || !ciphertext) throw new S3Error('InvalidArgument', 'missing ciphertext');
    const parsed = parseKms(ciphertext);
    if (!parsed) throw new S3Error('InvalidArgument', 'invalid ciphertext: not a vault:v<N>:<base64> value of this endpoint');
    const kek = await this.keys.kek(dataset, parsed.version);
    const plaintext = openKms(kek, this.keys.datasetId(dataset), parsed.version, parsed.raw, associated);
    if (!plaintext) throw new S3Error('InvalidArgument', 'cipher: message authentication failed (not a value of this key, or altered)');
    return { plaintext, version: parsed.version };
  }

  /** A fresh random key of `bits`, and its wrap. */
  async datakey(dataset: string, bits: unknown, associated?: Buffer): Promise<{ plaintext: Buffer; ciphertext: string; version: number }> {
    const n = bits === undefined || bits === null || bits === '' ? 256 : Number(bits);
    if (n !== 128 && n !== 256 && n !== 512) throw new S3Error('InvalidArgument', 'bits must be 128, 256 or 512');
    const plaintext = randomBytes(n / 8);
    return { plaintext, ...(await this.encrypt(dataset, plaintext, associated)) };
  }

  /** Unwrap, then wrap again under the active version: the client's lazy re-wrap after a rotation. */
  async rewrap(dataset: string, ciphertext: unknown, associated?: Buffer): Promise<{ ciphertext: string; version: number; from: number }> {
    const d = await this.decrypt(dataset, ciphertext, associated);
    try {
      return { ...(await this.encrypt(dataset, d.plaintext, associated)), from: d.version };
    } finally {
      d.plaintext.fill(0);
    }
  }

  /** Vault's key read, from the dataset's keystore record (read afresh: it is the operator's view). */
  async keyInfo(dataset: string): Promise<KeyInfo> {
    const rec = await this.keys.datasetRecord(dataset, true);
    const versions = rec?.versions ?? [];
    const usable = versions.filter((v) => v.state === 'active' || v.state === 'decrypt-only');
    const active = versions.find((v) => v.state === 'active');
    return {
      name: keyNameOf(dataset),
      type: 'aes256-gcm96',
      latest_version: active?.version ?? 0,
      min_decryption_version: usable.length ? Math.min(...usable.map((v) => v.version)) : 0,
      min_encryption_version: 0,
      keys: Object.fromEntries(usable.map((v) => [String(v.version), Math.floor(Date.parse(v.createdAt) / 1000)])),
      deletion_allowed: false,
      derived: false,
      exportable: false,
      allow_plaintext_backup: false,
      supports_encryption: true,
      supports_decryption: true,
      supports_derivation: false,
      supports_signing: false,
      lakecrypt: { dataset, versions: versions.map((v) => ({ version: v.version, state: v.state })) },
    };
  }
}

/**
 * CMK provider: the root of trust. The CMK never leaves the provider; it only wraps and unwraps KEK material.
 * Implementations:
 *  - `local`: a 0600 key file per CMK version in the data dir;
 *  - `pkcs11`: a non-extractable AES-256 key in an HSM token, via graphene-pk11;
 *  - `transit`: a customer-held Vault / OpenBao Transit key (versions = the transit key's versions);
 *  - `awskms`: a customer-held AWS KMS key (or a KMS-compatible server; version N = the Nth KMS key, see
 *    awskms-cmk.ts).
 * Built from configuration by `createCmkProvider` (providers.ts). One contract test suite
 * (test/keys/cmk-contract.test.ts) runs against all four. Errors: KeyRevoked when the CMK (version) is disabled,
 * destroyed or access to it was withdrawn; IntegrityError when a blob does not authenticate under its aad;
 * ServiceUnavailable (naming the CMK, never a secret) when the key server / token cannot be reached.
 */
export interface CmkVersionInfo {
  version: number;
  state: 'active' | 'disabled' | 'destroyed';
  createdAt: string;
}

export interface WrappedKey {
  /** Which CMK (tenant) and which version of it wrapped this. */
  cmkId: string;
  cmkVersion: number;
  /** Opaque provider output (nonce || ciphertext || tag for AES-256-GCM). */
  blob: Buffer;
}

export type CmkKind = 'local' | 'pkcs11' | 'transit' | 'awskms';

export interface CmkProvider {
  readonly kind: CmkKind;
  /** Logical CMK name (tenant); datasets are bound to one. */
  readonly id: string;
  /** Wrap 32 bytes of KEK material under the active CMK version; `aad` binds the context (dataset, KEK version). */
  wrap(plaintextKey: Buffer, aad: Buffer): Promise<WrappedKey>;
  /** Unwrap; throws S3Error('KeyRevoked') if the CMK version is disabled/destroyed, IntegrityError if the blob fails. */
  unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Buffer>;
  versions(): Promise<CmkVersionInfo[]>;
  /** Create a new active version; the previous stays usable for unwrap until disabled. */
  rotate(): Promise<CmkVersionInfo>;
  disable(version: number): Promise<void>;
  enable(version: number): Promise<void>;
  destroy(version: number): Promise<void>;
  /** Readiness: the provider answers (token / key server reachable, key file readable). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

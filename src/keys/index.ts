/** Public surface of the key subsystem. */
export * from './types.ts';
export { LocalCmkProvider, type LocalCmkOptions } from './local-cmk.ts';
export { Pkcs11CmkProvider, type Pkcs11CmkOptions, type Pkcs11KeyInspection } from './pkcs11-cmk.ts';
export {
  Keystore,
  datasetIdOf,
  kekAad,
  recordKey,
  KEYSTORE_PREFIX,
  EPOCH_KEY,
  AUDIT_KEY_PATH,
  type DatasetRecord,
  type KekVersionRecord,
  type KekState,
  type StoredWrapped,
} from './keystore.ts';
export { LruTtlCache, SecretCache, KekCache, keyCacheCounters, type CacheStats, type LruTtlOptions } from './cache.ts';
export {
  KeyService,
  type KeyServiceOptions,
  type DatasetConfig,
  type DatasetSummary,
  type DatasetView,
  type CmkStatus,
  type CmkRotateResult,
  type KeystoreExport,
} from './service.ts';
export { AuditLog, loadAuditKey, canonicalJson, entryHash, auditKeyName, AUDIT_PREFIX, type AuditEntry, type AuditVerifyResult } from './audit.ts';

import { LocalCmkProvider } from './local-cmk.ts';
import { Pkcs11CmkProvider } from './pkcs11-cmk.ts';
import type { CmkProvider } from './types.ts';

export type CmkConfig =
  | { kind: 'local'; id: string; dataDir: string }
  | { kind: 'pkcs11'; id: string; module: string; tokenLabel: string; pin: string };

/** Build a CMK provider from configuration. */
export function createCmkProvider(cfg: CmkConfig): CmkProvider {
  return cfg.kind === 'local'
    ? new LocalCmkProvider({ id: cfg.id, dataDir: cfg.dataDir })
    : new Pkcs11CmkProvider({ id: cfg.id, module: cfg.module, tokenLabel: cfg.tokenLabel, pin: cfg.pin });
}

/**
 * The admin API's answers as the CLI reads them, named from the types the server builds them from (type-only
 * imports: nothing of the server is loaded), so a change on either side fails the type check, not a user.
 */
import type { DestroyResult } from '../admin/destroy.ts';
import type { GcReport } from '../admin/gc.ts';
import type { MigrateState } from '../admin/migrate.ts';
import type { RevokeResult } from '../admin/objects.ts';
import type { RewrapState } from '../admin/rewrap.ts';
import type { AuditEntry, AuditVerifyResult } from '../keys/audit.ts';
import type { CmkRotateResult, CmkStatus, DatasetSummary, DatasetView, KeystoreExport } from '../keys/service.ts';
import type { CmkVersionInfo } from '../keys/types.ts';
import type { CmkVersionView } from '../keys/cmk-admin.ts';
import type { KmsTokenView } from '../kms/tokens.ts';

export type { AuditVerifyResult, CmkRotateResult, DatasetView, DestroyResult, KeystoreExport, MigrateState, RevokeResult };
export interface KeysList { datasets: DatasetSummary[] }
export type KeyCreated = DatasetView & { created: boolean };
export interface KeyRotated { dataset: string; version: number; rewrap?: RewrapState }
export interface KeysRevoked { dataset: string; revoked: number[] }
export interface KeysRestored { dataset: string; restored: number[] }
export interface DestroyCancelled { dataset: string; version: number; state: string; destroyAt: string }
export interface ObjectRekeyed { bucket: string; key: string; oldOid: string; oid: string; etag: string }
export interface RewrapStatus {
  dataset: string;
  running: boolean;
  activeVersion?: number;
  total?: number;
  pending: number | null;
  byVersion?: Record<string, number>;
  job: RewrapState | null;
}
export type RewrapJob = RewrapState;
export interface CmkList { cmks: CmkStatus[] }
export interface CmkChanged { cmk: string; version: number; op: string; versions: (CmkVersionInfo | CmkVersionView)[]; destroyAt?: string; waitingPeriod?: 'lakecrypt' | 'provider' }
export interface AuditList { entries: AuditEntry[] }
export interface Restored { created: number; merged: number; unchanged: number; rewrapped?: number }
export type GcAnswer = GcReport & { apply: boolean };
export type KmsTokenCreated = KmsTokenView & { token: string };
export interface KmsTokenList { tokens: KmsTokenView[] }
export interface KmsTokenRevoked { revoked: KmsTokenView }

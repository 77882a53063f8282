/**
 * Tenants: a tenant groups buckets (and so the datasets in them), S3 users and a CMK, and has admins whose
 * credentials reach the admin API for that tenant only.
 *
 * Which buckets a tenant owns: the buckets its configuration lists, plus the buckets a user of the tenant created
 * through the gateway (recorded in the keystore's dataset registry, so that every gateway agrees). This module
 * does not read the keystore: it is handed a lookup (`ownerOf`) by the wiring (src/server/start.ts), backed by
 * the key service's loaded registry.
 *
 * Audit actors: a tenant admin acts as `admin:<tenant>/<accessKey>`, a tenant's S3 user as
 * `user:<tenant>/<accessKey>` (access keys and tenant names never contain '/').
 */
import type { User } from './users.ts';

export interface TenantConfig {
  name: string;
  /** CMK id new datasets of the tenant's buckets are rooted in (default: the gateway's default CMK). */
  cmk?: string;
  /** Buckets the tenant owns from the start. */
  buckets?: string[];
  /** Admin API credentials scoped to this tenant. */
  admins?: { accessKey: string; secretKey: string }[];
}

export interface Tenant {
  name: string;
  cmk: string;
  buckets: string[];
}

/** What an admin caller may reach: everything (root), or one tenant. */
export type AdminScope = { kind: 'root' } | { kind: 'tenant'; tenant: string };

export const ROOT_SCOPE: AdminScope = { kind: 'root' };

/** `admin:<accessKey>` for root-level admins, `admin:<tenant>/<accessKey>` for a tenant admin. */
export function adminActor(user: Pick<User, 'accessKey' | 'tenant'>): string {
  return user.tenant ? `admin:${user.tenant}/${user.accessKey}` : `admin:${user.accessKey}`;
}

/** `user:<tenant>/<accessKey>` for a tenant's S3 user, `user:<accessKey>` otherwise. */
export function userActor(user: Pick<User, 'accessKey' | 'tenant'>): string {
  return user.tenant ? `user:${user.tenant}/${user.accessKey}` : `user:${user.accessKey}`;
}

/** The tenant an audit actor string names (null: none). */
export function tenantOfActor(actor: string): string | null {
  const m = /^(?:admin|user):([^/]+)\//.exec(actor);
  return m ? m[1] : null;
}

export class Tenants {
  private readonly byName = new Map<string, Tenant>();
  private readonly configuredOwner = new Map<string, string>();
  private readonly admins: User[] = [];
  /** Owner of a bucket created at run time (the registry's record); set by the wiring. */
  private createdOwner: (bucket: string) => string | undefined = () => undefined;

  constructor(list: TenantConfig[] = [], defaultCmk = 'default') {
    for (const t of list) {
      const tenant: Tenant = { name: t.name, cmk: t.cmk ?? defaultCmk, buckets: [...(t.buckets ?? [])] };
      this.byName.set(t.name, tenant);
      for (const b of tenant.buckets) this.configuredOwner.set(b, t.name);
      // A tenant admin reaches the admin API only: no bucket over S3 (give the tenant an S3 user for its data).
      for (const a of t.admins ?? []) this.admins.push({ accessKey: a.accessKey, secretKey: a.secretKey, buckets: [], admin: true, tenant: t.name });
    }
  }

  /** Where run-time ownership is read (the key service's registry, as loaded on this gateway). */
  setCreatedOwnerLookup(fn: (bucket: string) => string | undefined): void {
    this.createdOwner = fn;
  }

  get size(): number {
    return this.byName.size;
  }

  get(name: string): Tenant | undefined {
    return this.byName.get(name);
  }

  list(): Tenant[] {
    return [...this.byName.values()].map((t) => ({ ...t, buckets: [...t.buckets] }));
  }

  /** The configuration's {name, cmk, buckets} (for the key service's routing of new datasets). */
  configs(): { name: string; cmk: string; buckets: string[] }[] {
    return this.list();
  }

  /** The admin users of every tenant (admin: true, tenant set, no bucket). */
  adminUsers(): User[] {
    return this.admins.map((u) => ({ ...u, buckets: [] }));
  }

  /** The tenant owning a bucket: configured first, then created at run time; undefined: no tenant. */
  ownerOf(bucket: string): string | undefined {
    return this.configuredOwner.get(bucket) ?? this.createdOwner(bucket);
  }

  /** Whether the configuration lists the bucket under a tenant. */
  isConfiguredBucket(bucket: string): boolean {
    return this.configuredOwner.has(bucket);
  }

  /** The tenant a dataset ("bucket" or "bucket/prefix") belongs to: its bucket's. */
  ownerOfDataset(dataset: string): string | undefined {
    const i = dataset.indexOf('/');
    return this.ownerOf(i < 0 ? dataset : dataset.slice(0, i));
  }

  /** Whether the scope reaches a bucket. */
  bucketInScope(scope: AdminScope, bucket: string): boolean {
    return scope.kind === 'root' || this.ownerOf(bucket) === scope.tenant;
  }

  datasetInScope(scope: AdminScope, dataset: string): boolean {
    return scope.kind === 'root' || this.ownerOfDataset(dataset) === scope.tenant;
  }

  /**
   * Whether a tenant admin may administer a CMK (rotate, disable, enable, destroy): only its tenant's own CMK,
   * and only when nothing else depends on it — not the default CMK (it also wraps the audit key and every
   * dataset outside a tenant), not a CMK another tenant names.
   */
  cmkInScope(scope: AdminScope, cmkId: string, defaultCmk: string): boolean {
    if (scope.kind === 'root') return true;
    const t = this.byName.get(scope.tenant);
    if (!t || t.cmk !== cmkId || cmkId === defaultCmk) return false;
    return [...this.byName.values()].every((o) => o.name === t.name || o.cmk !== cmkId);
  }

  /** Whether a tenant admin may root a dataset in this CMK (create with an explicit cmk): its tenant's CMK only. */
  cmkUsableBy(scope: AdminScope, cmkId: string): boolean {
    return scope.kind === 'root' || this.byName.get(scope.tenant)?.cmk === cmkId;
  }
}

/**
 * What every admin route module gets: the gateway's services, the jobs, and the request helpers that read what
 * the authentication middleware (server.ts) left on the context (the actor, the body it read).
 */
import type { Context, MiddlewareHandler } from 'hono';
import { S3Error } from '../../errors.ts';
import type { AuditLog } from '../../keys/audit.ts';
import type { DatasetView, KeyService } from '../../keys/service.ts';
import type { Logger } from '../../ops/logger.ts';
import type { ReadyState } from '../../ops/readiness.ts';
import type { Backend } from '../../backend/types.ts';
import type { Users } from '../../auth/users.ts';
import { ROOT_SCOPE, type AdminScope } from '../../auth/tenants.ts';
import type { ObjectStore } from '../../store/index.ts';
import type { MigrateManager } from '../migrate.ts';
import type { RotationPolicy } from '../policy.ts';
import type { RewrapManager } from '../rewrap.ts';

export type Json = Record<string, unknown>;

/**
 * What the admin port needs of a running gateway, and no more: the admin wing depends on the object layer, the
 * keys and the users, never on the S3 front end (src/server). A RunningGateway fits it.
 */
export interface AdminHost {
  gateway: { backend: Backend; store: ObjectStore; users: Users; metaBucket: string; region: string };
  keys: KeyService;
  audit: AuditLog;
  health: { live(): boolean; ready(): ReadyState };
}

export interface AdminContext {
  gw: AdminHost['gateway'];
  keys: KeyService;
  audit: AuditLog;
  rewrap: RewrapManager;
  migrate: MigrateManager;
  policy: RotationPolicy;
  log?: Logger;
}

/** Context variables the authentication middleware sets for every /admin/* route behind it. */
export interface AdminVars {
  Variables: { actor: string; body: Buffer; scope: AdminScope };
}
export type AdminCtx = Context<AdminVars>;

/** `admin:<access key>` (`admin:<tenant>/<access key>` for a tenant admin) of the authenticated caller: the audit trail's actor. */
export const actor = (c: AdminCtx): string => c.get('actor');

/** What the caller may reach: root (every tenant and whole-lake operations) or one tenant. */
export const scopeOf = (c: AdminCtx): AdminScope => c.get('scope') ?? ROOT_SCOPE;

/**
 * A call outside the caller's scope: 403 AccessDenied, recorded in the audit trail as `admin.refused` with the
 * caller as actor (api/access.ts records it after the route threw).
 */
export class OutOfScope extends S3Error {
  constructor(readonly what: string) {
    super('AccessDenied', `outside this administrator's tenant: ${what}`);
  }
}

/** The tenant admin's tenant, or null for root. */
export const tenantOfScope = (c: AdminCtx): string | null => {
  const s = scopeOf(c);
  return s.kind === 'tenant' ? s.tenant : null;
};

/** Refuse a dataset ("bucket" or "bucket/prefix") outside the caller's tenant. */
export function requireDataset(c: AdminCtx, ctx: AdminContext, dataset: string): void {
  if (!ctx.gw.users.tenants.datasetInScope(scopeOf(c), dataset)) throw new OutOfScope(`dataset ${dataset}`);
}

/** Refuse a bucket outside the caller's tenant. */
export function requireBucket(c: AdminCtx, ctx: AdminContext, bucket: string): void {
  if (!ctx.gw.users.tenants.bucketInScope(scopeOf(c), bucket)) throw new OutOfScope(`bucket ${bucket}`);
}

/** Refuse a whole-lake operation (backup, restore, gc, the audit chain) to a tenant admin. */
export function requireRoot(c: AdminCtx, what: string): void {
  if (scopeOf(c).kind !== 'root') throw new OutOfScope(`${what} is for the root administrator`);
}

/** Refuse rooting a new dataset in a CMK that is not the tenant's. */
export function requireCmkUse(c: AdminCtx, ctx: AdminContext, cmk: unknown): void {
  if (typeof cmk === 'string' && !ctx.gw.users.tenants.cmkUsableBy(scopeOf(c), cmk)) throw new OutOfScope(`CMK ${cmk}`);
}

/** Refuse administering a CMK (rotate, disable, enable, destroy) that is not the tenant's own (tenants.ts). */
export function requireCmkAdmin(c: AdminCtx, ctx: AdminContext, cmk: string): void {
  if (!ctx.gw.users.tenants.cmkInScope(scopeOf(c), cmk, ctx.keys.defaultCmk)) throw new OutOfScope(`CMK ${cmk}`);
}

/**
 * Middleware for the routes under `/:<param>` (a dataset name): a tenant admin reaches its tenant's datasets only
 * (403, audited, for any other), and `…/create {cmk}` may root a dataset in its tenant's CMK only.
 */
export function datasetGuard(ctx: AdminContext, param: string): MiddlewareHandler<AdminVars> {
  return async (c, next) => {
    requireDataset(c, ctx, c.req.param(param) ?? '');
    if (c.req.method === 'POST' && c.req.param('op') === 'create') requireCmkUse(c, ctx, jsonBody(c).cmk);
    await next();
  };
}

/** A tenant admin's default CMK (its tenant's), or the gateway's default. */
export function defaultCmkOf(c: AdminCtx, ctx: AdminContext): string {
  const t = tenantOfScope(c);
  return (t !== null ? ctx.gw.users.tenants.get(t)?.cmk : undefined) ?? ctx.keys.defaultCmk;
}

/** The request body as a JSON object ({} when empty); anything else is a 400. */
export function jsonBody(c: AdminCtx): Json {
  const b = c.get('body');
  if (!b.length) return {};
  try {
    const v = JSON.parse(b.toString('utf8')) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Json;
  } catch {
    throw new S3Error('InvalidArgument', 'expected a JSON object body');
  }
}

export function optInt(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new S3Error('InvalidArgument', `${name} must be a non-negative integer`);
  return n;
}

export function reqStr(v: unknown, name: string): string {
  if (typeof v !== 'string' || !v) throw new S3Error('InvalidArgument', `${name} is required`);
  return v;
}

/** The dataset's view, or 404 NoSuchKey naming it. */
export async function datasetOf(keys: KeyService, name: string): Promise<DatasetView> {
  const v = await keys.show(name);
  if (!v) throw new S3Error('NoSuchKey', `unknown dataset ${name}`);
  return v;
}

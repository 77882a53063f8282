/**
 * What every admin route module gets: the gateway's services, the jobs, and the request helpers that read what
 * the authentication middleware (server.ts) left on the context (the actor, the body it read).
 */
import type { Context } from 'hono';
import { S3Error } from '../../errors.ts';
import type { AuditLog } from '../../keys/audit.ts';
import type { DatasetView, KeyService } from '../../keys/service.ts';
import type { Logger } from '../../ops/logger.ts';
import type { Backend } from '../../backend/types.ts';
import type { Users } from '../../auth/users.ts';
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
  health: { live(): boolean; ready(): Promise<string | null> };
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
  Variables: { actor: string; body: Buffer };
}
export type AdminCtx = Context<AdminVars>;

/** `admin:<access key>` of the authenticated caller: the audit trail's actor. */
export const actor = (c: AdminCtx): string => c.get('actor');

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

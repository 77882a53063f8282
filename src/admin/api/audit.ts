/**
 * The audit trail: GET /admin/audit?limit=N (the newest N entries), GET /admin/audit/verify (the whole chain).
 *
 * A tenant admin sees its tenant's entries only (tenantEntry below) and cannot verify the chain (that reads every
 * tenant's entries): 403, audited.
 */
import { Hono } from 'hono';
import { tenantOfActor, type Tenants } from '../../auth/tenants.ts';
import { auditKeyName, AUDIT_PREFIX, type AuditEntry } from '../../keys/audit.ts';
import { listPages } from '../util.ts';
import { optInt, requireRoot, scopeOf, type AdminContext, type AdminVars } from './context.ts';

/** Entries a tenant admin's view reads per step backwards from the head. */
const TENANT_PAGE = 200;

/**
 * Whether an entry is the tenant's: its actor is one of the tenant's admins or users (`admin:<tenant>/…`,
 * `user:<tenant>/…`), or its details name a dataset or bucket the tenant owns, or the tenant's own CMK (only
 * when no one else uses it: the default CMK and a shared one are never named as the tenant's).
 */
export function tenantEntry(e: AuditEntry, tenant: string, tenants: Tenants, defaultCmk: string): boolean {
  if (tenantOfActor(e.actor) === tenant) return true;
  const d = e.details ?? {};
  if (typeof d.dataset === 'string' && tenants.ownerOfDataset(d.dataset) === tenant) return true;
  if (typeof d.bucket === 'string' && tenants.ownerOf(d.bucket) === tenant) return true;
  const scope = { kind: 'tenant' as const, tenant };
  if (typeof d.cmkId === 'string' && tenants.cmkInScope(scope, d.cmkId, defaultCmk)) return true;
  return false;
}

export function auditApi(ctx: AdminContext): Hono<AdminVars> {
  const app = new Hono<AdminVars>();
  app.get('/', async (c) => {
    const limit = optInt(c.req.query('limit'), 'limit') ?? 50;
    let last = 0;
    for await (const page of listPages(ctx.gw.backend, ctx.gw.metaBucket, AUDIT_PREFIX)) {
      const k = page[page.length - 1]?.key;
      if (k) last = Math.max(last, Number(k.slice(AUDIT_PREFIX.length, AUDIT_PREFIX.length + 12)) || 0);
    }
    const scope = scopeOf(c);
    if (scope.kind === 'tenant') {
      // the newest `limit` entries of the tenant: read backwards from the head a page at a time
      const tenants = ctx.gw.users.tenants;
      const found: AuditEntry[] = [];
      let hi = last;
      while (hi >= 1 && found.length < limit) {
        const lo = Math.max(1, hi - TENANT_PAGE + 1);
        const page = (await ctx.audit.list({ since: lo, limit: hi - lo + 1 })).filter((e) => tenantEntry(e, scope.tenant, tenants, ctx.keys.defaultCmk));
        found.unshift(...page);
        hi = lo - 1;
      }
      const entries = found.slice(Math.max(0, found.length - limit));
      return c.json({ entries, head: last, first: entries[0]?.seq ?? null, key: auditKeyName(last), tenant: scope.tenant });
    }
    const since = Math.max(1, last - limit + 1);
    return c.json({ entries: await ctx.audit.list({ since, limit }), head: last, first: since, key: auditKeyName(last) });
  });
  app.get('/verify', async (c) => {
    requireRoot(c, 'audit verify (the whole chain)');
    return c.json(await ctx.audit.verify());
  });
  return app;
}

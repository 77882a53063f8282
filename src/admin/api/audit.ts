/** The audit trail: GET /admin/audit?limit=N (the newest N entries), GET /admin/audit/verify (the whole chain). */
import { Hono } from 'hono';
import { auditKeyName, AUDIT_PREFIX } from '../../keys/audit.ts';
import { listPages } from '../util.ts';
import { optInt, type AdminContext, type AdminVars } from './context.ts';

export function auditApi(ctx: AdminContext): Hono<AdminVars> {
  const app = new Hono<AdminVars>();
  app.get('/', async (c) => {
    const limit = optInt(c.req.query('limit'), 'limit') ?? 50;
    let last = 0;
    for await (const page of listPages(ctx.gw.backend, ctx.gw.metaBucket, AUDIT_PREFIX)) {
      const k = page[page.length - 1]?.key;
      if (k) last = Math.max(last, Number(k.slice(AUDIT_PREFIX.length, AUDIT_PREFIX.length + 12)) || 0);
    }
    const since = Math.max(1, last - limit + 1);
    return c.json({ entries: await ctx.audit.list({ since, limit }), head: last, first: since, key: auditKeyName(last) });
  });
  app.get('/verify', async (c) => c.json(await ctx.audit.verify()));
  return app;
}

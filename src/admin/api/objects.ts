/** DEK level: /admin/objects/revoke (one block or the whole object), /admin/objects/rekey (fresh DEKs). */
import { Hono } from 'hono';
import { rekeyObject, revokeObject } from '../objects.ts';
import { actor, jsonBody, optInt, reqStr, type AdminContext, type AdminVars } from './context.ts';

export function objectsApi(ctx: AdminContext): Hono<AdminVars> {
  const app = new Hono<AdminVars>();
  app.post('/revoke', async (c) => {
    const b = jsonBody(c);
    return c.json(await revokeObject(ctx.gw.store, ctx.keys, reqStr(b.bucket, 'bucket'), reqStr(b.key, 'key'), optInt(b.block, 'block'), actor(c)));
  });
  app.post('/rekey', async (c) => {
    const b = jsonBody(c);
    const r = await rekeyObject(ctx.gw.store, reqStr(b.bucket, 'bucket'), reqStr(b.key, 'key'));
    await ctx.audit.append('object.rekey', { ...r }, actor(c));
    return c.json(r);
  });
  return app;
}

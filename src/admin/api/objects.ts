/** DEK level: /admin/objects/revoke (one block or the whole object), /admin/objects/rekey (fresh DEKs). */
import { Hono } from 'hono';
import { rekeyObject, revokeObject } from '../objects.ts';
import { actor, jsonBody, optInt, reqStr, requireBucket, type AdminContext, type AdminVars } from './context.ts';

export function objectsApi(ctx: AdminContext): Hono<AdminVars> {
  const app = new Hono<AdminVars>();
  app.post('/revoke', async (c) => {
    const b = jsonBody(c);
    requireBucket(c, ctx, reqStr(b.bucket, 'bucket'));
    const versionId = b.versionId === undefined ? undefined : reqStr(b.versionId, 'versionId');
    const r = await revokeObject(ctx.gw.store, ctx.keys, reqStr(b.bucket, 'bucket'), reqStr(b.key, 'key'), optInt(b.block, 'block'), actor(c), versionId);
    // block.revoke (the keystore's list) names the dataset and object id; this entry names the bucket and key
    await ctx.audit.append('object.revoke', { ...r }, actor(c));
    return c.json(r);
  });
  app.post('/rekey', async (c) => {
    const b = jsonBody(c);
    requireBucket(c, ctx, reqStr(b.bucket, 'bucket'));
    const r = await rekeyObject(ctx.gw.store, reqStr(b.bucket, 'bucket'), reqStr(b.key, 'key'));
    await ctx.audit.append('object.rekey', { ...r }, actor(c));
    return c.json(r);
  });
  return app;
}

/**
 * Tokens of the KMS endpoint (src/kms/): POST /admin/kms/tokens {user, ttl?} issues one for an S3 user (the token
 * is in this answer only; the meta bucket keeps its SHA-256), GET /admin/kms/tokens lists them, POST
 * /admin/kms/tokens/revoke {token | accessor} ends one on every gateway within the revocation bound.
 *
 * A tenant admin issues, lists and revokes tokens of its tenant's users only (403, audited, for any other).
 */
import { Hono } from 'hono';
import { S3Error } from '../../errors.ts';
import { KmsTokens, parseTtl, viewOf } from '../../kms/tokens.ts';
import { actor, jsonBody, OutOfScope, reqStr, tenantOfScope, type AdminContext, type AdminCtx, type AdminVars } from './context.ts';

export function kmsApi(ctx: AdminContext): Hono<AdminVars> {
  const tokens = new KmsTokens({ backend: ctx.gw.backend, metaBucket: ctx.gw.metaBucket, sealer: ctx.keys });
  const app = new Hono<AdminVars>();
  /** A tenant admin reaches its tenant's users only; a user that does not exist is refused alike (no probing). */
  const requireUser = (c: AdminCtx, accessKey: string) => {
    const t = tenantOfScope(c);
    const u = ctx.gw.users.get(accessKey);
    if (t !== null && u?.tenant !== t) throw new OutOfScope(`user ${accessKey}`);
    return u;
  };

  app.post('/tokens', async (c) => {
    const b = jsonBody(c);
    const name = reqStr(b.user, 'user');
    const user = requireUser(c, name);
    if (!user) throw new S3Error('InvalidArgument', `no such user ${name}`);
    const ttl = parseTtl(b.ttl);
    const { token, record } = await tokens.create(user.accessKey, ttl, actor(c));
    await ctx.audit.append('kms.token.create', { user: user.accessKey, accessor: record.accessor, expiresAt: record.expiresAt, ...(user.tenant ? { tenant: user.tenant } : {}) }, actor(c));
    return c.json({ token, ...viewOf(record) });
  });
  app.get('/tokens', async (c) => {
    const t = tenantOfScope(c);
    const all = await tokens.list();
    return c.json({ tokens: all.filter((r) => t === null || ctx.gw.users.get(r.user)?.tenant === t).map((r) => viewOf(r)) });
  });
  app.post('/tokens/revoke', async (c) => {
    const b = jsonBody(c);
    const which = typeof b.token === 'string' && b.token ? b.token : reqStr(b.accessor, 'token or accessor');
    const found = await tokens.read(/^[0-9a-f]{64}$/.test(which) ? which : KmsTokens.accessorOf(which));
    if (!found) throw new S3Error('NoSuchKey', 'no such token');
    requireUser(c, found.user);
    const rec = await tokens.revoke(found.accessor);
    if (!rec) throw new S3Error('NoSuchKey', 'no such token');
    await ctx.audit.append('kms.token.revoke', { user: rec.user, accessor: rec.accessor }, actor(c));
    return c.json({ revoked: viewOf(rec) });
  });
  return app;
}

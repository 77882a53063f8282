/** KEK lifecycle: /admin/keys (list), /admin/keys/:dataset (show), /admin/keys/:dataset/:op (create … destroy). */
import { Hono } from 'hono';
import { S3Error } from '../../errors.ts';
import { destroyKekVersion } from '../destroy.ts';
import { actor, datasetOf, jsonBody, optInt, type AdminContext, type AdminVars } from './context.ts';

export function keysApi(ctx: AdminContext): Hono<AdminVars> {
  const { keys } = ctx;
  const app = new Hono<AdminVars>();
  app.get('/', async (c) => c.json({ datasets: await keys.list() }));
  app.get('/:dataset', async (c) => c.json(await datasetOf(keys, c.req.param('dataset'))));
  app.post('/:dataset/:op', async (c) => {
    const ds = c.req.param('dataset');
    const b = jsonBody(c);
    const version = optInt(b.version, 'version');
    switch (c.req.param('op')) {
      case 'create': {
        const existed = !!(await keys.show(ds));
        await keys.activeKek(ds);
        return c.json({ created: !existed, ...(await datasetOf(keys, ds)) });
      }
      case 'rotate': {
        await datasetOf(keys, ds);
        const v = await keys.rotate(ds, actor(c));
        const job = b.rewrap === true ? await ctx.rewrap.start(ds, actor(c), { fresh: true }) : undefined;
        return c.json({ dataset: ds, version: v, ...(job ? { rewrap: job } : {}) });
      }
      case 'revoke':
        await datasetOf(keys, ds);
        return c.json({ dataset: ds, revoked: await keys.revoke(ds, version, actor(c)) });
      case 'restore':
        await datasetOf(keys, ds);
        return c.json({ dataset: ds, restored: await keys.restore(ds, version, actor(c)) });
      case 'destroy':
        if (version === undefined) throw new S3Error('InvalidArgument', 'version is required');
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'destroy is irreversible: pass confirm: true');
        return c.json(await destroyKekVersion(ctx, ds, version, { force: b.force === true, actor: actor(c) }));
      default:
        throw new S3Error('InvalidURI', `unknown key operation ${c.req.param('op')}`);
    }
  });
  return app;
}

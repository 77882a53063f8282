/**
 * KEK lifecycle: /admin/keys (list), /admin/keys/:dataset (show; a prefix dataset also says how many objects under
 * it are still sealed under a parent), /admin/keys/:dataset/:op (create … destroy (scheduled), cancel-destroy;
 * revoke warns about those).
 */
import { Hono } from 'hono';
import { S3Error } from '../../errors.ts';
import { countParents, uncoveredWarning } from '../adopt.ts';
import { scheduleKekDestroy } from '../destroy.ts';
import { actor, datasetOf, jsonBody, optInt, type AdminContext, type AdminVars } from './context.ts';
import { datasetGuard, scopeOf } from './context.ts';

export function keysApi(ctx: AdminContext): Hono<AdminVars> {
  const { keys } = ctx;
  const counting = { backend: ctx.gw.backend, store: ctx.gw.store, keys, metaBucket: ctx.gw.metaBucket };
  const app = new Hono<AdminVars>();
  // a tenant admin: its tenant's datasets only (403, audited, for any other); create roots them in its CMK only
  app.use('/:dataset', datasetGuard(ctx, 'dataset'));
  app.use('/:dataset/:op', datasetGuard(ctx, 'dataset'));
  app.get('/', async (c) => c.json({ datasets: (await keys.list()).filter((d) => ctx.gw.users.tenants.datasetInScope(scopeOf(c), d.dataset)) }));
  app.get('/:dataset', async (c) => {
    const ds = c.req.param('dataset');
    const view = await datasetOf(keys, ds);
    if (!ds.includes('/') || c.req.query('scan') === '0') return c.json(view);
    // a prefix dataset: how many objects under it are still sealed under a parent (not covered by its keys)
    const p = await countParents(counting, ds);
    return c.json({ ...view, underParents: { pending: p.pending, byParent: p.byParent } });
  });
  app.post('/:dataset/:op', async (c) => {
    const ds = c.req.param('dataset');
    const b = jsonBody(c);
    const version = optInt(b.version, 'version');
    switch (c.req.param('op')) {
      case 'create': {
        // the same as `datasets create`: a validated name, registered so that it routes on every gateway
        const r = await keys.createDataset(ds, { cmk: typeof b.cmk === 'string' ? b.cmk : undefined, actor: actor(c) });
        return c.json({ created: r.recordCreated, registered: true, ...(await datasetOf(keys, ds)) });
      }
      case 'rotate': {
        await datasetOf(keys, ds);
        const v = await keys.rotate(ds, actor(c));
        const job = b.rewrap === true ? await ctx.rewrap.start(ds, actor(c), { fresh: true }) : undefined;
        return c.json({ dataset: ds, version: v, ...(job ? { rewrap: job } : {}) });
      }
      case 'revoke': {
        await datasetOf(keys, ds);
        const revoked = await keys.revoke(ds, version, actor(c));
        // objects under a prefix dataset still sealed under a parent are not covered by this revocation
        const warning = ds.includes('/') ? uncoveredWarning(await countParents(counting, ds)) : undefined;
        return c.json({ dataset: ds, revoked, ...(warning ? { warning } : {}) });
      }
      case 'restore':
        await datasetOf(keys, ds);
        return c.json({ dataset: ds, restored: await keys.restore(ds, version, actor(c)) });
      case 'destroy': {
        // schedules: pending-destruction for the waiting period (reads refused, cancellable), destroyed when due
        if (version === undefined) throw new S3Error('InvalidArgument', 'version is required');
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'destroy is irreversible once due: pass confirm: true');
        const waitSeconds = optInt(b.waitSeconds, 'waitSeconds');
        const minWaitSeconds = ctx.policy.deletion.waitSeconds;
        return c.json(await scheduleKekDestroy(ctx, ds, version, { force: b.force === true, actor: actor(c), waitSeconds, minWaitSeconds }));
      }
      case 'cancel-destroy':
        if (version === undefined) throw new S3Error('InvalidArgument', 'version is required');
        await datasetOf(keys, ds);
        return c.json({ dataset: ds, ...(await keys.kekDestruction.cancelDestroy(ds, version, actor(c))) });
      default:
        throw new S3Error('InvalidURI', `unknown key operation ${c.req.param('op')}`);
    }
  });
  return app;
}

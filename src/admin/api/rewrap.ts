/** Re-wrap jobs: POST /admin/rewrap/:dataset starts (or resumes) one; GET reports it, with a header scan unless ?scan=0. */
import { Hono } from 'hono';
import { actor, datasetGuard, datasetOf, jsonBody, type AdminContext, type AdminVars } from './context.ts';

export function rewrapApi(ctx: AdminContext): Hono<AdminVars> {
  const { rewrap } = ctx;
  const app = new Hono<AdminVars>();
  app.use('/:dataset', datasetGuard(ctx, 'dataset'));
  app.post('/:dataset', async (c) => {
    const b = jsonBody(c);
    return c.json(await rewrap.start(c.req.param('dataset'), actor(c), { fresh: b.fresh === true, rekey: b.rekey === true }));
  });
  app.get('/:dataset', async (c) => {
    const ds = c.req.param('dataset');
    await datasetOf(ctx.keys, ds);
    const job = await rewrap.status(ds);
    const running = rewrap.isRunning(ds);
    if (c.req.query('scan') === '0') return c.json({ dataset: ds, running, job, pending: job?.pending ?? null });
    const scan = await rewrap.scan(ds);
    return c.json({ dataset: ds, running, activeVersion: scan.activeVersion, total: scan.total, pending: scan.pending, byVersion: scan.byVersion, job });
  });
  return app;
}

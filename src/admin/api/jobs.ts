/** Whole-lake jobs: keystore backup/restore, migration of plaintext buckets, gc. */
import { Hono } from 'hono';
import { S3Error } from '../../errors.ts';
import { runGc } from '../gc.ts';
import { actor, jsonBody, optInt, requireBucket, requireRoot, type AdminContext, type AdminVars } from './context.ts';

export function jobsApi(ctx: AdminContext): Hono<AdminVars> {
  const { gw, keys, migrate } = ctx;
  const app = new Hono<AdminVars>();

  app.get('/backup', async (c) => {
    requireRoot(c, 'backup');
    const buf = await keys.exportKeystore(actor(c));
    return c.body(buf.toString('utf8'), 200, { 'Content-Type': 'application/json' });
  });
  app.post('/restore', async (c) => {
    requireRoot(c, 'restore');
    // ?force=true restores even when the backup's keys are wrapped under CMK versions that cannot unwrap now
    return c.json(await keys.importKeystore(c.get('body'), actor(c), { force: c.req.query('force') === 'true' }));
  });

  app.post('/migrate/:bucket', async (c) => {
    const bucket = c.req.param('bucket');
    requireBucket(c, ctx, bucket);
    const b = jsonBody(c);
    if (b.stop === true) return c.json(await migrate.stop(bucket));
    const rate = b.rate === undefined ? undefined : Number(b.rate);
    if (rate !== undefined && !(rate >= 0)) throw new S3Error('InvalidArgument', 'rate must be >= 0');
    return c.json(await migrate.start(bucket, actor(c), { rate, fresh: b.fresh === true }));
  });
  app.get('/migrate/:bucket', async (c) => {
    const bucket = c.req.param('bucket');
    requireBucket(c, ctx, bucket);
    const s = await migrate.status(bucket);
    if (!s) throw new S3Error('NoSuchKey', `no migration for bucket ${bucket}`);
    return c.json(s);
  });

  app.post('/gc', async (c) => {
    requireRoot(c, 'gc');
    const b = jsonBody(c);
    const apply = b.apply === true;
    const olderThanMs = optInt(b.olderThanMs, 'olderThanMs');
    const r = await runGc({ backend: gw.backend, store: gw.store, keys, metaBucket: gw.metaBucket }, { apply, ...(olderThanMs !== undefined ? { olderThanMs } : {}) });
    if (apply) await ctx.audit.append('gc.apply', { removed: r.removed }, actor(c));
    return c.json({ apply, ...r });
  });
  return app;
}

/** CMK administration: GET /admin/cmk, POST /admin/cmk/:op (rotate, enable, disable, destroy (scheduled), cancel-destroy) {cmk?, version}. */
import { Hono } from 'hono';
import { S3Error } from '../../errors.ts';
import { actor, jsonBody, optInt, type AdminContext, type AdminVars } from './context.ts';
import { defaultCmkOf, requireCmkAdmin, scopeOf } from './context.ts';

export function cmkApi(ctx: AdminContext): Hono<AdminVars> {
  const { keys } = ctx;
  const app = new Hono<AdminVars>();
  // a tenant admin sees and administers its tenant's own CMK only (tenants.ts cmkInScope)
  app.get('/', async (c) => c.json({ cmks: (await keys.cmkStatus()).filter((s) => ctx.gw.users.tenants.cmkInScope(scopeOf(c), s.id, keys.defaultCmk)) }));
  app.post('/:op', async (c) => {
    const op = c.req.param('op');
    const b = jsonBody(c);
    const cmk = typeof b.cmk === 'string' && b.cmk ? b.cmk : defaultCmkOf(c, ctx);
    requireCmkAdmin(c, ctx, cmk);
    keys.cmk(cmk); // unknown CMK: its error before anything else
    if (op === 'rotate') return c.json(await keys.cmkRotate(cmk, actor(c)));
    const version = optInt(b.version, 'version');
    if (version === undefined) throw new S3Error('InvalidArgument', 'version is required');
    switch (op) {
      case 'enable':
        await keys.cmkEnable(cmk, version, actor(c));
        break;
      case 'disable':
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'disabling a CMK version makes its data unreadable: pass confirm: true');
        await keys.cmkDisable(cmk, version, actor(c));
        break;
      case 'destroy': {
        // schedules (local/pkcs11/transit: disabled now, destroyed when keyDeletionWaitSeconds is over; awskms: the KMS's own window)
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'destroy is irreversible once due: pass confirm: true');
        const wait = optInt(b.waitSeconds, 'waitSeconds') ?? ctx.policy.deletion.waitSeconds;
        if (wait < ctx.policy.deletion.waitSeconds) throw new S3Error('InvalidArgument', `waitSeconds must be at least ${ctx.policy.deletion.waitSeconds} (keyDeletionWaitSeconds)`);
        const sched = await keys.cmkDestruction.cmkScheduleDestroy(cmk, version, { destroyAt: new Date(Date.now() + wait * 1000), actor: actor(c) });
        return c.json({ cmk, op, ...sched, versions: (await keys.cmkStatus()).find((x) => x.id === cmk)?.versions ?? [] });
      }
      case 'cancel-destroy':
        await keys.cmkDestruction.cmkCancelDestroy(cmk, version, actor(c));
        break;
      default:
        throw new S3Error('InvalidURI', `unknown CMK operation ${op}`);
    }
    return c.json({ cmk, version, op, versions: await keys.cmk(cmk).versions() });
  });
  return app;
}

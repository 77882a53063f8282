/**
 * Datasets as run-time objects: /admin/datasets (list), /admin/datasets/:name (show), POST …/create {cmk?},
 * POST …/delete {confirm: true}, POST …/adopt {fresh?, stop?, rate?} and GET …/adopt (progress). Names with '/'
 * come URL-encoded as one segment (`lake%2Ffinance`), as in the keys API. Every change is audited with the caller.
 */
import { Hono } from 'hono';
import { S3Error } from '../../errors.ts';
import type { DatasetEntry } from '../../keys/service.ts';
import { AdoptManager, countParents, type ParentCount } from '../adopt.ts';
import { actor, datasetGuard, jsonBody, scopeOf, type AdminContext, type AdminVars, type Json } from './context.ts';

/** How long a delete waits after unregistering before its second scan: every gateway's epoch poll has seen it. */
export const ROUTING_SETTLE_MS = 1500;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function datasetsApi(ctx: AdminContext, closers?: (() => Promise<void>)[]): Hono<AdminVars> {
  const { keys, gw } = ctx;
  const adopt = new AdoptManager({ backend: gw.backend, store: gw.store, keys, audit: ctx.audit, metaBucket: gw.metaBucket, log: ctx.log });
  closers?.push(() => adopt.close());
  const counting = { backend: gw.backend, store: gw.store, keys, metaBucket: gw.metaBucket };
  const app = new Hono<AdminVars>();

  const entryOf = async (name: string): Promise<DatasetEntry | undefined> => {
    await keys.refreshDatasets();
    return keys.routedDatasets().find((d) => d.name === name);
  };

  /** One dataset: routing entry, key summary, objects still under a parent (fresh count unless scan=0), adopt job. */
  const show = async (name: string, scan: boolean): Promise<Json> => {
    const entry = await entryOf(name);
    const record = await keys.show(name);
    if (!entry && !record) throw new S3Error('NoSuchKey', `unknown dataset ${name}`);
    const job = await adopt.status(name);
    let parents: ParentCount | null = null;
    if (scan && name.includes('/')) parents = await countParents(counting, name);
    return {
      dataset: name,
      datasetId: keys.datasetId(name),
      bucket: entry?.bucket ?? name.split('/')[0],
      prefix: entry?.prefix ?? (name.includes('/') ? name.slice(name.indexOf('/') + 1) : ''),
      routed: !!entry,
      registered: entry?.registered ?? false,
      configured: entry?.configured ?? false,
      cmkId: record?.cmkId ?? entry?.cmk ?? null,
      activeVersion: record?.versions.find((v) => v.state === 'active')?.version ?? null,
      versions: record?.versions.map((v) => ({ version: v.version, state: v.state })) ?? [],
      // objects under the prefix still sealed under an ancestor (null: not counted, scan=0, or a whole bucket)
      objects: parents?.objects ?? null,
      pending: parents ? parents.pending : (job?.pending ?? null),
      pendingByParent: parents ? parents.byParent : (job?.pendingByParent ?? null),
      ...(parents?.foreign ? { foreign: parents.foreign } : {}),
      adopt: job,
    };
  };

  // a tenant admin: its tenant's datasets only (403, audited, for any other)
  app.use('/:name', datasetGuard(ctx, 'name'));
  app.use('/:name/:op', datasetGuard(ctx, 'name'));
  app.get('/', async (c) => {
    await keys.refreshDatasets();
    const summaries = new Map((await keys.list()).map((s) => [s.dataset, s]));
    const scope = scopeOf(c);
    return c.json({
      datasets: keys.routedDatasets().filter((d) => gw.users.tenants.datasetInScope(scope, d.name)).map((d) => ({
        dataset: d.name,
        bucket: d.bucket,
        prefix: d.prefix,
        registered: d.registered,
        configured: d.configured,
        cmkId: summaries.get(d.name)?.cmkId ?? d.cmk,
        activeVersion: summaries.get(d.name)?.activeVersion ?? null,
        hasKeys: summaries.has(d.name),
      })),
    });
  });

  app.get('/:name', async (c) => c.json(await show(c.req.param('name'), c.req.query('scan') !== '0')));

  app.get('/:name/adopt', async (c) => {
    const name = c.req.param('name');
    if (!(await entryOf(name))) throw new S3Error('NoSuchKey', `unknown dataset ${name}`);
    const job = await adopt.status(name);
    const running = adopt.isRunning(name);
    if (c.req.query('scan') === '0') return c.json({ dataset: name, running, job, pending: job?.pending ?? null });
    const p = await countParents(counting, name);
    return c.json({ dataset: name, running, job, pending: p.pending, pendingByParent: p.byParent, objects: p.objects });
  });

  app.post('/:name/:op', async (c) => {
    const name = c.req.param('name');
    const b = jsonBody(c);
    const who = actor(c);
    switch (c.req.param('op')) {
      case 'create': {
        if (b.cmk !== undefined && typeof b.cmk !== 'string') throw new S3Error('InvalidArgument', 'cmk must be a string');
        const r = await keys.createDataset(name, { cmk: b.cmk, actor: who });
        return c.json({ created: r.created, recordCreated: r.recordCreated, ...(await show(name, false)) });
      }
      case 'delete': {
        if (b.confirm !== true) throw new S3Error('InvalidRequest', 'delete removes the dataset and its keys for good: pass confirm: true');
        if (keys.isConfiguredDataset(name)) {
          throw new S3Error('InvalidRequest', `dataset ${name} is listed in this gateway's configuration (datasets): remove it there first, or it is registered again at the next start`);
        }
        const registered = await keys.registeredDataset(name);
        const record = await keys.show(name);
        if (!registered && !record) throw new S3Error('NoSuchKey', `unknown dataset ${name}`);
        if (adopt.isRunning(name)) throw new S3Error('InvalidRequest', `the adopt job of ${name} is running: stop it first`);
        // the proof of `keys destroy`: a fresh scan of every header (objects and open uploads) by dataset id
        const refs = async () => (await ctx.rewrap.scan(name)).total;
        const first = await refs();
        if (first > 0) throw new S3Error('InvalidRequest', `${first} header(s) still reference dataset ${name}: it cannot be deleted while objects are sealed under it`);
        if (registered) {
          // stop routing to it everywhere, then look again: a write routed to it just before may have landed
          await keys.unregisterDataset(name, who);
          await sleep(ROUTING_SETTLE_MS);
          const second = await refs();
          if (second > 0) {
            await keys.reregisterDataset(registered);
            throw new S3Error('InvalidRequest', `${second} header(s) were written under dataset ${name} meanwhile: not deleted`);
          }
        }
        const recordDeleted = await keys.deleteDatasetRecord(name, who);
        return c.json({ dataset: name, deleted: true, unregistered: !!registered, recordDeleted });
      }
      case 'adopt': {
        if (b.stop === true) {
          const s = await adopt.stop(name, who);
          if (!s) throw new S3Error('NoSuchKey', `no adopt job for dataset ${name}`);
          return c.json(s);
        }
        const rate = b.rate === undefined ? undefined : Number(b.rate);
        if (rate !== undefined && !(rate >= 0)) throw new S3Error('InvalidArgument', 'rate must be >= 0');
        return c.json(await adopt.start(name, who, { fresh: b.fresh === true, rate }));
      }
      default:
        throw new S3Error('InvalidURI', `unknown dataset operation ${c.req.param('op')}`);
    }
  });
  return app;
}

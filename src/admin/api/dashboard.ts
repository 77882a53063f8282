/**
 * What the dashboard polls, read-only and cheap: GET /admin/dashboard/state (every dataset's key state with its
 * active version's age and next scheduled rotation, re-wrap and adopt jobs from their state objects, readiness with
 * the CMK check ages, the audit head and newest entries) and GET /admin/dashboard/revoked/:dataset (the dataset's
 * revoked blocks as object and plaintext byte range). No header scan: a tab left open costs a few small reads per
 * poll, whatever the size of the lake (bench/dashboard.ts).
 */
import { Hono } from 'hono';
import { AUDIT_PREFIX, auditKeyName, type AuditEntry } from '../../keys/audit.ts';
import type { ReadyState } from '../../ops/readiness.ts';
import { META_OID, loadHeaderBytes, wipeHeaderKeys } from '../../store/index.ts';
import { adoptStatePath, type AdoptState } from '../adopt.ts';
import { listPages, readState } from '../util.ts';
import { datasetGuard, datasetOf, scopeOf, type AdminContext, type AdminVars } from './context.ts';

const DAY_MS = 86_400_000;
/** How often RotationPolicy looks (its start() default): a due rotation happens at the next look. */
const POLICY_CHECK_MS = 3_600_000;
/** Audit entries read backwards at most to find which object a revoked oid was (once per oid per process). */
const AUDIT_LOOKBACK = 5_000;
const AUDIT_PAGE = 200;
/** Newest audit entries the state carries. */
const AUDIT_RECENT = 10;

export interface DashboardOptions {
  /** The configured datasets (rotateEveryDays drives the rotation policy). */
  datasets: { name: string; rotateEveryDays?: number }[];
  ready(): ReadyState;
}

/** One entry of a dataset's revocation list, resolved as far as the stored state allows. */
export interface RevokedBlockView {
  entry: string;
  oid: string;
  /** null: the whole object. */
  part: number | null;
  block: number | null;
  bucket: string | null;
  key: string | null;
  /** Whether the object at bucket/key still is that oid (an overwrite leaves the entry for replayed old headers). */
  current: boolean;
  size: number | null;
  blockSize: number | null;
  parts: number | null;
  /** Plaintext bytes of the object the entry denies (inclusive). */
  range: { start: number; end: number } | null;
  /** For a multipart object: the same bytes counted from the start of their part. */
  partRange: { start: number; end: number } | null;
  note?: string;
}

type Where = { bucket: string; key: string };

export function dashboardApi(ctx: AdminContext, o: DashboardOptions): Hono<AdminVars> {
  const { keys, gw } = ctx;
  const app = new Hono<AdminVars>();
  const rotateEvery = new Map(o.datasets.filter((d) => d.rotateEveryDays).map((d) => [d.name, d.rotateEveryDays!]));

  // The audit head, found by listing only the keys after the last one seen (a full listing of a long trail on
  // every poll is what /admin/audit does), and the newest entries, read again only when the head moved.
  let audit = { head: 0, entries: [] as AuditEntry[] };
  let auditRead: Promise<void> | undefined;
  const refreshAudit = async () => {
    let head = audit.head;
    for await (const page of listPages(gw.backend, gw.metaBucket, AUDIT_PREFIX, head ? auditKeyName(head) : undefined)) {
      const k = page[page.length - 1]?.key;
      if (k) head = Math.max(head, Number(k.slice(AUDIT_PREFIX.length, AUDIT_PREFIX.length + 12)) || 0);
    }
    if (head === audit.head && audit.entries.length) return;
    const since = Math.max(1, head - AUDIT_RECENT + 1);
    audit = { head, entries: head ? await ctx.audit.list({ since, limit: AUDIT_RECENT }) : [] };
  };

  app.get('/state', async (c) => {
    const scope = scopeOf(c);
    const now = Date.now();
    const all = (await keys.list()).filter((d) => gw.users.tenants.datasetInScope(scope, d.dataset));
    const datasets = await Promise.all(
      all.map(async (d) => {
        const active = d.versions.find((v) => v.state === 'active');
        const every = rotateEvery.get(d.dataset);
        const dueAt = active && every ? Date.parse(active.createdAt) + every * DAY_MS : null;
        // A job state that cannot be read now shows as "no job" on this poll: the dashboard is a view, the next
        // poll (5 s) reads it again, and a failing backend shows in the readiness and backend-error panels anyway.
        const [rewrap, adopt] = await Promise.all([
          ctx.rewrap.status(d.dataset).catch(() => null),
          // a prefix dataset's adopt job: its state object (the running job writes it as it goes)
          d.dataset.includes('/') ? readState<AdoptState>(gw.backend, gw.metaBucket, adoptStatePath(d.dataset)).catch(() => null) : null,
        ]);
        return {
          ...d,
          activeCreatedAt: active?.createdAt ?? null,
          activeAgeSeconds: active ? Math.max(0, Math.round((now - Date.parse(active.createdAt)) / 1000)) : null,
          rotation: every ? { everyDays: every, dueAt: dueAt === null ? null : new Date(dueAt).toISOString(), checkEverySeconds: POLICY_CHECK_MS / 1000 } : null,
          rewrap: rewrap ? { ...rewrap, running: ctx.rewrap.isRunning(d.dataset) || rewrap.state === 'running' } : null,
          adopt,
        };
      }),
    );
    // the trail is the whole lake's: a tenant admin reads its own part through /admin/audit
    if (scope.kind === 'root') {
      auditRead ??= refreshAudit().finally(() => (auditRead = undefined));
      await auditRead.catch((e: Error) => ctx.log?.warn({ err: e }, 'dashboard: reading the audit head failed'));
    }
    return c.json({
      now: new Date(now).toISOString(),
      datasets,
      ready: o.ready(),
      deletionWaitSeconds: ctx.policy.deletion.waitSeconds,
      audit: scope.kind === 'root' ? { head: audit.head, entries: audit.entries } : null,
    });
  });

  // Which object an oid was: from the audit trail's block.revoke entry (the list itself is by oid), newest first.
  const whereOf = new Map<string, Where>();
  const resolve = async (oids: Set<string>) => {
    const missing = new Set([...oids].filter((x) => !whereOf.has(x)));
    if (!missing.size) return;
    // an oid not seen yet was most likely revoked since the head was last read (the state poll reads it too, but
    // not necessarily first): read it now, one listing from the known head on
    auditRead ??= refreshAudit().finally(() => (auditRead = undefined));
    await auditRead;
    let hi = audit.head;
    const floor = Math.max(1, hi - AUDIT_LOOKBACK + 1);
    while (missing.size && hi >= floor) {
      const lo = Math.max(floor, hi - AUDIT_PAGE + 1);
      for (const e of await ctx.audit.list({ since: lo, limit: hi - lo + 1 })) {
        const d = e.details ?? {};
        if (e.event === 'block.revoke' && typeof d.oid === 'string' && typeof d.bucket === 'string' && typeof d.key === 'string' && !whereOf.has(d.oid)) {
          whereOf.set(d.oid, { bucket: d.bucket, key: d.key });
          missing.delete(d.oid);
        }
      }
      hi = lo - 1;
    }
  };

  /** Size, block size and part sizes of the object now at `w`, when it still is `oid` and its header opens. */
  const layoutOf = async (w: Where, oid: string) => {
    const info = await gw.backend.headObject(w.bucket, w.key);
    if (!info || info.meta[META_OID] !== oid) return { current: false as const };
    try {
      const { data } = await loadHeaderBytes(gw.store, w.bucket, w.key, oid, { info });
      const f = await gw.store.door.open(data, { bucket: w.bucket, key: w.key, oidHex: oid });
      const parts = f.parts.map((p, i) => ({ partNumber: p.partNumber ?? i + 1, size: p.plaintextSize }));
      wipeHeaderKeys(f);
      return { current: true as const, blockSize: f.blockSize, parts };
    } catch (e) {
      return { current: true as const, error: (e as Error).message };
    }
  };

  app.use('/revoked/:dataset', datasetGuard(ctx, 'dataset'));
  app.get('/revoked/:dataset', async (c) => {
    const ds = c.req.param('dataset');
    const view = await datasetOf(keys, ds);
    const entries = view.revokedBlocks.map((entry) => {
      const [oid, part, block] = entry.split(':');
      return { entry, oid, part: part === '*' || part === undefined ? null : Number(part), block: block === undefined ? null : Number(block) };
    });
    await resolve(new Set(entries.map((e) => e.oid)));
    const layouts = new Map<string, Awaited<ReturnType<typeof layoutOf>>>();
    const out: RevokedBlockView[] = [];
    for (const e of entries) {
      const w = whereOf.get(e.oid);
      const v: RevokedBlockView = { ...e, bucket: w?.bucket ?? null, key: w?.key ?? null, current: false, size: null, blockSize: null, parts: null, range: null, partRange: null };
      if (!w) {
        out.push({ ...v, note: `no block.revoke entry names this object in the newest ${AUDIT_LOOKBACK} audit entries` });
        continue;
      }
      if (!layouts.has(e.oid)) layouts.set(e.oid, await layoutOf(w, e.oid));
      const l = layouts.get(e.oid)!;
      if (!l.current) {
        out.push({ ...v, note: 'the object was overwritten or deleted since: the entry still refuses copies of its old header' });
        continue;
      }
      if (!('parts' in l) || !l.parts) {
        out.push({ ...v, current: true, note: `its header does not open now (${l.error})` });
        continue;
      }
      const size = l.parts.reduce((n, p) => n + p.size, 0);
      v.current = true;
      v.size = size;
      v.blockSize = l.blockSize;
      v.parts = l.parts.length;
      if (e.part === null) {
        v.range = size ? { start: 0, end: size - 1 } : null;
      } else {
        const i = l.parts.findIndex((p) => p.partNumber === e.part);
        if (i < 0) {
          out.push({ ...v, note: `the object has no part ${e.part}` });
          continue;
        }
        const before = l.parts.slice(0, i).reduce((n, p) => n + p.size, 0);
        const start = e.block! * l.blockSize;
        const end = Math.min(l.parts[i].size, (e.block! + 1) * l.blockSize) - 1;
        if (l.parts.length > 1) v.partRange = { start, end };
        v.range = { start: before + start, end: before + end };
      }
      out.push(v);
    }
    return c.json({ dataset: ds, revoked: out });
  });
  return app;
}

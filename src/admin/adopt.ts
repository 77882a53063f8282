/**
 * Adoption: after a prefix dataset is created over existing objects, those objects keep headers naming the
 * dataset that routed them when they were written (an ancestor: the bucket or a shorter prefix) and stay readable
 * through it (a read follows the header's dataset, store/header-door.ts). `datasets adopt <name>` moves them into
 * the new dataset: each object under the prefix that the dataset routes and whose header names an ancestor is
 * re-sealed — read and written again as one fresh stream under new DEKs and a new oid (ObjectStore.reseal,
 * conditional on the backend ETag read, so a client write that lands meanwhile wins and is counted as `raced`).
 * The datasetId is bound into every chunk's AAD (docs/FORMAT.md 2.2): moving a header alone cannot do it. The new
 * header is checked to name the new dataset.
 *
 * Resumable: state, counters and a cursor (last key done) in `jobs/adopt/<datasetIdHex>.json`; a stop (or a
 * crash) leaves it `stopped`/`running`, and starting it again resumes from the cursor (`fresh`: from the start).
 * One gateway runs a dataset's job at a time: the state carries its `owner` and a `leaseUntil` it renews, every
 * write is conditional on the version it last wrote, and a stop from another gateway is a conditional write of
 * the state that the owner notices at its next write (within a third of the lease).
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { datasetIdOf, peekHeader } from '../engine/index.ts';
import { HEADER_FIXED_SIZE } from '../format/header.ts';
import type { AuditLog } from '../keys/audit.ts';
import type { KeyService } from '../keys/service.ts';
import { META_OID, inlineHeaderBytes, isInline, loadHeaderBytes, type ObjectStore } from '../store/index.ts';
import { RateLimiter, forEachLimit, listPages, readStateTagged, writeState } from './util.ts';
import { leaseWriter, releaseJobs, type JobStateBase } from './job-lease.ts';

const PEEK_BYTES = HEADER_FIXED_SIZE + 16;

export interface AdoptContext {
  backend: Backend;
  store: ObjectStore;
  keys: KeyService;
  audit?: AuditLog;
  metaBucket: string;
  /** Objects re-sealed at a time (default 8). */
  concurrency?: number;
  /** Lease of a running job (default 15 s, renewed every third of it). */
  leaseMs?: number;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

export interface AdoptState extends JobStateBase {
  dataset: string;
  datasetId: string;
  /** Objects per second at most (0: unlimited). */
  rate: number;
  /** Last key done (keys are walked in order), for resuming. */
  cursor?: string;
  /** Keys under the prefix looked at. */
  scanned: number;
  /** Re-sealed into the dataset (their new header names it). */
  adopted: number;
  /** Their header named the dataset already. */
  alreadyAdopted: number;
  /** Routed to a longer prefix dataset (its own adoption moves them), or not written through lakecrypt. */
  skipped: number;
  /** A client wrote or deleted the object meanwhile (its write went to the dataset's route anyway). */
  raced: number;
  failed: number;
  /** Objects under the prefix still sealed under an ancestor, from the count at the end of the job. */
  pending?: number;
  pendingByParent?: Record<string, number>;
  objectsPerSec?: number;
}

/** Objects under a prefix dataset by the dataset their header names. */
export interface ParentCount {
  dataset: string;
  /** Objects the dataset routes (written through lakecrypt). */
  objects: number;
  /** Of those, sealed under the dataset itself. */
  own: number;
  /** Sealed under an ancestor (not covered by the dataset's keys): what adoption moves. */
  pending: number;
  byParent: Record<string, number>;
  /** Headers naming no dataset the key could belong to (tampered or misplaced): reads refuse them. */
  foreign: number;
}

export const adoptStatePath = (dataset: string): string => `jobs/adopt/${datasetIdOf(dataset).toString('hex')}.json`;

function splitName(name: string): { bucket: string; prefix: string } {
  const i = name.indexOf('/');
  return i < 0 ? { bucket: name, prefix: '' } : { bucket: name.slice(0, i), prefix: name.slice(i + 1) };
}

type Seen =
  | { kind: 'elsewhere' | 'gone' | 'plaintext' | 'no-header' }
  | { kind: 'own' }
  | { kind: 'parent'; parent: string }
  | { kind: 'foreign' };

/** Where one key's current object stands: its route, its oid (HEAD) and the dataset its header names (ranged GET). */
async function inspect(ctx: Pick<AdoptContext, 'backend' | 'store' | 'keys' | 'metaBucket'>, dataset: string, id: Buffer, bucket: string, key: string): Promise<Seen> {
  if (ctx.keys.datasetFor(bucket, key) !== dataset) return { kind: 'elsewhere' };
  const info = await ctx.backend.headObject(bucket, key);
  if (!info) return { kind: 'gone' };
  const oid = info.meta[META_OID];
  if (!oid || !/^[0-9a-f]{32}$/.test(oid)) return { kind: 'plaintext' };
  let bytes: Buffer;
  if (isInline(info.meta)) {
    try {
      bytes = inlineHeaderBytes(info.meta);
    } catch {
      return { kind: 'no-header' };
    }
  } else {
    try {
      const { body } = await ctx.backend.getObject(ctx.metaBucket, ctx.store.headerPath(bucket, key, oid), { start: 0, end: PEEK_BYTES - 1 });
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      bytes = Buffer.concat(chunks);
    } catch (e) {
      if (isS3Error(e, 'NoSuchKey') || isS3Error(e, 'InvalidRange')) return { kind: 'no-header' };
      throw e;
    }
  }
  let datasetId: Buffer;
  try {
    datasetId = peekHeader(bytes).datasetId;
  } catch {
    return { kind: 'foreign' };
  }
  if (datasetId.equals(id)) return { kind: 'own' };
  const parent = ctx.keys.headerDatasetFor(bucket, key, datasetId);
  return parent === null ? { kind: 'foreign' } : { kind: 'parent', parent };
}

/**
 * A fresh count of the objects under a dataset's prefix by the dataset their header names: one listing, then one
 * HEAD and one ranged GET of the header's fixed part per object (32 at a time).
 */
export async function countParents(ctx: Pick<AdoptContext, 'backend' | 'store' | 'keys' | 'metaBucket'>, dataset: string, concurrency = 32): Promise<ParentCount> {
  const { bucket, prefix } = splitName(dataset);
  const id = datasetIdOf(dataset);
  const out: ParentCount = { dataset, objects: 0, own: 0, pending: 0, byParent: {}, foreign: 0 };
  // a whole-bucket dataset has no ancestor: nothing under it can belong to a parent
  if (!prefix) return out;
  for await (const page of listPages(ctx.backend, bucket, prefix)) {
    await forEachLimit(page, concurrency, async (o) => {
      const s = await inspect(ctx, dataset, id, bucket, o.key);
      if (s.kind !== 'own' && s.kind !== 'parent' && s.kind !== 'foreign') return;
      out.objects++;
      if (s.kind === 'own') out.own++;
      else if (s.kind === 'foreign') out.foreign++;
      else {
        out.pending++;
        out.byParent[s.parent] = (out.byParent[s.parent] ?? 0) + 1;
      }
    });
  }
  return out;
}

/** The warning `keys revoke` of a prefix dataset gives while objects under it are still sealed under a parent. */
export function uncoveredWarning(c: ParentCount): string | undefined {
  if (!c.pending) return undefined;
  const parents = Object.entries(c.byParent)
    .map(([p, n]) => (Object.keys(c.byParent).length > 1 ? `${p} (${n})` : p))
    .join(', ');
  return `${c.pending} objects under the prefix are still sealed under ${parents} and are not covered (run \`lakecrypt datasets adopt ${c.dataset}\`)`;
}

interface Running {
  promise: Promise<AdoptState>;
  stop: boolean;
  state: AdoptState;
  etag: string;
  lost: boolean;
  limiter: RateLimiter;
}

export class AdoptManager {
  private readonly running = new Map<string, Running>();
  private readonly starting = new Map<string, Promise<AdoptState>>();
  private closed = false;
  readonly instance = randomBytes(8).toString('hex');
  readonly leaseMs: number;

  constructor(private readonly ctx: AdoptContext) {
    this.leaseMs = ctx.leaseMs ?? 15_000;
  }

  isRunning(dataset: string): boolean {
    return this.running.has(dataset);
  }

  async status(dataset: string): Promise<AdoptState | null> {
    const live = this.running.get(dataset);
    if (live) return { ...live.state };
    return (await readStateTagged<AdoptState>(this.ctx.backend, this.ctx.metaBucket, adoptStatePath(dataset)))?.value ?? null;
  }

  /** Start or resume the job (resumes a `running` or `stopped` one from its cursor unless `fresh`). */
  async start(dataset: string, actor: string, opts: { fresh?: boolean; rate?: number } = {}): Promise<AdoptState> {
    if (this.closed) throw new S3Error('ServiceUnavailable', 'admin is shutting down');
    const live = this.running.get(dataset);
    if (live) {
      if (opts.rate !== undefined) {
        live.state.rate = opts.rate;
        live.limiter.setRate(opts.rate);
      }
      return { ...live.state };
    }
    const pending = this.starting.get(dataset);
    if (pending) return pending;
    const p = this.startOnce(dataset, actor, opts).finally(() => this.starting.delete(dataset));
    this.starting.set(dataset, p);
    return p;
  }

  private async startOnce(dataset: string, actor: string, opts: { fresh?: boolean; rate?: number }): Promise<AdoptState> {
    // route by the registry as it is now, not as this gateway's last epoch poll saw it
    await this.ctx.keys.refreshDatasets();
    if (!this.ctx.keys.routedDatasets().some((d) => d.name === dataset)) {
      throw new S3Error('NoSuchKey', `unknown dataset ${dataset}: create it first (lakecrypt datasets create ${dataset})`);
    }
    // the dataset's record and its header key exist before the first object goes in
    await this.ctx.keys.activeHeaderKeyNumber(dataset);
    const path = adoptStatePath(dataset);
    for (let attempt = 0; ; attempt++) {
      const cur = await readStateTagged<AdoptState>(this.ctx.backend, this.ctx.metaBucket, path);
      const held = cur?.value;
      if (held?.state === 'running' && held.owner !== this.instance && Date.parse(held.leaseUntil ?? '') > Date.now()) return { ...held };
      const resume = !opts.fresh && (held?.state === 'running' || held?.state === 'stopped');
      const now = new Date().toISOString();
      const state: AdoptState = resume
        ? { ...held, state: 'running', updatedAt: now, rate: opts.rate ?? held.rate, finishedAt: undefined }
        : {
            dataset,
            datasetId: datasetIdOf(dataset).toString('hex'),
            state: 'running',
            startedAt: now,
            updatedAt: now,
            actor,
            rate: opts.rate ?? 0,
            scanned: 0,
            adopted: 0,
            alreadyAdopted: 0,
            skipped: 0,
            raced: 0,
            failed: 0,
            errors: [],
          };
      state.owner = this.instance;
      state.leaseUntil = new Date(Date.now() + this.leaseMs).toISOString();
      let etag: string;
      try {
        etag = await writeState(this.ctx.backend, this.ctx.metaBucket, path, state, cur ? { ifMatch: cur.etag } : { ifNoneMatch: '*' });
      } catch (e) {
        if (isS3Error(e, 'PreconditionFailed') && attempt < 3) continue;
        throw e;
      }
      const begun = { ...state };
      const entry: Running = { promise: Promise.resolve(state), stop: false, state, etag, lost: false, limiter: new RateLimiter(state.rate) };
      entry.promise = this.run(entry).finally(() => this.running.delete(dataset));
      this.running.set(dataset, entry);
      await this.ctx.audit?.append(resume ? 'dataset.adopt.resume' : 'dataset.adopt.start', { dataset, rate: begun.rate, cursor: begun.cursor ?? null }, actor);
      // the state it started from (the job has moved on meanwhile)
      return begun;
    }
  }

  /**
   * Stop the job (state `stopped`; starting it again resumes from the cursor). Running here: stopped at once;
   * running on another gateway: the state is overwritten conditionally, which that gateway notices at its next
   * write and stops.
   */
  async stop(dataset: string, actor: string): Promise<AdoptState | null> {
    const live = this.running.get(dataset);
    if (live) {
      live.stop = true;
      const s = await live.promise;
      if (!live.lost && s.state === 'running') {
        s.state = 'stopped';
        s.leaseUntil = new Date(0).toISOString();
        s.updatedAt = new Date().toISOString();
        await writeState(this.ctx.backend, this.ctx.metaBucket, adoptStatePath(dataset), s, { ifMatch: live.etag });
      }
      await this.ctx.audit?.append('dataset.adopt.stop', { dataset, cursor: s.cursor ?? null }, actor);
      return { ...s };
    }
    const cur = await readStateTagged<AdoptState>(this.ctx.backend, this.ctx.metaBucket, adoptStatePath(dataset));
    if (!cur) return null;
    if (cur.value.state !== 'running') return cur.value;
    const s: AdoptState = { ...cur.value, state: 'stopped', leaseUntil: new Date(0).toISOString(), updatedAt: new Date().toISOString() };
    await writeState(this.ctx.backend, this.ctx.metaBucket, adoptStatePath(dataset), s, { ifMatch: cur.etag });
    await this.ctx.audit?.append('dataset.adopt.stop', { dataset, cursor: s.cursor ?? null }, actor);
    return s;
  }

  async wait(dataset: string): Promise<AdoptState | null> {
    const live = this.running.get(dataset);
    return live ? live.promise : this.status(dataset);
  }

  /** Stop the jobs running here without finishing them, and let their leases go: a later start resumes them. */
  async close(): Promise<void> {
    this.closed = true;
    await releaseJobs([...this.running.values()], (s, etag) => writeState(this.ctx.backend, this.ctx.metaBucket, adoptStatePath(s.dataset), s, { ifMatch: etag }));
  }

  private async run(entry: Running): Promise<AdoptState> {
    const s = entry.state;
    const { backend, store, metaBucket } = this.ctx;
    const dataset = s.dataset;
    const { bucket, prefix } = splitName(dataset);
    const id = datasetIdOf(dataset);
    const t0 = Date.now();
    const startDone = s.scanned;
    const lease = leaseWriter({
      backend, bucket: metaBucket, path: adoptStatePath(dataset), leaseMs: this.leaseMs, entry, state: s,
      what: 'adopt', log: this.ctx.log, logFields: { dataset },
      beforeWrite: () => {
        const secs = (Date.now() - t0) / 1000;
        if (secs > 0) s.objectsPerSec = Math.round(((s.scanned - startDone) / secs) * 10) / 10;
      },
    });
    const persist = lease.persist;
    const err = lease.recordError;

    const one = async (key: string): Promise<void> => {
      await entry.limiter.take();
      if (entry.stop) return;
      s.scanned++;
      let seen: Seen;
      try {
        seen = await inspect(this.ctx, dataset, id, bucket, key);
      } catch (e) {
        s.failed++;
        err(`${key}: ${(e as Error).message}`);
        return;
      }
      if (seen.kind === 'own') return void s.alreadyAdopted++;
      if (seen.kind === 'foreign') {
        s.failed++;
        err(`${key}: its header names a dataset this key cannot belong to (refused on read)`);
        return;
      }
      if (seen.kind !== 'parent') return void s.skipped++;
      try {
        const r = await store.reseal(bucket, key);
        // the new header must name this dataset (it is sealed under the route of the gateway that wrote it)
        const { data } = await loadHeaderBytes(store, bucket, key, r.oid.toString('hex'));
        if (!peekHeader(data).datasetId.equals(id)) {
          s.failed++;
          err(`${key}: re-sealed under another dataset (routing changed meanwhile?)`);
          return;
        }
        s.adopted++;
      } catch (e) {
        if (isS3Error(e, 'PreconditionFailed') || isS3Error(e, 'NoSuchKey')) return void s.raced++;
        s.failed++;
        err(`${key}: ${(e as Error).message}`);
      }
    };

    try {
      const conc = s.rate && s.rate < 50 ? 1 : (this.ctx.concurrency ?? 8);
      let sincePersist = 0;
      for await (const page of listPages(backend, bucket, prefix, s.cursor)) {
        const list = page.map((o) => o.key);
        for (let i = 0; i < list.length; i += conc) {
          if (entry.stop) return s;
          const batch = list.slice(i, i + conc);
          await forEachLimit(batch, conc, one);
          if (entry.stop) return s;
          s.cursor = batch[batch.length - 1];
          sincePersist += batch.length;
          if (conc === 1 || sincePersist >= 200) {
            sincePersist = 0;
            await persist();
          }
        }
      }
      if (entry.stop) return s;
      const c = await countParents(this.ctx, dataset);
      s.pending = c.pending;
      s.pendingByParent = c.byParent;
      s.state = s.failed ? 'failed' : 'done';
      // Nothing left under an ancestor: from now on no header under the prefix may name one (a rolled-back
      // pre-adoption copy would otherwise escape a revocation of this dataset).
      if (s.state === 'done' && s.pending === 0) await this.ctx.keys.closeDataset(dataset, s.actor);
      s.cursor = undefined;
      s.finishedAt = new Date().toISOString();
      await persist();
      await this.ctx.audit?.append('dataset.adopt.done', { dataset, adopted: s.adopted, failed: s.failed, raced: s.raced, pending: s.pending }, s.actor);
      this.ctx.log?.info({ dataset, adopted: s.adopted, pending: s.pending }, 'adopt done');
      return s;
    } catch (e) {
      if (entry.stop) return s;
      await lease.fail(e);
      return s;
    } finally {
      await lease.close();
    }
  }
}

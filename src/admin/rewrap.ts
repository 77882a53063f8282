/**
 * Re-wrap job: make every header of a dataset depend on its active KEK version only, without touching the data
 * objects.
 *
 * First the dataset's header keys (docs/FORMAT.md 3.4) are moved under the active version: one keystore write,
 * however many headers they seal. When the dataset holds format-2 headers only, that is the whole job. Otherwise
 * (a dataset from before format 2), and for a re-key (`rekey`: a fresh header key, for a suspected leak of a
 * header key), the headers themselves are walked (object headers under `h/<bucket>/`, open multipart upload
 * records under `mpu/`): GET, open, reseal as format 2 under the current header key, conditional PUT (If-Match the
 * ETag read; on PreconditionFailed re-read and retry; a vanished header is skipped). Progress and a cursor are
 * kept in `jobs/rewrap/<datasetIdHex>.json` so a restarted gateway resumes where it stopped.
 *
 * One gateway runs a dataset's job at a time: the state object carries the running gateway's `owner` id and a
 * `leaseUntil` it renews; every write of it is conditional on the version it last wrote, so a gateway whose
 * lease was taken over stops at its next write. Others leave a live lease alone and take the job over when it
 * lapses (a crashed owner) — `resumeAll`, which each gateway runs at start and then every lease period.
 */
import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { datasetIdOf, peekHeader, type HeaderFields } from '../engine/index.ts';
import { HEADER_FIXED_SIZE } from '../format/header.ts';
import type { KeyService } from '../keys/service.ts';
import type { AuditLog } from '../keys/audit.ts';
import { META_OID, inlineHeaderBytes, isInline, storeHeaderBytes, wipeHeaderKeys } from '../store/index.ts';
import { forEachInlineHeader, type InlineFound } from './inline-walk.ts';
import { allVersions } from '../store/versions.ts';
import type { ObjectStore } from '../store/index.ts';
import { leaseWriter, releaseJobs } from './job-lease.ts';
import { RateLimiter, countingBackend, forEachLimit, listPages, readState, readStateTagged, sha256hex, writeState } from './util.ts';

const TAG_SIZE = 16;
const PEEK_BYTES = HEADER_FIXED_SIZE + TAG_SIZE;

export interface RewrapState {
  dataset: string;
  datasetId: string;
  state: 'running' | 'done' | 'failed';
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
  actor: string;
  /** Active version when the job (last) started. */
  targetVersion: number;
  /**
   * `header-keys`: only header keys are re-wrapped (every header is format 2); `headers`: the headers are walked
   * too (format-1 headers may exist, or a re-key).
   */
  mode?: 'header-keys' | 'headers';
  /** A re-key: every header is resealed under this header key (made when the job started). */
  rekeyTo?: number;
  /** Header keys moved under the target version; header keys left under a revoked or destroyed one. */
  headerKeysRewrapped?: number;
  headerKeysPending?: number;
  /** A re-key's last step: header keys removed because no header used them any more. */
  headerKeysRetired?: number[];
  phase: 'keys' | 'headers' | 'uploads' | 'inline' | 'scan' | 'finished';
  /** Last fully processed header path (meta bucket key), for resuming. */
  cursor?: string;
  /** Headers of this dataset seen so far. */
  total: number;
  /** Headers processed (rewrapped + already current + skipped + failed). */
  done: number;
  rewrapped: number;
  alreadyCurrent: number;
  /** Vanished while we worked, or not attributable to a live object (orphans: see gc). */
  skipped: number;
  failed: number;
  retries: number;
  /** Bytes read from user (data) buckets: always 0 for a correct re-wrap. */
  dataBytesRead: number;
  /** Headers still not on the active version at the end of the job (from a fresh scan). */
  pending?: number;
  pendingByVersion?: Record<string, number>;
  headersPerSec?: number;
  errors: string[];
  /** The gateway process running the job (random per process), and until when its lease holds. */
  owner?: string;
  leaseUntil?: string;
}

export interface ScanResult {
  dataset: string;
  activeVersion: number | null;
  total: number;
  /** Headers that depend on another KEK version than the active one. */
  pending: number;
  /** Headers by the KEK version they depend on: their own (format 1) or their header key's (format 2). */
  byVersion: Record<string, number>;
  /** Headers still in format 1 (sealed under a KEK version directly). */
  format1: number;
  /** Format-2 headers by header-key number. */
  byHeaderKey: Record<string, number>;
}

export interface RewrapContext {
  backend: Backend;
  store: ObjectStore;
  keys: KeyService;
  audit?: AuditLog;
  metaBucket: string;
  ratePerSec?: number;
  concurrency?: number;
  /** How long a running job's lease holds without renewal (default 15 s; renewed every third of it). */
  leaseMs?: number;
  /**
   * A re-key scans for unreferenced header keys no earlier than this long after it started (default 5 s): every
   * gateway has seen the new key by then (epoch poll, 250 ms), so no header under an old key is still on its way.
   */
  rekeyGraceMs?: number;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

interface Running {
  promise: Promise<RewrapState>;
  stop: boolean;
  state: RewrapState;
  /** ETag of the state object as this process last wrote it. */
  etag: string;
  /** Another gateway took the job over (a conditional write of the state failed). */
  lost: boolean;
}

export const rewrapStatePath = (dataset: string): string => `jobs/rewrap/${datasetIdOf(dataset).toString('hex')}.json`;

function splitDataset(dataset: string): { bucket: string; prefix: string } {
  const i = dataset.indexOf('/');
  return i < 0 ? { bucket: dataset, prefix: '' } : { bucket: dataset.slice(0, i), prefix: dataset.slice(i + 1) };
}

export class RewrapManager {
  private readonly running = new Map<string, Running>();
  private closed = false;
  /** This process's owner id in job leases. */
  readonly instance = randomBytes(8).toString('hex');
  readonly leaseMs: number;
  constructor(private readonly ctx: RewrapContext) {
    this.leaseMs = ctx.leaseMs ?? 15_000;
  }

  private get backend(): Backend {
    return this.ctx.backend;
  }

  /**
   * Attribute paths to live keys that may hold headers of the dataset: sha256(key) -> key. Every key under the
   * dataset's prefix, not only those it routes: an object under a prefix dataset created after it was written
   * keeps a header naming this (ancestor) dataset until adopted. Which headers are the dataset's is decided by
   * the datasetId in each header's fixed fields.
   */
  private async keyMap(dataset: string): Promise<Map<string, string>> {
    const { bucket, prefix } = splitDataset(dataset);
    const m = new Map<string, string>();
    for await (const page of listPages(this.backend, bucket, prefix)) {
      for (const o of page) m.set(sha256hex(o.key), o.key);
    }
    // A bucket that keeps versions also has keys whose versions are all non-current (the current one a delete
    // marker): their headers are walked too.
    for await (const v of allVersions(this.backend, bucket, prefix || undefined)) m.set(sha256hex(v.key), v.key);
    return m;
  }

  /** Open multipart uploads that may hold records of the dataset (any under its prefix): encoded upload id -> key. */
  private async uploadMap(dataset: string, onError?: (e: Error) => void): Promise<Map<string, string>> {
    const { bucket, prefix } = splitDataset(dataset);
    const m = new Map<string, string>();
    const ups = await this.backend.listMultipartUploads(bucket).catch((e: Error) => (onError?.(e), []));
    for (const u of ups) if (u.key.startsWith(prefix)) m.set(encodeURIComponent(u.uploadId), u.key);
    return m;
  }

  /** Fresh count of headers per KEK version (ranged GETs of the fixed part only). */
  async scan(dataset: string): Promise<ScanResult> {
    const { bucket } = splitDataset(dataset);
    const id = datasetIdOf(dataset);
    const view = await this.ctx.keys.show(dataset);
    const activeVersion = view?.versions.find((v) => v.state === 'active')?.version ?? null;
    const hkVersion = new Map((view?.headerKeys ?? []).map((k) => [k.n, k.kekVersion]));
    const byVersion: Record<string, number> = {};
    let total = 0;
    let format1 = 0;
    const byHeaderKey: Record<string, number> = {};
    const visit = async (path: string) => {
      let bytes: Buffer;
      try {
        const { body } = await this.backend.getObject(this.ctx.metaBucket, path, { start: 0, end: PEEK_BYTES - 1 });
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c as Buffer);
        bytes = Buffer.concat(chunks);
      } catch (e) {
        if (isS3Error(e, 'NoSuchKey') || isS3Error(e, 'InvalidRange')) return;
        throw e;
      }
      count(bytes);
    };
    const count = (bytes: Buffer) => {
      let peek;
      try {
        peek = peekHeader(bytes);
      } catch {
        return;
      }
      if (!peek.datasetId.equals(id)) return;
      total++;
      if (peek.version === 1) format1++;
      else byHeaderKey[peek.keyNumber] = (byHeaderKey[peek.keyNumber] ?? 0) + 1;
      // a header key unknown to the record depends on no version that exists: counted under 0
      const v = peek.version === 1 ? peek.keyNumber : (hkVersion.get(peek.keyNumber) ?? 0);
      byVersion[v] = (byVersion[v] ?? 0) + 1;
    };
    for await (const page of listPages(this.backend, this.ctx.metaBucket, `h/${bucket}/`)) {
      await forEachLimit(page.map((o) => o.key), this.ctx.concurrency ?? 32, visit);
    }
    // Every open upload's records, found by the dataset id in their fixed fields rather than through the
    // backend's upload listing (which may fail or be incomplete): a re-key retires keys by this count.
    for await (const page of listPages(this.backend, this.ctx.metaBucket, 'mpu/')) {
      await forEachLimit(page.map((o) => o.key), this.ctx.concurrency ?? 32, visit);
    }
    // Inline headers (small objects, data format 2) live with their data objects, every version of them.
    const { prefix } = splitDataset(dataset);
    await forEachInlineHeader(this.backend, bucket, prefix, (f) => Promise.resolve(count(f.bytes)), this.ctx.concurrency ?? 32);
    let pending = 0;
    for (const [v, n] of Object.entries(byVersion)) if (Number(v) !== activeVersion) pending += n;
    return { dataset, activeVersion, total, pending, byVersion, format1, byHeaderKey };
  }

  async status(dataset: string): Promise<RewrapState | null> {
    const live = this.running.get(dataset);
    if (live) return { ...live.state };
    return readState<RewrapState>(this.backend, this.ctx.metaBucket, rewrapStatePath(dataset));
  }

  /** Called with a job's last state when it ends in this process (for metrics). */
  onFinished?: (state: RewrapState) => void;

  /** States of the jobs running in this process (for metrics). */
  runningStates(): RewrapState[] {
    return [...this.running.values()].map((e) => e.state);
  }

  isRunning(dataset: string): boolean {
    return this.running.has(dataset);
  }

  /** Start (or resume) the job; returns its current state. Idempotent while it runs. */
  async start(dataset: string, actor = 'system', opts: { fresh?: boolean; rekey?: boolean } = {}): Promise<RewrapState> {
    if (this.closed) throw new S3Error('ServiceUnavailable', 'admin is shutting down');
    const live = this.running.get(dataset);
    if (live) {
      if (live.state.state === 'running') return { ...live.state };
      // Done (its state already says so) but still letting go — audit entry, lease: not the job asked for. Returning it
      // made a `rewrap run --rekey` right after a re-wrap answer "done" with no re-key started. Wait for it to let go;
      // its own outcome is recorded in its state and log, so nothing of it is handled here.
      await live.promise.catch(() => undefined);
    }
    // one start at a time per dataset in this process (a second would take the lease from the first)
    const pending = this.starting.get(dataset);
    if (pending) return pending;
    const p = this.startOnce(dataset, actor, opts).finally(() => this.starting.delete(dataset));
    this.starting.set(dataset, p);
    return p;
  }

  private readonly starting = new Map<string, Promise<RewrapState>>();

  private async startOnce(dataset: string, actor: string, opts: { fresh?: boolean; rekey?: boolean }): Promise<RewrapState> {
    if (!(await this.ctx.keys.show(dataset))) throw new S3Error('InvalidArgument', `unknown dataset ${dataset}`);
    const { version } = await this.ctx.keys.activeKek(dataset);
    let rekeyTo: number | undefined;
    const path = rewrapStatePath(dataset);
    for (let attempt = 0; ; attempt++) {
      const cur = await readStateTagged<RewrapState>(this.backend, this.ctx.metaBucket, path);
      const held = cur?.value;
      // Another gateway runs this very job under a live lease: leave it there (it is taken over if the lease lapses).
      if (held?.state === 'running' && held.owner !== undefined && held.owner !== this.instance && held.targetVersion === version && Date.parse(held.leaseUntil ?? '') > Date.now()) {
        return { ...held };
      }
      // A re-key still running for an older active version (a rotation came in between) is not dropped: the new
      // job is a re-key too, under a key of the new version.
      const rekey = opts.rekey || (held?.state === 'running' && held.rekeyTo !== undefined && held.targetVersion !== version);
      // A re-key starts a new header key for new writes once, before the job state claims the job.
      if (rekey && rekeyTo === undefined) rekeyTo = await this.ctx.keys.startHeaderKey(dataset, actor);
      try {
        return await this.begin(dataset, actor, version, opts.fresh || rekeyTo !== undefined ? null : (held ?? null), cur?.etag ?? null, rekeyTo);
      } catch (e) {
        // Another gateway wrote the state between our read and our write: look again.
        if (isS3Error(e, 'PreconditionFailed') && attempt < 3) continue;
        throw e;
      }
    }
  }

  /** Take the job (conditionally on the state version read) and run it in the background. */
  private async begin(dataset: string, actor: string, version: number, prev: RewrapState | null, etag: string | null, rekeyTo?: number): Promise<RewrapState> {
    const now = new Date().toISOString();
    const resume = prev?.state === 'running' && prev.targetVersion === version;
    const state: RewrapState = resume
      ? { ...prev, updatedAt: now }
      : {
          dataset,
          datasetId: datasetIdOf(dataset).toString('hex'),
          state: 'running',
          startedAt: now,
          updatedAt: now,
          actor,
          targetVersion: version,
          ...(rekeyTo !== undefined ? { rekeyTo } : {}),
          phase: 'keys',
          total: 0,
          done: 0,
          rewrapped: 0,
          alreadyCurrent: 0,
          skipped: 0,
          failed: 0,
          retries: 0,
          dataBytesRead: 0,
          errors: [],
        };
    state.owner = this.instance;
    state.leaseUntil = new Date(Date.now() + this.leaseMs).toISOString();
    const written = await writeState(this.backend, this.ctx.metaBucket, rewrapStatePath(dataset), state, etag === null ? { ifNoneMatch: '*' } : { ifMatch: etag });
    const entry: Running = { promise: Promise.resolve(state), stop: false, state, etag: written, lost: false };
    entry.promise = this.run(entry).finally(() => {
      this.running.delete(dataset);
      this.onFinished?.(entry.state);
    });
    this.running.set(dataset, entry);
    if (!resume) await this.ctx.audit?.append('rewrap.start', { dataset, targetVersion: version, ...(rekeyTo !== undefined ? { rekeyTo } : {}) }, actor);
    return { ...state };
  }

  /** Wait for a running job (tests, CLI --wait through polling). */
  async wait(dataset: string): Promise<RewrapState | null> {
    const live = this.running.get(dataset);
    if (live) return live.promise;
    return this.status(dataset);
  }

  /** ETags of job state objects last seen finished: unchanged ones are not read again (resumeAll runs every lease period). */
  private readonly finished = new Map<string, string>();

  /** Resume jobs left `running` by a previous process, or by a gateway whose lease lapsed. */
  async resumeAll(): Promise<string[]> {
    const resumed: string[] = [];
    for await (const page of listPages(this.backend, this.ctx.metaBucket, 'jobs/rewrap/')) {
      for (const o of page) {
        if (this.finished.get(o.key) === o.etag) continue;
        // An unreadable job state is not resumed now; the next resume pass (every lease period) looks again.
        const s = await readState<RewrapState>(this.backend, this.ctx.metaBucket, o.key).catch(() => null);
        if (s && s.state !== 'running') this.finished.set(o.key, o.etag);
        if (s?.state === 'running' && !this.running.has(s.dataset) && !this.closed) {
          // start() leaves a job alone while another gateway's lease on it is live
          await this.start(s.dataset, s.actor).catch((e: unknown) => this.ctx.log?.warn({ err: e, dataset: s.dataset }, 'rewrap resume failed'));
          if (this.running.has(s.dataset)) resumed.push(s.dataset);
        }
      }
    }
    return resumed;
  }

  /**
   * Stop running jobs without marking them finished, and let their leases go at once: the next gateway to look
   * (or this one, restarted) resumes them from the progress written here.
   */
  async close(): Promise<void> {
    this.closed = true;
    await releaseJobs([...this.running.values()], (s, etag) => writeState(this.backend, this.ctx.metaBucket, rewrapStatePath(s.dataset), s, { ifMatch: etag }));
  }

  private async run(entry: Running): Promise<RewrapState> {
    const s = entry.state;
    const dataset = s.dataset;
    const { bucket } = splitDataset(dataset);
    const id = datasetIdOf(dataset);
    const counter = { dataBytesRead: s.dataBytesRead };
    // Everything the job reads goes through this wrapper so a stray data read would show.
    const backend = countingBackend(this.backend, this.ctx.metaBucket, counter);
    const limiter = new RateLimiter(this.ctx.ratePerSec ?? 0);
    const t0 = Date.now();
    const startDone = s.done;
    // Every write of the state renews the lease and is conditional on our last write; writes go one at a time.
    const lease = leaseWriter({
      backend: this.backend, bucket: this.ctx.metaBucket, path: rewrapStatePath(dataset), leaseMs: this.leaseMs, entry, state: s,
      what: 're-wrap', log: this.ctx.log, logFields: { dataset },
      beforeWrite: () => {
        s.dataBytesRead = counter.dataBytesRead;
        const secs = (Date.now() - t0) / 1000;
        if (secs > 0) s.headersPerSec = Math.round((s.done - startDone) / secs);
      },
    });
    const persist = lease.persist;
    const err = lease.recordError;
    // Counters as of the last completed page: a stop in the middle of a page goes back to them, so the state
    // written matches its cursor and a resumed job does not count that page twice.
    const counters = () => ({ total: s.total, done: s.done, rewrapped: s.rewrapped, alreadyCurrent: s.alreadyCurrent, skipped: s.skipped, failed: s.failed, retries: s.retries });

    /** One header: 'ok' when done with it (processed or skipped), 'unattributed' when not attributable. */
    const one = async (path: string, location: { bucket: string; key: string } | undefined): Promise<'ok' | 'unattributed' | 'other'> => {
      for (let attempt = 0; attempt < 8; attempt++) {
        if (entry.stop) return 'other'; // stopping (closed, or the job was taken over): leave the rest
        await limiter.take();
        if (entry.stop) return 'other';
        let data: Buffer;
        let etag: string;
        try {
          ({ data, info: { etag } } = await backend.getBuffer(this.ctx.metaBucket, path));
        } catch (e) {
          if (isS3Error(e, 'NoSuchKey')) {
            if (attempt === 0) return 'other';
            s.skipped++;
            s.done++;
            return 'ok';
          }
          throw e;
        }
        let peek;
        try {
          peek = peekHeader(data);
        } catch {
          return 'other';
        }
        if (!peek.datasetId.equals(id)) return 'other';
        if (attempt === 0) s.total++;
        // Format 2 depends on its header key, which the first phase re-wrapped; a re-key wants one header key only.
        const current = s.rekeyTo === undefined ? peek.version === 2 : peek.version === 2 && peek.keyNumber === s.rekeyTo;
        if (current) {
          s.alreadyCurrent++;
          s.done++;
          return 'ok';
        }
        if (!location) return 'unattributed';
        let fields: HeaderFields | undefined;
        let sealed: Buffer;
        try {
          fields = await this.ctx.store.door.open(data, { ...location, dataset });
          sealed = await this.ctx.store.door.sealAsCurrent(fields, s.rekeyTo);
        } catch (e) {
          s.failed++;
          s.done++;
          err(`${path}: ${(e as Error).message}`);
          return 'ok';
        } finally {
          if (fields) wipeHeaderKeys(fields);
        }
        try {
          await this.backend.putObject(this.ctx.metaBucket, path, sealed, { size: sealed.length, ifMatch: etag });
          s.rewrapped++;
          s.done++;
          if (location.bucket === bucket && path.startsWith('h/')) this.ctx.store.headers.delete(location.bucket, location.key, path.slice(path.lastIndexOf('/') + 1));
          return 'ok';
        } catch (e) {
          // Someone rewrote, overwrote or deleted it meanwhile: read again.
          if (isS3Error(e, 'PreconditionFailed') || isS3Error(e, 'NoSuchKey')) {
            s.retries++;
            continue;
          }
          throw e;
        }
      }
      s.failed++;
      s.done++;
      err(`${path}: too many concurrent changes`);
      return 'ok';
    };

    /**
     * One inline header (a small object's, in its data object's metadata): resealed in place by a server-side
     * copy with the metadata replaced, conditional on the ETag listed (on a change: HEAD again and retry).
     */
    const oneInline = async (first: InlineFound): Promise<void> => {
      let f: InlineFound | null = first;
      for (let attempt = 0; attempt < 8 && f; attempt++) {
        await limiter.take();
        let peek;
        try {
          peek = peekHeader(f.bytes);
        } catch {
          return;
        }
        if (!peek.datasetId.equals(id)) return;
        if (attempt === 0) s.total++;
        if (peek.version === 2 && (s.rekeyTo === undefined || peek.keyNumber === s.rekeyTo)) {
          s.alreadyCurrent++;
          s.done++;
          return;
        }
        const oidHex = peek.oid.toString('hex');
        let fields: HeaderFields | undefined;
        let sealed: Buffer;
        try {
          fields = await this.ctx.store.door.open(f.bytes, { bucket, key: f.key, dataset, oidHex });
          sealed = await this.ctx.store.door.sealAsCurrent(fields, s.rekeyTo);
        } catch (e) {
          s.failed++;
          s.done++;
          err(`${bucket}/${f.key} (inline header): ${(e as Error).message}`);
          return;
        } finally {
          if (fields) wipeHeaderKeys(fields);
        }
        try {
          if (!(await storeHeaderBytes(this.ctx.store, bucket, f.key, oidHex, sealed, f.site))) {
            // a non-current version: what it names stays referenced (the scan counts it), so nothing is lost
            s.skipped++;
            s.done++;
            err(`${bucket}/${f.key} version ${f.site.versionId}: a non-current version's inline header cannot be rewritten`);
            return;
          }
          s.rewrapped++;
          s.done++;
          this.ctx.store.headers.delete(bucket, f.key, oidHex);
          return;
        } catch (e) {
          if (!isS3Error(e, 'PreconditionFailed') && !isS3Error(e, 'NoSuchKey')) throw e;
          s.retries++;
          const info = await this.backend.headObject(bucket, f.key);
          f = info && info.meta[META_OID] === oidHex && isInline(info.meta)
            ? { key: f.key, bytes: inlineHeaderBytes(info.meta), site: { inline: true, etag: info.etag, meta: info.meta }, current: true }
            : null; // overwritten or deleted meanwhile: the new version is written under the current key
          if (!f) s.done++;
        }
      }
      if (f) {
        s.failed++;
        s.done++;
        err(`${bucket}/${first.key}: too many concurrent changes`);
      }
    };

    try {
      const concurrency = this.ctx.concurrency ?? 16;
      if (s.phase === 'keys') {
        const r = await this.ctx.keys.rewrapHeaderKeys(dataset, s.actor);
        s.headerKeysRewrapped = (s.headerKeysRewrapped ?? 0) + r.rewrapped;
        s.headerKeysPending = Object.values(r.pendingByVersion).reduce((a, b) => a + b, 0);
        const rec = await this.ctx.keys.datasetRecord(dataset, true);
        s.mode = rec?.headerFormat === 2 && s.rekeyTo === undefined ? 'header-keys' : 'headers';
        s.phase = s.mode === 'headers' ? 'headers' : 'scan';
        await persist();
      }
      if (s.phase === 'headers') {
        let keys = await this.keyMap(dataset);
        const unattributed: string[] = [];
        let sincePersist = 0;
        for await (const page of listPages(this.backend, this.ctx.metaBucket, `h/${bucket}/`, s.cursor)) {
          if (entry.stop) return s;
          const before = counters();
          await forEachLimit(page, concurrency, async (o) => {
            const hash = o.key.split('/')[2];
            const key = keys.get(hash);
            const r = await one(o.key, key === undefined ? undefined : { bucket, key });
            if (r === 'unattributed') unattributed.push(o.key);
          });
          if (entry.stop) return Object.assign(s, before);
          if (page.length) s.cursor = page[page.length - 1].key;
          sincePersist += page.length;
          if (sincePersist >= 2000) {
            sincePersist = 0;
            await persist();
          }
        }
        // Headers of objects written while we listed: look their keys up again once.
        if (unattributed.length) {
          const before = counters();
          keys = await this.keyMap(dataset);
          await forEachLimit(unattributed, concurrency, async (p) => {
            const key = keys.get(p.split('/')[2]);
            const r = await one(p, key === undefined ? undefined : { bucket, key });
            if (r === 'unattributed') {
              s.skipped++;
              s.done++;
              err(`${p}: no live object (orphan header; see gc)`);
            }
          });
          // A stop here: the cursor is already past these, so the resumed job does not visit them again; its
          // final scan counts them as pending and `rewrap run` picks them up.
          if (entry.stop) return Object.assign(s, before);
        }
        s.phase = 'uploads';
        s.cursor = undefined;
        await persist();
      }
      if (s.phase === 'uploads') {
        const before = counters();
        // Records of uploads the backend does not list stay as they are (the final scan still counts them).
        const uploads = await this.uploadMap(dataset, (e) => err(`multipart uploads not listed (${e.message}): their records were not resealed`));
        if (uploads.size) {
          for await (const page of listPages(this.backend, this.ctx.metaBucket, 'mpu/')) {
            if (entry.stop) return Object.assign(s, before);
            const mine = page.filter((o) => uploads.has(o.key.split('/')[1]));
            await forEachLimit(mine, concurrency, async (o) => {
              const r = await one(o.key, { bucket, key: uploads.get(o.key.split('/')[1])! });
              if (r === 'unattributed') {
                s.skipped++;
                s.done++;
              }
            });
          }
        }
        // this phase has no cursor: a resumed job goes through the uploads again
        if (entry.stop) return Object.assign(s, before);
        s.phase = 'inline';
        await persist();
      }
      if (s.phase === 'inline') {
        const before = counters();
        await forEachInlineHeader(this.backend, bucket, splitDataset(dataset).prefix, async (f) => {
          if (!entry.stop) await oneInline(f);
        }, concurrency);
        // no cursor either: a resumed job lists again, and the versions it already resealed count as current
        if (entry.stop) return Object.assign(s, before);
        s.phase = 'scan';
        await persist();
      }
      if (entry.stop) return s;
      if (s.rekeyTo !== undefined) {
        const wait = (this.ctx.rekeyGraceMs ?? 5_000) - (Date.now() - Date.parse(s.startedAt));
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (entry.stop) return s;
      }
      if (s.mode === 'header-keys' && !s.headerKeysPending) {
        // every header is format 2 and every header key is under the active version: nothing depends on another
        s.pending = 0;
        s.pendingByVersion = {};
      } else {
        const scan = await this.scan(dataset);
        s.pending = scan.pending;
        s.pendingByVersion = Object.fromEntries(Object.entries(scan.byVersion).filter(([v]) => Number(v) !== scan.activeVersion));
        if (scan.format1 === 0 && s.mode === 'headers') await this.ctx.keys.markHeaderFormat2(dataset);
        // A re-key ends by removing the header keys no header uses any more: replayed old headers stop opening.
        if (s.rekeyTo !== undefined && scan.format1 === 0) {
          s.headerKeysRetired = await this.ctx.keys.retireHeaderKeys(dataset, s.rekeyTo, new Set(Object.keys(scan.byHeaderKey).map(Number)), s.actor);
        }
      }
      s.phase = 'finished';
      s.state = 'done';
      s.finishedAt = new Date().toISOString();
      await persist();
      await this.ctx.audit?.append('rewrap.done', { dataset, mode: s.mode, headerKeysRewrapped: s.headerKeysRewrapped ?? 0, rewrapped: s.rewrapped, failed: s.failed, pending: s.pending, dataBytesRead: s.dataBytesRead }, s.actor);
      this.ctx.log?.info({ dataset, rewrapped: s.rewrapped, pending: s.pending }, 'rewrap done');
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

/**
 * Re-wrap job: move every header of a dataset (object headers under `h/<bucket>/` and open multipart upload
 * records under `mpu/`) to the dataset's active KEK version without touching the data objects.
 *
 * Each header: GET, open under its version, reseal under the active one, conditional PUT (If-Match the ETag
 * read; on PreconditionFailed re-read and retry; a vanished header is skipped). Progress and a cursor are kept
 * in `jobs/rewrap/<datasetIdHex>.json` so a restarted gateway resumes where it stopped.
 */
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { datasetIdOf, openHeader, peekHeader, sealHeader, type HeaderFields } from '../engine/index.ts';
import { HEADER_FIXED_SIZE } from '../format/header.ts';
import type { KeyService } from '../keys/service.ts';
import type { AuditLog } from '../keys/audit.ts';
import { wipeHeaderKeys } from '../server/header-cache.ts';
import type { ObjectStore } from '../server/store.ts';
import { RateLimiter, countingBackend, forEachLimit, listPages, readState, sha256hex, writeState } from './util.ts';

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
  phase: 'headers' | 'uploads' | 'scan' | 'finished';
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
}

export interface ScanResult {
  dataset: string;
  activeVersion: number | null;
  total: number;
  /** Headers whose KEK version != active. */
  pending: number;
  byVersion: Record<string, number>;
}

export interface RewrapContext {
  backend: Backend;
  store: ObjectStore;
  keys: KeyService;
  audit?: AuditLog;
  metaBucket: string;
  ratePerSec?: number;
  concurrency?: number;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

export const rewrapStatePath = (dataset: string): string => `jobs/rewrap/${datasetIdOf(dataset).toString('hex')}.json`;

function splitDataset(dataset: string): { bucket: string; prefix: string } {
  const i = dataset.indexOf('/');
  return i < 0 ? { bucket: dataset, prefix: '' } : { bucket: dataset.slice(0, i), prefix: dataset.slice(i + 1) };
}

/** Non-zero check: never seal under a key that was wiped under our feet. */
function assertLive(kek: Buffer): void {
  if (kek.length !== 32 || kek.every((b) => b === 0)) throw new S3Error('ServiceUnavailable', 'KEK cache was cleared during the operation; retry');
}

export class RewrapManager {
  private readonly running = new Map<string, { promise: Promise<RewrapState>; stop: boolean; state: RewrapState }>();
  private closed = false;
  constructor(private readonly ctx: RewrapContext) {}

  private get backend(): Backend {
    return this.ctx.backend;
  }

  /** Attribute paths to live keys of the dataset: sha256(key) -> key. */
  private async keyMap(dataset: string): Promise<Map<string, string>> {
    const { bucket, prefix } = splitDataset(dataset);
    const m = new Map<string, string>();
    for await (const page of listPages(this.backend, bucket, prefix)) {
      for (const o of page) if (this.ctx.keys.datasetFor(bucket, o.key) === dataset) m.set(sha256hex(o.key), o.key);
    }
    return m;
  }

  /** Open multipart uploads of the dataset: encoded upload id -> key. */
  private async uploadMap(dataset: string): Promise<Map<string, string>> {
    const { bucket } = splitDataset(dataset);
    const m = new Map<string, string>();
    const ups = await this.backend.listMultipartUploads(bucket).catch(() => []);
    for (const u of ups) if (this.ctx.keys.datasetFor(bucket, u.key) === dataset) m.set(encodeURIComponent(u.uploadId), u.key);
    return m;
  }

  /** Fresh count of headers per KEK version (ranged GETs of the fixed part only). */
  async scan(dataset: string): Promise<ScanResult> {
    const { bucket } = splitDataset(dataset);
    const id = datasetIdOf(dataset);
    const view = await this.ctx.keys.show(dataset);
    const activeVersion = view?.versions.find((v) => v.state === 'active')?.version ?? null;
    const byVersion: Record<string, number> = {};
    let total = 0;
    const uploads = await this.uploadMap(dataset);
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
      let peek;
      try {
        peek = peekHeader(bytes);
      } catch {
        return;
      }
      if (!peek.datasetId.equals(id)) return;
      total++;
      byVersion[peek.kekVersion] = (byVersion[peek.kekVersion] ?? 0) + 1;
    };
    for await (const page of listPages(this.backend, this.ctx.metaBucket, `h/${bucket}/`)) {
      await forEachLimit(page.map((o) => o.key), this.ctx.concurrency ?? 32, visit);
    }
    if (uploads.size) {
      for await (const page of listPages(this.backend, this.ctx.metaBucket, 'mpu/')) {
        const mine = page.map((o) => o.key).filter((k) => uploads.has(k.split('/')[1]!));
        await forEachLimit(mine, this.ctx.concurrency ?? 32, visit);
      }
    }
    let pending = 0;
    for (const [v, n] of Object.entries(byVersion)) if (Number(v) !== activeVersion) pending += n;
    return { dataset, activeVersion, total, pending, byVersion };
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
  async start(dataset: string, actor = 'system', opts: { fresh?: boolean } = {}): Promise<RewrapState> {
    if (this.closed) throw new S3Error('ServiceUnavailable', 'admin is shutting down');
    const live = this.running.get(dataset);
    if (live) return { ...live.state };
    if (!(await this.ctx.keys.show(dataset))) throw new S3Error('InvalidArgument', `unknown dataset ${dataset}`);
    const { version } = await this.ctx.keys.activeKek(dataset);
    const prev = opts.fresh ? null : await readState<RewrapState>(this.backend, this.ctx.metaBucket, rewrapStatePath(dataset));
    const now = new Date().toISOString();
    const resume = prev?.state === 'running' && prev.targetVersion === version;
    const state: RewrapState = resume
      ? { ...prev!, updatedAt: now }
      : {
          dataset,
          datasetId: datasetIdOf(dataset).toString('hex'),
          state: 'running',
          startedAt: now,
          updatedAt: now,
          actor,
          targetVersion: version,
          phase: 'headers',
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
    await writeState(this.backend, this.ctx.metaBucket, rewrapStatePath(dataset), state);
    const entry = { promise: Promise.resolve(state), stop: false, state };
    entry.promise = this.run(entry).finally(() => {
      this.running.delete(dataset);
      this.onFinished?.(entry.state);
    });
    this.running.set(dataset, entry);
    if (!resume) await this.ctx.audit?.append('rewrap.start', { dataset, targetVersion: version }, actor);
    return { ...state };
  }

  /** Wait for a running job (tests, CLI --wait through polling). */
  async wait(dataset: string): Promise<RewrapState | null> {
    const live = this.running.get(dataset);
    if (live) return live.promise;
    return this.status(dataset);
  }

  /** Resume jobs left `running` by a previous process. */
  async resumeAll(): Promise<string[]> {
    const resumed: string[] = [];
    for await (const page of listPages(this.backend, this.ctx.metaBucket, 'jobs/rewrap/')) {
      for (const o of page) {
        const s = await readState<RewrapState>(this.backend, this.ctx.metaBucket, o.key).catch(() => null);
        if (s?.state === 'running' && !this.running.has(s.dataset)) {
          await this.start(s.dataset, s.actor).catch((e) => this.ctx.log?.warn({ err: e, dataset: s.dataset }, 'rewrap resume failed'));
          resumed.push(s.dataset);
        }
      }
    }
    return resumed;
  }

  /** Stop running jobs without marking them finished (they resume on the next start). */
  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.running.values()) e.stop = true;
    await Promise.allSettled([...this.running.values()].map((e) => e.promise));
  }

  private async run(entry: { stop: boolean; state: RewrapState }): Promise<RewrapState> {
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
    const persist = async () => {
      s.dataBytesRead = counter.dataBytesRead;
      s.updatedAt = new Date().toISOString();
      const secs = (Date.now() - t0) / 1000;
      if (secs > 0) s.headersPerSec = Math.round((s.done - startDone) / secs);
      await writeState(this.backend, this.ctx.metaBucket, rewrapStatePath(dataset), s);
    };
    const err = (m: string) => {
      s.errors.push(m);
      if (s.errors.length > 20) s.errors.shift();
    };

    /** One header: returns true when done with it (processed or skipped), 'unknown' when not attributable. */
    const one = async (path: string, location: { bucket: string; key: string } | undefined): Promise<'ok' | 'unattributed' | 'other'> => {
      for (let attempt = 0; attempt < 8; attempt++) {
        await limiter.take();
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
        const active = await this.ctx.keys.activeKek(dataset);
        if (peek.kekVersion === active.version) {
          s.alreadyCurrent++;
          s.done++;
          return 'ok';
        }
        if (!location) return 'unattributed';
        let fields: HeaderFields | undefined;
        let sealed: Buffer;
        try {
          const oldKek = await this.ctx.keys.kek(dataset, peek.kekVersion);
          assertLive(oldKek);
          fields = openHeader(data, location, oldKek);
          const cur = await this.ctx.keys.activeKek(dataset);
          assertLive(cur.key);
          sealed = sealHeader({ ...fields, kekVersion: cur.version }, cur.key);
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

    try {
      const concurrency = this.ctx.concurrency ?? 16;
      if (s.phase === 'headers') {
        let keys = await this.keyMap(dataset);
        const unattributed: string[] = [];
        let sincePersist = 0;
        for await (const page of listPages(this.backend, this.ctx.metaBucket, `h/${bucket}/`, s.cursor)) {
          if (entry.stop) return s;
          await forEachLimit(page, concurrency, async (o) => {
            const hash = o.key.split('/')[2]!;
            const key = keys.get(hash);
            const r = await one(o.key, key === undefined ? undefined : { bucket, key });
            if (r === 'unattributed') unattributed.push(o.key);
          });
          if (page.length) s.cursor = page[page.length - 1]!.key;
          sincePersist += page.length;
          if (sincePersist >= 2000) {
            sincePersist = 0;
            await persist();
          }
        }
        // Headers of objects written while we listed: look their keys up again once.
        if (unattributed.length) {
          keys = await this.keyMap(dataset);
          await forEachLimit(unattributed, concurrency, async (p) => {
            const key = keys.get(p.split('/')[2]!);
            const r = await one(p, key === undefined ? undefined : { bucket, key });
            if (r === 'unattributed') {
              s.skipped++;
              s.done++;
              err(`${p}: no live object (orphan header; see gc)`);
            }
          });
        }
        s.phase = 'uploads';
        s.cursor = undefined;
        await persist();
      }
      if (s.phase === 'uploads') {
        const uploads = await this.uploadMap(dataset);
        if (uploads.size) {
          for await (const page of listPages(this.backend, this.ctx.metaBucket, 'mpu/')) {
            if (entry.stop) return s;
            const mine = page.filter((o) => uploads.has(o.key.split('/')[1]!));
            await forEachLimit(mine, concurrency, async (o) => {
              const r = await one(o.key, { bucket, key: uploads.get(o.key.split('/')[1]!)! });
              if (r === 'unattributed') (s.skipped++, s.done++);
            });
          }
        }
        s.phase = 'scan';
        await persist();
      }
      if (entry.stop) return s;
      const scan = await this.scan(dataset);
      s.pending = scan.pending;
      s.pendingByVersion = Object.fromEntries(Object.entries(scan.byVersion).filter(([v]) => Number(v) !== scan.activeVersion));
      s.phase = 'finished';
      s.state = 'done';
      s.finishedAt = new Date().toISOString();
      await persist();
      await this.ctx.audit?.append('rewrap.done', { dataset, rewrapped: s.rewrapped, failed: s.failed, pending: s.pending, dataBytesRead: s.dataBytesRead }, s.actor);
      this.ctx.log?.info({ dataset, rewrapped: s.rewrapped, pending: s.pending }, 'rewrap done');
      return s;
    } catch (e) {
      if (entry.stop) return s;
      s.state = 'failed';
      err((e as Error).message);
      s.finishedAt = new Date().toISOString();
      await persist().catch(() => {});
      this.ctx.log?.warn({ err: e, dataset }, 'rewrap failed');
      return s;
    }
  }
}

/**
 * Migration: encrypt objects that exist in the backend without lakecrypt metadata (no `lc-oid`), in place.
 * Each object: read the plaintext from the backend, `store.put` it conditional on the plaintext ETag (a client
 * write that lands meanwhile wins). Idempotent (encrypted objects are skipped) and resumable: state and a cursor
 * in `jobs/migrate/<bucket>.json`.
 */
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import type { AuditLog } from '../keys/audit.ts';
import { META_OID, consuming, type ObjectStore } from '../store/index.ts';
import { RateLimiter, forEachLimit, listPages, readState, writeState } from './util.ts';
import type { JobStateBase } from './job-lease.ts';

export interface MigrateState extends JobStateBase {
  bucket: string;
  rate: number;
  cursor?: string;
  /** Objects looked at. */
  scanned: number;
  migrated: number;
  alreadyEncrypted: number;
  /** A client wrote the key while we migrated it: the client's write was kept. */
  raced: number;
  failed: number;
  bytes: number;
}

export interface MigrateContext {
  backend: Backend;
  store: ObjectStore;
  audit?: AuditLog;
  metaBucket: string;
  concurrency?: number;
  log?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

export const migrateStatePath = (bucket: string): string => `jobs/migrate/${bucket}.json`;

export class MigrateManager {
  private readonly running = new Map<string, { promise: Promise<MigrateState>; stop: boolean; state: MigrateState; limiter: RateLimiter }>();
  private closed = false;
  constructor(private readonly ctx: MigrateContext) {}

  async status(bucket: string): Promise<MigrateState | null> {
    const live = this.running.get(bucket);
    if (live) return { ...live.state };
    return readState<MigrateState>(this.ctx.backend, this.ctx.metaBucket, migrateStatePath(bucket));
  }

  async start(bucket: string, actor = 'system', opts: { rate?: number; fresh?: boolean } = {}): Promise<MigrateState> {
    if (this.closed) throw new S3Error('ServiceUnavailable', 'admin is shutting down');
    if (bucket === this.ctx.metaBucket) throw new S3Error('InvalidBucketName', 'the meta bucket is not a user bucket');
    const live = this.running.get(bucket);
    if (live) {
      if (opts.rate !== undefined) {
        live.state.rate = opts.rate;
        live.limiter.setRate(opts.rate);
      }
      return { ...live.state };
    }
    if (!(await this.ctx.backend.bucketExists(bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
    const prev = opts.fresh ? null : await this.status(bucket);
    const now = new Date().toISOString();
    const resume = prev && (prev.state === 'running' || prev.state === 'stopped');
    const state: MigrateState = resume
      ? { ...prev, state: 'running', updatedAt: now, rate: opts.rate ?? prev.rate }
      : { bucket, state: 'running', startedAt: now, updatedAt: now, actor, rate: opts.rate ?? 0, scanned: 0, migrated: 0, alreadyEncrypted: 0, raced: 0, failed: 0, bytes: 0, errors: [] };
    await writeState(this.ctx.backend, this.ctx.metaBucket, migrateStatePath(bucket), state);
    const entry = { promise: Promise.resolve(state), stop: false, state, limiter: new RateLimiter(state.rate) };
    entry.promise = this.run(entry).finally(() => this.running.delete(bucket));
    this.running.set(bucket, entry);
    if (!resume) await this.ctx.audit?.append('migrate.start', { bucket, rate: state.rate }, actor);
    return { ...state };
  }

  /** Stop a running migration (state `stopped`; `start` resumes from the cursor). */
  async stop(bucket: string): Promise<MigrateState | null> {
    const live = this.running.get(bucket);
    if (!live) return this.status(bucket);
    live.stop = true;
    const s = await live.promise;
    s.state = 'stopped';
    await writeState(this.ctx.backend, this.ctx.metaBucket, migrateStatePath(bucket), s);
    return { ...s };
  }

  async wait(bucket: string): Promise<MigrateState | null> {
    const live = this.running.get(bucket);
    return live ? live.promise : this.status(bucket);
  }

  async resumeAll(): Promise<string[]> {
    const out: string[] = [];
    for await (const page of listPages(this.ctx.backend, this.ctx.metaBucket, 'jobs/migrate/')) {
      for (const o of page) {
        // An unreadable job state is not resumed now; the next resume pass (every lease period) looks again.
        const s = await readState<MigrateState>(this.ctx.backend, this.ctx.metaBucket, o.key).catch(() => null);
        if (s?.state === 'running' && !this.running.has(s.bucket)) {
          await this.start(s.bucket, s.actor).catch((e: unknown) => this.ctx.log?.warn({ err: e, bucket: s.bucket }, 'migrate resume failed'));
          out.push(s.bucket);
        }
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.running.values()) e.stop = true;
    await Promise.allSettled([...this.running.values()].map((e) => e.promise));
  }

  private async run(entry: { stop: boolean; state: MigrateState; limiter: RateLimiter }): Promise<MigrateState> {
    const s = entry.state;
    const { backend, store } = this.ctx;
    const persist = async () => {
      s.updatedAt = new Date().toISOString();
      await writeState(backend, this.ctx.metaBucket, migrateStatePath(s.bucket), s);
    };
    const err = (m: string) => {
      s.errors.push(m);
      if (s.errors.length > 20) s.errors.shift();
    };
    const one = async (key: string) => {
      await entry.limiter.take();
      if (entry.stop) return;
      s.scanned++;
      const info = await backend.headObject(s.bucket, key);
      if (!info) return;
      if (info.meta[META_OID]) {
        s.alreadyEncrypted++;
        return;
      }
      try {
        const { body, info: got } = await backend.getObject(s.bucket, key);
        if (got.meta[META_OID]) {
          body.destroy();
          s.alreadyEncrypted++;
          return;
        }
        const { [META_OID]: _o, 'lc-fmt': _f, ...user } = got.meta;
        await consuming(body, (b) => store.put(s.bucket, key, b, got.size, { user }, () => ({}), { ifMatch: got.etag }));
        s.migrated++;
        s.bytes += got.size;
      } catch (e) {
        if (isS3Error(e, 'PreconditionFailed') || isS3Error(e, 'NoSuchKey')) {
          s.raced++;
          return;
        }
        s.failed++;
        err(`${key}: ${(e as Error).message}`);
      }
    };
    try {
      for await (const page of listPages(backend, s.bucket, '', s.cursor)) {
        // With a rate limit, work one object at a time so the cursor stays exact when stopped.
        const conc = s.rate && s.rate < 50 ? 1 : (this.ctx.concurrency ?? 8);
        const keys = page.map((o) => o.key);
        for (let i = 0; i < keys.length; i += conc) {
          if (entry.stop) return s;
          const batch = keys.slice(i, i + conc);
          await forEachLimit(batch, conc, one);
          if (entry.stop) return s;
          s.cursor = batch[batch.length - 1];
          if (conc === 1 || i % 200 === 0) await persist();
        }
      }
      s.state = s.failed ? 'failed' : 'done';
      s.finishedAt = new Date().toISOString();
      s.cursor = undefined;
      await persist();
      await this.ctx.audit?.append('migrate.done', { bucket: s.bucket, migrated: s.migrated, failed: s.failed, raced: s.raced }, s.actor);
      return s;
    } catch (e) {
      if (entry.stop) return s;
      s.state = 'failed';
      err((e as Error).message);
      await persist().catch((pe: unknown) => this.ctx.log?.warn({ err: pe, bucket: s.bucket }, 'migrate: the failed state could not be written'));
      this.ctx.log?.warn({ err: e, bucket: s.bucket }, 'migrate failed');
      return s;
    }
  }
}

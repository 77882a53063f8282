/**
 * The state document of a job that several gateways may run (re-wrap, migration, adoption), written under a
 * lease: each write renews the lease and is conditional on the job's own last write, writes go one at a time,
 * and a refused write means another gateway took the job over (or it was stopped there) — the job then stops
 * here. Written once for every job, so the rules cannot drift between them.
 */
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { writeState } from './util.ts';

/** Fields every leased job state has. */
export interface JobStateBase {
  state: 'running' | 'done' | 'failed' | 'stopped';
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
  actor: string;
  /** Last errors, newest last (at most 20). */
  errors: string[];
  leaseUntil?: string;
  owner?: string;
}

/** The running job as its manager tracks it. */
export interface LeaseEntry {
  etag?: string;
  /** Another gateway's write won: this one must not write again. */
  lost: boolean;
  stop: boolean;
}

export interface LeaseWriter {
  /** Write the state now (after any write already under way). */
  persist: () => Promise<void>;
  /** Keep the newest 20 errors in the state. */
  recordError: (message: string) => void;
  /** The job failed: record it in the state and write that (a refused write is logged, not thrown). */
  fail: (e: unknown) => Promise<void>;
  /** Stop renewing and wait for the last write to settle (its failure was already reported to its caller). */
  close: () => Promise<void>;
}

export function leaseWriter<S extends JobStateBase>(o: {
  backend: Backend;
  bucket: string;
  path: string;
  leaseMs: number;
  entry: LeaseEntry;
  state: S;
  /** For messages: "re-wrap", "adopt". */
  what: string;
  log?: { warn(o: object, msg?: string): void };
  logFields?: Record<string, unknown>;
  /** Last-moment updates of the state before each write (rates, counters). */
  beforeWrite?: () => void;
}): LeaseWriter {
  const { entry, state: s } = o;
  let writes: Promise<void> = Promise.resolve();
  const write = async () => {
    if (entry.lost) throw new S3Error('PreconditionFailed', `the ${o.what} job was stopped or taken over by another gateway`);
    o.beforeWrite?.();
    s.updatedAt = new Date().toISOString();
    s.leaseUntil = new Date(Date.now() + o.leaseMs).toISOString();
    try {
      entry.etag = await writeState(o.backend, o.bucket, o.path, s, { ifMatch: entry.etag });
    } catch (e) {
      if (isS3Error(e, 'PreconditionFailed')) {
        entry.lost = true;
        entry.stop = true;
        o.log?.warn(o.logFields ?? {}, `${o.what} job stopped or taken over elsewhere; stopping here`);
      }
      throw e;
    }
  };
  const persist = (): Promise<void> => (writes = writes.then(write, write));
  // A failed renewal is reported by the next persist the job awaits (or marks the entry lost): nothing to add here.
  const renew = setInterval(() => void persist().catch(() => undefined), Math.max(50, Math.floor(o.leaseMs / 3)));
  renew.unref?.();
  const recordError = (m: string) => {
    s.errors.push(m);
    if (s.errors.length > 20) s.errors.shift();
  };
  return {
    persist,
    recordError,
    fail: async (e) => {
      s.state = 'failed';
      recordError(e instanceof Error ? e.message : String(e));
      s.finishedAt = new Date().toISOString();
      await persist().catch((pe: unknown) => o.log?.warn({ ...o.logFields, err: pe }, `${o.what}: the failed state could not be written`));
      o.log?.warn({ ...o.logFields, err: e }, `${o.what} failed`);
    },
    close: async () => {
      clearInterval(renew);
      // Settled only: whoever awaited that write has seen its failure.
      await writes.catch(() => undefined);
    },
  };
}

/**
 * Stop the jobs a manager runs here without finishing them, and let their leases go at once (lease time 0, on
 * the job's own last write): the next gateway to look (or this one, restarted) resumes them from their cursor.
 */
export async function releaseJobs<S extends JobStateBase>(
  entries: (LeaseEntry & { state: S; promise: Promise<unknown> })[],
  release: (s: S, etag: string | undefined) => Promise<unknown>,
): Promise<void> {
  for (const e of entries) e.stop = true;
  await Promise.allSettled(entries.map((e) => e.promise));
  await Promise.allSettled(
    entries.filter((e) => !e.lost && e.state.state === 'running').map((e) => release({ ...e.state, leaseUntil: new Date(0).toISOString() }, e.etag)),
  );
}

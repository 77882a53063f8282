/**
 * The revocation epoch watch: what makes "the revoke call returned" mean "every live gateway denies within the
 * bound" (docs/OPERATIONS.md, "Revocation bound").
 *
 * Every change to key state bumps `keystore/epoch` before the admin call answers (KeyState.afterChange). Each
 * gateway reads that object's ETag every `pollMs` (250 ms by default) and drops every cache when it changed. A
 * poll that succeeds *confirms* the epoch as it was when the poll started; the state is **fresh** while the last
 * confirmation started no more than `boundMs` ago (1 s by default). Keys are handed out only while fresh
 * (`ensureFresh`): a gateway whose polls are slow or failing — a backend under load, a network partition — asks
 * once more and, when that poll does not confirm within the bound either, refuses with 503 KeyStateStale instead
 * of serving from caches that may predate a revocation. Streams in flight are reached through the cache
 * generation: when the state goes stale the generation moves, so every stream re-validates its keys at its next
 * buffer, and that re-validation needs a fresh state too.
 *
 * Polls overlap (up to MAX_IN_FLIGHT) so that a slow backend delays confirmations by its latency rather than
 * stretching the poll period; a result older than one already applied is ignored, so answers arriving out of
 * order cannot move the seen epoch back.
 *
 * A poll that fails drops the caches too (fail closed) and is reported: counted on every failure, logged at warn
 * once per failure streak, at info on recovery.
 */
import { performance } from 'node:perf_hooks';
import { S3Error } from '../errors.ts';
import type { KeyState } from './key-state.ts';

const MAX_IN_FLIGHT = 4;
/** Hung polls (a backend that holds requests without answering) stop counting after 2 bounds, up to this many. */
const MAX_HUNG = 32;
const FOREVER = (1n << 63n) - 1n;

export interface EpochFreshness {
  /** Milliseconds since the start of the poll that last confirmed the epoch (Infinity: never confirmed). */
  ageMs: number;
  /** The configured bound: keys are handed out only while ageMs <= boundMs. */
  boundMs: number;
  fresh: boolean;
}

export class EpochWatch {
  private timer?: NodeJS.Timeout;
  private inFlight = 0;
  private hung = 0;
  /** performance.now() at the start of the last poll started (periodic or on demand). */
  private lastStart = -Infinity;
  /** Start time of the newest poll whose answer was applied: the epoch is known as of then. */
  private confirmedAt = -Infinity;
  private staleFlagged = false;
  /**
   * isFresh() for the native data plane's threads (native/dataplane.c, `freshUntil`): the CLOCK_MONOTONIC time, in
   * ns as process.hrtime.bigint(), up to which the epoch is confirmed. A pump reads it before each chunk, so a stream
   * stops at the bound even when this thread's timers run late. The largest value before start() and after stop(),
   * as the key service's epochFresh().
   */
  readonly freshUntil = new BigInt64Array([FOREVER]);
  private waiters: { since: number; done: (ok: boolean) => void }[] = [];

  constructor(
    private readonly s: KeyState,
    private readonly pollMs: number,
    private readonly boundMs: number,
  ) {}

  /** Read the current epoch, then poll it; on change, all caches are dropped (zeroed). */
  async start(): Promise<void> {
    await this.s.keystore.ensureBucket();
    const at = performance.now();
    this.s.seenEpoch = await this.s.keystore.epochEtag();
    this.confirm(at);
    if (this.timer) return;
    // The tick also watches freshness, so it runs at least four times per bound whatever the poll period.
    const tick = Math.max(10, Math.min(this.pollMs, Math.floor(this.boundMs / 4)));
    this.timer = setInterval(() => this.onTick(), tick);
    this.timer.unref?.();
  }

  get started(): boolean {
    return this.timer !== undefined;
  }

  isFresh(): boolean {
    return performance.now() - this.confirmedAt <= this.boundMs;
  }

  freshness(): EpochFreshness {
    const ageMs = performance.now() - this.confirmedAt;
    return { ageMs, boundMs: this.boundMs, fresh: ageMs <= this.boundMs };
  }

  /**
   * Resolves when the epoch is confirmed no older than the bound: at once while fresh; otherwise after a poll
   * started now confirms it, if that happens within the bound. Else rejects with 503 KeyStateStale.
   */
  ensureFresh(): Promise<void> {
    if (this.isFresh()) return Promise.resolve();
    const since = performance.now();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(false), this.boundMs);
      timer.unref?.();
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        if (ok) resolve();
        else
          reject(
            new S3Error(
              'KeyStateStale',
              `This gateway could not confirm the revocation state within ${this.boundMs} ms (the backend is slow or unreachable); it refuses to use keys until it can. Retry.`,
            ),
          );
      };
      const waiter = { since, done: finish };
      this.waiters.push(waiter);
      void this.pollOnce();
    });
  }

  /** One poll of the epoch (never rejects). Overlapping polls are allowed up to MAX_IN_FLIGHT. */
  async pollOnce(): Promise<void> {
    if (this.inFlight >= MAX_IN_FLIGHT || this.hung >= MAX_HUNG) return;
    this.inFlight++;
    const at = performance.now();
    this.lastStart = at;
    // A poll unanswered for two bounds frees its slot (a held request must not stop polling for good) and counts
    // as hung until it settles.
    let counted = true;
    const slot = setTimeout(() => {
      counted = false;
      this.inFlight--;
      this.hung++;
    }, 2 * this.boundMs);
    slot.unref?.();
    try {
      const etag = await this.s.keystore.epochEtag();
      // An answer older than one applied already says nothing new (and must not move the seen epoch back).
      if (at > this.confirmedAt) {
        if (etag !== this.s.seenEpoch) {
          this.s.seenEpoch = etag;
          this.s.clearCaches();
        }
        this.confirm(at);
      }
      this.s.kekCache.sweep();
      this.s.recCache.sweep();
      this.s.bestEffort.ok('epoch-poll');
    } catch (e) {
      // Backend unreachable: be safe, stop serving cached keys until the epoch can be read again.
      this.s.clearCaches();
      this.s.bestEffort.failed('epoch-poll', e, 'epoch poll failed: key caches dropped (fail closed) until the epoch can be read again');
    } finally {
      clearTimeout(slot);
      if (counted) this.inFlight--;
      else this.hung--;
    }
  }

  /** Stop polling and drop (zero) every cached key. */
  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const w of [...this.waiters]) w.done(false);
    this.freshUntil[0] = FOREVER;
    this.s.clearCaches();
    return Promise.resolve();
  }

  private confirm(at: number): void {
    this.confirmedAt = at;
    // performance.now() is the same monotonic clock as hrtime, counted from the process's start: the bound's end on it
    this.freshUntil[0] = process.hrtime.bigint() + BigInt(Math.floor((at + this.boundMs - performance.now()) * 1e6));
    for (const w of [...this.waiters]) if (at >= w.since) w.done(true);
    if (this.staleFlagged && performance.now() - at <= this.boundMs) {
      this.staleFlagged = false;
      this.s.bestEffort.ok('epoch-stale');
    }
  }

  private onTick(): void {
    if (performance.now() - this.lastStart >= this.pollMs) void this.pollOnce();
    if (!this.staleFlagged && performance.now() - this.confirmedAt > this.boundMs) {
      // Streams in flight re-validate their keys at their next buffer, which needs a fresh state (ensureFresh).
      this.staleFlagged = true;
      this.s.bumpGeneration();
      this.s.bestEffort.failed(
        'epoch-stale',
        new S3Error('KeyStateStale'),
        `revocation epoch not confirmed for over ${this.boundMs} ms: keys refused (503 KeyStateStale) until a poll confirms it`,
      );
    }
  }
}

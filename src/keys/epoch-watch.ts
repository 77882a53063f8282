/**
 * The revocation epoch watch: polls `keystore/epoch` (every 250 ms by default) and drops every cache when it
 * changed, so that every gateway sees a revocation made through another within ~1 s. A poll that fails (backend
 * unreachable) drops the caches too — fail closed: no cached key is served until the epoch can be read again —
 * and is reported: counted on every failure, logged at warn once per failure streak, at info on recovery.
 */
import type { KeyState } from './key-state.ts';

export class EpochWatch {
  private timer?: NodeJS.Timeout;
  private polling = false;

  constructor(
    private readonly s: KeyState,
    private readonly pollMs: number,
  ) {}

  /** Read the current epoch, then poll it; on change, all caches are dropped (zeroed). */
  async start(): Promise<void> {
    await this.s.keystore.ensureBucket();
    this.s.seenEpoch = await this.s.keystore.epochEtag();
    if (this.timer) return;
    this.timer = setInterval(() => void this.pollOnce(), this.pollMs);
    this.timer.unref?.();
  }

  /** One poll of the epoch (never rejects). */
  async pollOnce(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const etag = await this.s.keystore.epochEtag();
      if (etag !== this.s.seenEpoch) {
        this.s.seenEpoch = etag;
        this.s.clearCaches();
      }
      this.s.kekCache.sweep();
      this.s.recCache.sweep();
      this.s.bestEffort.ok('epoch-poll');
    } catch (e) {
      // Backend unreachable: be safe, stop serving cached keys until the epoch can be read again.
      this.s.clearCaches();
      this.s.bestEffort.failed('epoch-poll', e, 'epoch poll failed: key caches dropped (fail closed) until the epoch can be read again');
    } finally {
      this.polling = false;
    }
  }

  /** Stop polling and drop (zero) every cached key. */
  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.s.clearCaches();
    return Promise.resolve();
  }
}

/**
 * The destruction sweep: KEK versions pending destruction are destroyed when due (src/admin/destroy.ts
 * `finishDueDestroy`), on a timer on every gateway's admin port and on the next read that touches one (the key
 * service calls back); CMK versions scheduled for destruction likewise (on the timer). Idempotent and safe with
 * several gateways: the keystore writes are conditional.
 */
import type { Logger } from '../ops/logger.ts';
import { finishDueDestroy, type DestroyContext, type DueOutcome } from './destroy.ts';

export class DestructionSweep {
  private timer?: NodeJS.Timeout;
  private readonly inflight = new Map<string, Promise<DueOutcome>>();
  /** Held destructions (headers still reference them): when each was last checked, to re-scan at a slower pace. */
  private readonly held = new Map<string, { at: number; destroyAt?: string }>();

  constructor(
    private readonly ctx: DestroyContext,
    /** keyDeletionWaitSeconds: the waiting period; it also sets the sweep's pace. */
    readonly waitSeconds: number,
    private readonly log?: Pick<Logger, 'info' | 'warn'>,
  ) {}

  /** Half the waiting period, between 1 s and 60 s. */
  get intervalMs(): number {
    return Math.min(60_000, Math.max(1000, this.waitSeconds * 500));
  }

  /** A held destruction is scanned again at most this often. */
  get heldRecheckMs(): number {
    return Math.max(10_000, this.intervalMs * 10);
  }

  /**
   * One due version (deduplicated while it runs). A held one is scanned again only after `heldRecheckMs`, unless
   * its schedule changed (`destroyAt`: cancelled and scheduled again).
   */
  one(dataset: string, version: number, now = Date.now(), destroyAt?: string): Promise<DueOutcome> {
    const k = `${dataset}\u0000${version}`;
    const last = this.held.get(k);
    if (last && now - last.at < this.heldRecheckMs && (destroyAt === undefined || destroyAt === last.destroyAt)) return Promise.resolve('held');
    let p = this.inflight.get(k);
    if (!p) {
      p = finishDueDestroy(this.ctx, dataset, version, 'system:sweep', now)
        .then((r) => {
          if (r === 'held') this.held.set(k, { at: now, destroyAt });
          else this.held.delete(k);
          if (r === 'destroyed') this.log?.info({ dataset, version }, 'KEK version destroyed (its waiting period is over)');
          if (r === 'held') this.log?.warn({ dataset, version }, 'KEK version due for destruction is still referenced by headers: left pending');
          return r;
        })
        .finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
    }
    return p;
  }

  /** Every due version of every dataset, once; then the due CMK versions (src/keys/cmk-admin.ts). */
  async sweep(now = Date.now()): Promise<{ destroyed: string[]; held: string[] }> {
    const out = { destroyed: [] as string[], held: [] as string[] };
    try {
      out.destroyed.push(...(await this.ctx.keys.cmkDestruction.cmkDestroyDue('system:sweep', now)).map((x) => `CMK ${x}`));
    } catch (e) {
      this.log?.warn({ err: e }, 'CMK destruction sweep failed (retried on the next round)');
    }
    for (const d of await this.ctx.keys.list()) {
      for (const v of d.versions) {
        if (v.state !== 'pending-destruction' || !v.destroyAt || Date.parse(v.destroyAt) > now) continue;
        try {
          const r = await this.one(d.dataset, v.version, now, v.destroyAt);
          if (r === 'destroyed' || r === 'held') out[r].push(`${d.dataset} v${v.version}`);
        } catch (e) {
          this.log?.warn({ err: e, dataset: d.dataset, version: v.version }, 'destruction sweep failed (retried on the next round)');
        }
      }
    }
    return out;
  }

  start(): void {
    this.ctx.keys.kekDestruction.onDestructionDue = (dataset, version) => {
      this.one(dataset, version).catch((e: unknown) => this.log?.warn({ err: e, dataset, version }, 'destruction on touch failed (the sweep retries)'));
    };
    const run = () => void this.sweep().catch((e: unknown) => this.log?.warn({ err: e }, 'destruction sweep failed'));
    run();
    this.timer = setInterval(run, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.ctx.keys.kekDestruction.onDestructionDue = undefined;
  }
}
